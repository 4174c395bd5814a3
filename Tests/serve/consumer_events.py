"""The event log of a consumer process run by the serve tests (share_consumer.py,
infer_consumer.py): one JSON line per event, with the process id, appended and flushed
at once so that the test sees it while the process runs (or after it is killed)."""

import json
import os
import time


class EventLog:
    """`log.event(kind, **fields)` appends `{"event": kind, "pid": …, **fields}`."""

    def __init__(self, path: str):
        self._file = open(path, "a", buffering=1)

    def event(self, kind: str, **fields) -> None:
        self._file.write(json.dumps({"event": kind, "pid": os.getpid(), **fields}) + "\n")

    def delivered(self, batch, hold: bool) -> None:
        """Logs a leased batch; with `hold`, then sleeps until the process is killed (a
        consumer that dies holding its lease)."""
        self.event("delivered", batch=batch.index, lease=batch.lease, ids=batch.ids.tolist())
        while hold:
            time.sleep(60)

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()
