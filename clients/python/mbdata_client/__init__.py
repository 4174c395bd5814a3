"""Python client of `mbdata serve`, the mbdata batch daemon (schemas/serve-protocol.md).

    from mbdata_client import Client

    client = Client("http://127.0.0.1:7070")
    for batch in client.batches("digits", batch_size=64, epoch=0, seed=7, split="train"):
        x, y = batch["image"], batch["label"]      # numpy arrays
        ...                                         # train on them
        batch.ack()                                 # the cursor advances only on ack

Inference writes each batch's outputs back into the dataset, exactly once:

    for batch in client.infer("digits", output="preds", batch_size=256, split="val"):
        logits = model(batch["image"])
        batch.submit({"pred": logits.argmax(1), "prob": softmax(logits)})   # numpy or torch

`mbdata_client.torch` (needs PyTorch) has an IterableDataset for DataLoader.
`tune_allocator()` (or `Client(..., tune_allocator=True)`) opts in to glibc settings that
let large batches reuse freed memory; the client changes nothing in the process otherwise.
"""

from . import errors, wire
from .allocator import tune_allocator
from .client import DEFAULT_URL, Batch, Client, acked_batches, rank_and_world
from .errors import MBDataError, ProtocolError, StreamCutError, StreamFailedError, UnavailableError

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Client",
    "DEFAULT_URL",
    "MBDataError",
    "ProtocolError",
    "StreamCutError",
    "StreamFailedError",
    "UnavailableError",
    "acked_batches",
    "errors",
    "rank_and_world",
    "tune_allocator",
    "wire",
]
