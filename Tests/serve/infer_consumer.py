"""An inference consumer for test_serve_infer.py, run as its own process:

    python infer_consumer.py URL LOG [--batch-size N] [--lease-seconds S] [--delay S] [--hold]

Leases batches of the `val` split in infer mode (output `preds`), computes `outputs` of
the batch's images — a pure function of each sample, so the test can recompute every
row — and
submits them. Appends one JSON line per event to LOG: `delivered` (batch, lease, ids) when
a lease arrives, `submitted` (batch, rows, answer) after a submission was committed,
`lost` (batch, code) when it was refused with 409, `done` when the job is complete. With
--hold it takes one lease and then sleeps until killed (a consumer that dies mid-batch)."""

import argparse
import time

import numpy as np

from consumer_events import EventLog
from mbdata_client import Client, MBDataError

OUTPUT = "preds"
SPLIT = "val"


def outputs(images: np.ndarray) -> dict:
    """The outputs of a batch's images (uint8 [R, 8, 8]): pred, the sum of each image's
    pixels mod 10 (int64); prob, its first ten pixels / 16 (float32[10])."""
    flat = images.reshape(len(images), -1)
    return {"pred": flat.astype(np.int64).sum(axis=1) % 10, "prob": flat[:, :10].astype(np.float32) / 16}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("log")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lease-seconds", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    # Retries reach over a daemon restart: about 12 s of backoff in all.
    client = Client(args.url, poll_interval=0.05, retries=10, backoff=0.05, max_backoff=2.0)
    with EventLog(args.log) as log:
        event = log.event
        for batch in client.infer("digits", output=OUTPUT, batch_size=args.batch_size, split=SPLIT,
                                  lease_seconds=args.lease_seconds):
            log.delivered(batch, args.hold)
            time.sleep(args.delay)
            try:
                answer = batch.submit(outputs(batch["image"]))
            except MBDataError as error:
                if error.status != 409:
                    raise
                event("lost", batch=batch.index, lease=batch.lease, code=error.code)
                continue
            event("submitted", batch=batch.index, lease=batch.lease, rows=answer["rows"], answer=answer)
        event("done")


if __name__ == "__main__":
    main()
