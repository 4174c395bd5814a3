#!/usr/bin/env python3
"""Trains a small MLP on the digits dataset read from `mbdata serve`, data-parallel on CPU.

    mbdata ingest out/digits.mbdb --schema samples/digits/digits.schema.json --val-fraction 0.2 \\
        samples/digits/digits.jsonl
    mbdata serve out/digits.mbdb --port 7070 --state out/state.sqlite &
    torchrun --nproc-per-node 2 samples/train_digits.py --url http://127.0.0.1:7070 --dataset digits

Each torchrun rank reads its own partition stream of the `train` split (rank and world
size from torchrun; the global batch of 64 is split between the ranks), trains with
DistributedDataParallel over gloo and acks each batch after its optimizer step, so that a
restarted trainer — or daemon — resumes with exactly the batches not yet trained on.
Then every rank evaluates its part of the `val` split (in ingest order, the last batch
padded, padding rows dropped through `_valid`), the counts are summed over the ranks, and
rank 0 prints the held-out accuracy and the training throughput.

The consumer group (whose cursors record the acks) is new for every run unless --group
is given: rank 0 names it after torchrun's run id, or the time, and tells the others. A
run with the --group of an earlier one gets only the batches that run did not ack, which
is what resuming from a model checkpoint needs (this sample keeps no checkpoint, so a
finished group trains nothing).

Reproducibility (`make reproducibility`): --deterministic turns on PyTorch's deterministic
algorithms; --state PATH makes rank 0 save the model, the optimizer and the position (epoch,
next batch, step) every --save-every steps, atomically, and a run that finds the file resumes
from it — every rank reads its partition from that batch on (`start=`), in a new consumer
group. --kill-at-step N makes rank 0 SIGKILL itself after step N (torchrun then stops the
others); --save-weights PATH writes the final parameters as raw float32.

Needs torch and the client: pip install torch ./clients/python
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mbdata_client import Client


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MBDATA_URL", "http://127.0.0.1:7070"))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size, divided between the ranks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--group", default=None, help="consumer group (default: new for each run)")
    parser.add_argument("--token", default=None, help="bearer token (default: $MBDATA_TOKEN)")
    parser.add_argument("--min-accuracy", type=float, default=0.9, help="exit 1 below this held-out accuracy")
    parser.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    parser.add_argument("--state", default=None, help="state file: saved every --save-every steps, resumed from")
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--kill-at-step", type=int, default=None, help="rank 0 SIGKILLs itself after this step")
    parser.add_argument("--save-weights", default=None, help="rank 0 writes the final parameters (raw float32)")
    return parser.parse_args()


def init_distributed() -> tuple[int, int]:
    """torchrun's process group, or a one-process group when run with plain python."""
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def run_group(requested: str | None, rank: int) -> str:
    """The consumer group: --group, or a new one named by rank 0 and shared with all."""
    if requested:
        return requested
    name = [None]
    if rank == 0:
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
        if not run_id or run_id == "none":
            run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        name[0] = re.sub(r"[^A-Za-z0-9._-]", "-", f"train-{run_id}")[:64]
    dist.broadcast_object_list(name, src=0)
    return name[0]


def save_state(path: str, state: dict) -> None:
    """Model, optimizer and position in one file, replaced atomically (temp, fsync, rename)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def features(batch) -> torch.Tensor:
    """uint8 images of 0..16 → float inputs in [0, 1]."""
    return torch.from_numpy(batch["image"]).float().div_(16.0).flatten(1)


def main() -> int:
    args = parse_arguments()
    torch.set_num_threads(1)  # one core per rank
    rank, world = init_distributed()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} is not divisible by the world size {world}")
    group = run_group(args.group, rank)
    client = Client(args.url, token=args.token, tune_allocator=True)  # large batches reuse freed memory

    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    saved = torch.load(args.state) if args.state and os.path.exists(args.state) else None
    if saved:
        model.load_state_dict(saved["model"])
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    start_epoch, start_batch, step = 0, 0, 0
    if saved:
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, start_batch, step = saved["epoch"], saved["next_batch"], saved["step"]
        if rank == 0:
            print(f"resuming at epoch {start_epoch} batch {start_batch} (step {step})", flush=True)

    if rank == 0:
        print(f"{world} ranks, global batch {args.batch_size}, group {group}, {args.url}", flush=True)
    trained = 0
    started = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        ddp.train()
        losses = []
        first = start_batch if epoch == start_epoch else 0
        # Every rank gets the same number of batches, so the DDP steps line up.
        for index, batch in enumerate(client.batches(args.dataset, args.batch_size, epoch=epoch, seed=args.seed, rank=rank,
                                                     world=world, group=group, split="train", start=first), start=first):
            loss = F.cross_entropy(ddp(features(batch)), torch.from_numpy(batch["label"]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch.ack(wait=False)  # only now is the batch done (queued; the stream flushes acks before it ends)
            trained += batch.samples
            losses.append(loss.item())
            step += 1
            if args.state and rank == 0 and step % args.save_every == 0:
                save_state(args.state, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "epoch": epoch, "next_batch": index + 1, "step": step})
            if rank == 0 and step == args.kill_at_step:
                print(f"SIGKILL after step {step}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        if rank == 0 and (epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs):
            mean = sum(losses) / max(1, len(losses))
            print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {mean:.4f}  ({len(losses)} steps)", flush=True)
    elapsed = time.perf_counter() - started
    totals = torch.tensor([trained], dtype=torch.float64)
    dist.all_reduce(totals)

    # Held-out accuracy: each rank its slice of every val batch, padding rows left out.
    ddp.eval()
    eval_batch = world * -(-64 // world)
    counts = torch.zeros(2, dtype=torch.float64)  # correct, seen
    with torch.no_grad():
        for batch in client.batches(args.dataset, eval_batch, epoch=0, rank=rank, world=world, group=f"{group}-val"[:64],
                                    split="val", tail="pad", shuffle=False):
            valid = torch.from_numpy(batch.valid)
            predicted = model(features(batch)).argmax(1)
            labels = torch.from_numpy(batch["label"])
            counts += torch.tensor([float((predicted[valid] == labels[valid]).sum()), float(valid.sum())],
                                   dtype=torch.float64)
    dist.all_reduce(counts)
    accuracy = float(counts[0] / counts[1]) if counts[1] else 0.0
    if rank == 0 and totals.item() == 0:
        print(f"group {group} had no batches left: every epoch was acked by an earlier run "
              f"(use a new --group)")
    if rank == 0 and args.save_weights:
        weights = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().astype("<f4")
        with open(args.save_weights, "wb") as file:
            file.write(weights.tobytes())
    if rank == 0:
        print(f"held-out accuracy {accuracy:.4f} ({int(counts[0])}/{int(counts[1])} val samples)")
        print(f"trained {int(totals.item())} samples in {elapsed:.2f} s: {totals.item() / elapsed:.0f} samples/s "
              f"over {world} ranks")
    # Both ranks done before the teardown: gloo, torn down while the peer still exits, can
    # abort a rank with "terminate called without an active exception".
    dist.barrier()
    dist.destroy_process_group()
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
