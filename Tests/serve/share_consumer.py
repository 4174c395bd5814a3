"""A share-mode consumer for test_serve_share.py, run as its own process:

    python share_consumer.py URL GROUP LEASE_SECONDS LOG [--hold] [--delay S]

Appends one JSON line per event to LOG: `delivered` (batch, lease, ids) when a lease
arrives, `acked` or `ack_failed` after acking it, `done` when the epoch is complete.
With --hold it takes one lease and then sleeps until killed (a consumer that dies
mid-batch)."""

import argparse
import time

from consumer_events import EventLog
from mbdata_client import Client, MBDataError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("group")
    parser.add_argument("lease_seconds", type=int)
    parser.add_argument("log")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    client = Client(args.url, poll_interval=0.05)
    with EventLog(args.log) as log:
        event = log.event
        for batch in client.share("digits", 64, epoch=0, seed=7, group=args.group, split="train",
                                  lease_seconds=args.lease_seconds):
            log.delivered(batch, args.hold)
            time.sleep(args.delay)
            try:
                batch.ack()
                event("acked", batch=batch.index, lease=batch.lease)
            except MBDataError as error:
                event("ack_failed", batch=batch.index, lease=batch.lease, status=error.status, code=error.code)
        event("done")


if __name__ == "__main__":
    main()
