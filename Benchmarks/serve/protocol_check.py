"""Protocol checks of the serve benchmark: what `mbdata serve` does against what
schemas/serve-protocol.md says, with wire.py (no client library).

Run by bench.py before the measurements on daemons of their own (one with the spool
root, one live); every check is recorded as {id, what, expected, got, ok}. A failed
check is reported as a discrepancy; the measurements still run.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np

import wire

ENTRY = struct.Struct("<QQQIIIIQ")  # shard footer entry: offset length uncompressed epoch batch rank samples xxh64
TRAILER = struct.Struct("<QQ8s")
METRICS = ["mbdata_batches_served_total", "mbdata_bytes_served_total", "mbdata_ready_queue_depth",
           "mbdata_consumer_lag_batches", "mbdata_stalls_total", "mbdata_stall_seconds",
           "mbdata_lease_expiries_total", "mbdata_compression_ratio", "mbdata_active_streams",
           "mbdata_request_duration_seconds", "mbdata_batch_wait_seconds"]


class Checks:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, cid: str, what: str, expected, got, ok: bool | None) -> bool | None:
        """ok None: informational, never a discrepancy."""
        self.items.append({"id": cid, "what": what, "expected": str(expected), "got": str(got)[:400],
                           "ok": None if ok is None else bool(ok)})
        return ok

    def error(self, cid: str, what: str, exc: BaseException) -> None:
        self.add(cid, what, "no error", f"{type(exc).__name__}: {exc}", False)


def shard_frame(spool: Path, epoch: int, batch: int, rank: int) -> bytes | None:
    """The frame of (epoch, batch, rank) in a shard directory (schemas/shard-format.md §3)."""
    manifest = json.loads((spool / "manifest.json").read_text())
    for s in manifest["shards"]:
        path = spool / s["file"]
        with open(path, "rb") as f:
            f.seek(-TRAILER.size, 2)
            flen, _, magic = TRAILER.unpack(f.read(TRAILER.size))
            f.seek(-(TRAILER.size + flen), 2)
            footer = f.read(flen)
            (count,) = struct.unpack_from("<Q", footer)
            for i in range(count):
                off, length, _unc, e, b, r, _smp, _xx = ENTRY.unpack_from(footer, 8 + i * ENTRY.size)
                if (e, b, r) == (epoch, batch, rank):
                    f.seek(off)
                    return f.read(length)
    return None


def error_code(doc) -> str | None:
    try:
        return doc["error"]["code"]
    except (TypeError, KeyError):
        return None


def open_stream(base: str, dataset: str, **params):
    c = wire.Connection(base)
    resp = c.request("GET", wire.batches_path(dataset, **params))
    return c, resp


def check_message(ck: Checks, cid: str, m: wire.Message | None, *, epoch: int, batch: int, rank: int,
                  samples: int, fields: dict[str, tuple[str, list[int]]]) -> dict[str, np.ndarray] | None:
    if m is None:
        ck.add(cid, "a batch message", "kind 1 message", "end of body", False)
        return None
    ck.add(cid + ".magic", "message magic", "MBW1", m.magic, m.magic == wire.MAGIC)
    ck.add(cid + ".kind", "message kind", 1, m.kind, m.kind == wire.KIND_BATCH)
    ck.add(cid + ".reserved", "reserved bytes 5-7", "zero", m.reserved.hex(), m.reserved == b"\0\0\0")
    ck.add(cid + ".position", "epoch, batch, rank, samples, lease", (epoch, batch, rank, samples, 0),
           (m.epoch, m.batch, m.rank, m.samples, m.lease),
           (m.epoch, m.batch, m.rank, m.samples, m.lease) == (epoch, batch, rank, samples, 0))
    if m.kind != wire.KIND_BATCH:
        ck.add(cid + ".payload", "payload of a non-batch message", "-", bytes(m.payload[:300]), False)
        return None
    xx = wire.xxh64(m.payload)
    ck.add(cid + ".checksum", "xxh64 of the payload", f"{m.checksum:016x}", f"{xx:016x}", xx == m.checksum)
    ck.add(cid + ".frame", "payload is an LZ4 frame", "04224d18", bytes(m.payload[:4]).hex(),
           bytes(m.payload[:4]) == b"\x04\x22\x4d\x18")
    try:
        tensors, header, buffer = wire.decode_batch(m.payload)
    except Exception as e:  # noqa: BLE001
        ck.error(cid + ".decode", "LZ4 + safetensors decode", e)
        return None
    ck.add(cid + ".uncompressed", "`uncompressed` = safetensors buffer size", m.uncompressed, len(buffer),
           m.uncompressed == len(buffer))
    meta = header.get("__metadata__", {})
    want_meta = {"format": "mbdata-batch-1", "epoch": str(epoch), "batch": str(batch), "rank": str(rank)}
    ck.add(cid + ".metadata", "safetensors __metadata__", want_meta, meta,
           all(meta.get(k) == v for k, v in want_meta.items()))
    got = {k: (v["dtype"], v["shape"]) for k, v in header.items() if k != "__metadata__"}
    ck.add(cid + ".tensors", "tensor dtypes and shapes", fields, got,
           all(got.get(k) == (d, s) for k, (d, s) in fields.items()))
    return tensors


def run(*, base: str, live: str | None, dataset: str, n: int, batch: int, seed: int, spool_sets: dict[int, Path],
        mbdb: Path, terminate: Callable[[], int | None] | None, log: Callable[[str], None]) -> list[dict]:
    """All checks against the spool daemon at `base` (and the live one at `live`)."""
    ck = Checks()
    bpe = n // batch
    shape = [batch, 3, 32, 32]
    fields = {"image": ("U8", shape), "label": ("I64", [batch]), "_id": ("I64", [batch])}
    api = wire.Connection(base)
    plan = dict(batch_size=batch, seed=seed, epoch=0)

    def metrics(cid: str, what: str, info: bool = False) -> None:
        # mbdata_lease_expiries_total counts share-mode lease expiries, which these checks never
        # cause: a series that appears with its first value may be absent, and is not required.
        resp = api.request("GET", "/metrics")
        text = resp.read().decode(errors="replace")
        missing = [m for m in METRICS if m not in text]
        required = [m for m in missing if m != "mbdata_lease_expiries_total"]
        ck.add(cid, what, "200, all 11 names (lease expiries: optional before the first)",
               f"{resp.status}, missing {missing}" if missing else f"{resp.status}, all present",
               None if info else resp.status == 200 and not required)

    def guarded(cid: str, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            ck.error(cid, what, e)

    # --- operations and errors -------------------------------------------------------
    def ops() -> None:
        st, doc, _ = api.json("GET", "/healthz")
        ck.add("healthz", "GET /healthz", '200 {"status": "ok"}', f"{st} {doc}", st == 200 and doc == {"status": "ok"})
        st, doc, _ = api.json("GET", "/v1/datasets")
        names = {d.get("name"): d for d in (doc or {}).get("datasets", [])} if isinstance(doc, dict) else {}
        d = names.get(dataset, {})
        ck.add("datasets", "GET /v1/datasets lists the dataset with its sample count",
               f"200, {dataset}: samples {n}", f"{st} {json.dumps(doc)[:300]}",
               st == 200 and d.get("samples") == n and "version" in d)
        st, doc, _ = api.json("GET", f"/v1/datasets/{dataset}")
        ck.add("dataset", f"GET /v1/datasets/{dataset} has name, version, samples, schema",
               "200 with schema", f"{st} keys {sorted(doc) if isinstance(doc, dict) else doc}",
               st == 200 and isinstance(doc, dict) and {"name", "version", "samples", "schema"} <= set(doc))
        for cid, path, want_st, want_code in [
            ("err.unknown_dataset", "/v1/datasets/nosuch/batches?batch_size=256", 404, "unknown_dataset"),
            ("err.bad_name", "/v1/datasets/..%2Fetc/batches?batch_size=256", 404, "unknown_dataset"),
            ("err.no_batch_size", f"/v1/datasets/{dataset}/batches", 400, "invalid_parameter"),
            ("err.world", f"/v1/datasets/{dataset}/batches?batch_size=256&world=3", 400, "invalid_parameter"),
            ("err.rank", f"/v1/datasets/{dataset}/batches?batch_size=256&world=2&rank=2", 400, "invalid_parameter"),
            ("err.unknown_cursor", "/v1/cursors/c-0000000000000000", 404, "unknown_cursor"),
        ]:
            st, doc, _ = api.json("GET", path)
            ck.add(cid, f"GET {path}", f"{want_st} {want_code}", f"{st} {doc}", st == want_st and error_code(doc) == want_code)
        metrics("metrics.fresh", "GET /metrics of a fresh daemon (informational: a labelled series may "
                "appear only once it has a value)", info=True)

    guarded("ops", "operations and error responses", ops)

    # --- the first stream: headers, first message, frame identity, data ---------------
    group = f"check-{int(time.time())}"
    state = {}

    def first_stream() -> None:
        c, resp = open_stream(base, dataset, **plan, group=group)
        hd = {k.lower(): v for k, v in resp.getheaders()}
        ck.add("stream.status", "GET …/batches status", 200, resp.status, resp.status == 200)
        if resp.status != 200:
            ck.add("stream.body", "error body", "-", resp.read()[:300], False)
            return
        ck.add("stream.type", "Content-Type", wire.STREAM_TYPE, hd.get("content-type"),
               (hd.get("content-type") or "").split(";")[0].strip() == wire.STREAM_TYPE)
        for h in ("mbdata-cursor", "mbdata-plan", "mbdata-dataset-version"):
            ck.add(f"stream.{h}", f"{h} header present", "present", hd.get(h), bool(hd.get(h)))
        ck.add("stream.bpe", "MBData-Batches-Per-Epoch", bpe, hd.get("mbdata-batches-per-epoch"),
               hd.get("mbdata-batches-per-epoch") == str(bpe))
        ck.add("stream.remaining", "MBData-Remaining", bpe, hd.get("mbdata-remaining"), hd.get("mbdata-remaining") == str(bpe))
        ck.add("stream.source", "MBData-Source with a matching shard set", "spool", hd.get("mbdata-source"),
               hd.get("mbdata-source") == "spool")
        state["cursor"] = hd.get("mbdata-cursor")
        m = wire.read_message(resp, strict=False)
        tensors = check_message(ck, "msg0", m, epoch=0, batch=0, rank=0, samples=batch, fields=fields)
        frame = shard_frame(spool_sets[1], 0, 0, 0) if 1 in spool_sets else None
        if m is not None and frame is not None:
            ck.add("msg0.as_stored", "frame sent exactly as stored in the shard set", f"{len(frame)} bytes, equal",
                   f"{m.length} bytes, {'equal' if bytes(m.payload) == frame else 'different'}",
                   bytes(m.payload) == frame)
        if tensors is not None:
            state["ids0"] = tensors["_id"].copy()
            con = sqlite3.connect(f"file:{mbdb}?mode=ro", uri=True)
            bad = []
            for j in (0, 1, batch // 2, batch - 1):
                i = int(tensors["_id"][j])
                row = con.execute("SELECT image, label FROM samples WHERE _id = ?", (i,)).fetchone()
                if row is None or row[0] != tensors["image"][j].tobytes() or row[1] != int(tensors["label"][j]):
                    bad.append(i)
            con.close()
            ck.add("msg0.data", "rows 0, 1, B/2, B-1 equal the dataset rows of their _id", "equal",
                   f"differ for _id {bad}" if bad else "equal", not bad)
            ids = tensors["_id"]
            ck.add("msg0.ids", "_id values distinct and in 1…N", "yes", f"min {ids.min()} max {ids.max()}",
                   len(set(ids.tolist())) == batch and ids.min() >= 1 and ids.max() <= n)
        c.close()  # cut the stream after one message

    guarded("stream", "first stream", first_stream)
    cursor = state.get("cursor")

    # --- cursors ----------------------------------------------------------------------
    def cursors() -> None:
        st, doc, _ = api.json("POST", f"/v1/cursors/{cursor}/acks", {"epoch": 0, "batches": [0]})
        eps = (doc or {}).get("epochs", []) if isinstance(doc, dict) else []
        e0 = next((e for e in eps if e.get("epoch") == 0), {})
        ck.add("ack", "ack batch 0 → state with low_watermark 1", "200, low_watermark 1",
               f"{st} {json.dumps(doc)[:300]}", st == 200 and e0.get("low_watermark") == 1)
        st, doc, _ = api.json("POST", f"/v1/cursors/{cursor}/acks", {"epoch": 0, "batches": [0]})
        ck.add("ack.twice", "acking a batch twice is harmless", 200, st, st == 200)
        st, doc, _ = api.json("POST", f"/v1/cursors/{cursor}/acks", {"nonsense": True})
        ck.add("ack.bad_body", "ack with a wrong body", "400 invalid_body", f"{st} {doc}",
               st == 400 and error_code(doc) == "invalid_body")
        st, doc, _ = api.json("GET", f"/v1/cursors/{cursor}")
        p = (doc or {}).get("plan", {}) if isinstance(doc, dict) else {}
        want = {"cursor": cursor, "dataset": dataset, "group": group, "mode": "partition", "rank": 0,
                "batches_per_epoch": bpe}
        ok = st == 200 and all(doc.get(k) == v for k, v in want.items()) and p.get("batch_size") == batch \
            and p.get("seed") == seed and p.get("world") == 1 and "plan_fingerprint" in doc and "dataset_version" in doc
        ck.add("cursor.get", "GET /v1/cursors/{id}", f"200 {want}, plan seed/batch_size/world",
               f"{st} {json.dumps(doc)[:400]}", ok)
        # reconnect: resumes after the acked batch, same cursor
        retries = 0
        while True:
            c, resp = open_stream(base, dataset, **plan, group=group)
            if resp.status == 409 and retries < 20:
                resp.read()
                c.close()
                retries += 1
                time.sleep(0.1)
                continue
            break
        hd = {k.lower(): v for k, v in resp.getheaders()}
        ck.add("resume.status", "reconnect right after cutting a stream", "200",
               f"{resp.status}" + (f" after {retries} × 409 cursor_busy, 0.1 s apart (the cut stream still counted as open)"
                                   if retries else ""),
               resp.status == 200)
        if resp.status == 200:
            ck.add("resume.cursor", "same parameters → same cursor", cursor, hd.get("mbdata-cursor"), hd.get("mbdata-cursor") == cursor)
            ck.add("resume.remaining", "MBData-Remaining skips acked batches", bpe - 1, hd.get("mbdata-remaining"),
                   hd.get("mbdata-remaining") == str(bpe - 1))
            m = wire.read_message(resp, strict=False)
            ck.add("resume.first", "first batch after resuming", 1, None if m is None else m.batch, m is not None and m.batch == 1)
            c2, r2 = open_stream(base, dataset, **plan, group=group)
            body = r2.read()
            try:
                doc2 = json.loads(body)
            except json.JSONDecodeError:
                doc2 = body[:200]
            ck.add("busy", "a second stream on the same cursor", "409 cursor_busy", f"{r2.status} {doc2}",
                   r2.status == 409 and error_code(doc2) == "cursor_busy")
            c2.close()
        c.close()
        time.sleep(0.3)
        st, doc, _ = api.json("DELETE", f"/v1/cursors/{cursor}")
        ck.add("delete", "DELETE /v1/cursors/{id}", 204, st, st == 204)
        c, resp = open_stream(base, dataset, **plan, group=group)
        retries = 0
        while resp.status == 409 and retries < 20:
            resp.read()
            c.close()
            time.sleep(0.1)
            retries += 1
            c, resp = open_stream(base, dataset, **plan, group=group)
        ck.add("delete.restart", "after DELETE the stream starts over", f"200, remaining {bpe}",
               f"{resp.status}, remaining {resp.getheader('MBData-Remaining')}",
               resp.status == 200 and resp.getheader("MBData-Remaining") == str(bpe))
        c.close()

    if cursor:
        guarded("cursors", "cursor operations", cursors)

    # --- partition over a world-k shard set (found in a subdirectory of the spool root) --
    for k, path in sorted(spool_sets.items()):
        if k == 1:
            continue

        def partition(k=k, path=path) -> None:
            c, resp = open_stream(base, dataset, batch_size=batch * k, seed=seed, epoch=0, world=k, rank=k - 1,
                                  group=f"{group}-w{k}")
            ck.add(f"w{k}.source", f"world {k} rank {k - 1}: source (set in {path.name}/)", "200 spool",
                   f"{resp.status} {resp.getheader('MBData-Source')}",
                   resp.status == 200 and resp.getheader("MBData-Source") == "spool")
            if resp.status == 200:
                m = wire.read_message(resp, strict=False)
                f = {"image": ("U8", shape), "label": ("I64", [batch]), "_id": ("I64", [batch])}
                check_message(ck, f"w{k}.msg0", m, epoch=0, batch=0, rank=k - 1, samples=batch, fields=f)
                frame = shard_frame(path, 0, 0, k - 1)
                if m is not None and frame is not None:
                    ck.add(f"w{k}.as_stored", "frame as stored", "equal",
                           "equal" if bytes(m.payload) == frame else "different", bytes(m.payload) == frame)
            c.close()

        guarded(f"w{k}", f"partition world {k}", partition)

    # --- live --------------------------------------------------------------------------
    if live:
        def live_check() -> None:
            c, resp = open_stream(live, dataset, **plan, group=f"{group}-live")
            ck.add("live.source", "daemon without --spool: MBData-Source", "200 live",
                   f"{resp.status} {resp.getheader('MBData-Source')}",
                   resp.status == 200 and resp.getheader("MBData-Source") == "live")
            if resp.status == 200:
                m = wire.read_message(resp, strict=False)
                tensors = check_message(ck, "live.msg0", m, epoch=0, batch=0, rank=0, samples=batch, fields=fields)
                if tensors is not None and "ids0" in state:
                    same = np.array_equal(tensors["_id"], state["ids0"])
                    ck.add("live.order", "live and spool give the same plan the same batch 0 (_id)", "equal",
                           "equal" if same else "different", same)
            c.close()

        guarded("live", "live daemon", live_check)

    guarded("metrics", "metrics", lambda: metrics(
        "metrics", "GET /metrics after streams and acks names every metric of §6"))

    # --- drain (last: stops the spool daemon) -----------------------------------------------
    if terminate is not None:
        def drain() -> None:
            c, resp = open_stream(base, dataset, **plan, group=f"{group}-drain")
            if resp.status != 200:
                ck.add("drain.open", "open a stream to drain", 200, resp.status, False)
                return
            first = wire.read_message(resp, strict=False)
            rc_holder: dict = {}
            import threading

            t = threading.Thread(target=lambda: rc_holder.setdefault("rc", terminate()), daemon=True)
            t.start()  # sends SIGTERM, then waits for the exit
            time.sleep(0.3)
            # §6: "SIGTERM or SIGINT drains: the daemon stops accepting connections and closes idle
            # ones; … (`503 draining` answers a request that arrives on an open connection in the
            # moment between the two.)" So a new connection is refused (or, racing, gets 503).
            try:
                st, doc, _ = wire.Connection(base, timeout=5).json("GET", "/healthz")
                got = f"{st} {doc}"
                ok = st == 503 and error_code(doc) == "draining"
            except ConnectionRefusedError as e:
                got, ok = f"{type(e).__name__}: {e}", True
            except (OSError, http.client.HTTPException) as e:
                got, ok = f"{type(e).__name__}: {e}", False
            ck.add("drain.healthz", "a new connection while draining (a stream still open)",
                   "refused (or 503 draining)", got, ok)
            end, count, deadline = None, 1 if first else 0, time.time() + 60
            try:
                while time.time() < deadline:
                    m = wire.read_message(resp, strict=False)
                    if m is None:
                        break
                    if m.kind != wire.KIND_BATCH:
                        end = m
                        break
                    count += 1
                got = "body ended without an end message" if end is None else f"kind {end.kind} {bytes(end.payload)[:200]!r}"
                ok = end is not None and end.kind == wire.KIND_END and end.json().get("reason") == "draining"
            except (OSError, EOFError, http.client.HTTPException, wire.ProtocolError, ValueError) as e:
                got, ok = f"{type(e).__name__}: {e} after {count} batches", False
            ck.add("drain.end", "open stream ends with an end message, reason draining",
                   'kind 2 {"reason": "draining", …}', f"{got} (after {count} batches)", ok)
            c.close()
            t.join(30)
            rc = rc_holder.get("rc")
            ck.add("drain.exit", "daemon exits 0 after SIGTERM", 0, rc, rc == 0)

        guarded("drain", "drain on SIGTERM", drain)

    api.close()
    failed = [c for c in ck.items if c["ok"] is False]
    counted = [c for c in ck.items if c["ok"] is not None]
    log(f"protocol checks: {len(counted) - len(failed)}/{len(counted)} as documented"
        + ("" if not failed else "; differ: " + ", ".join(c["id"] for c in failed)))
    return ck.items
