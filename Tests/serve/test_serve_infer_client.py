"""Inference in the client alone, against a scripted fake daemon: the lease query, the
submission's body and headers, the retry rules of serve-protocol.md §8 (a retried
submission answered `already_done` is a success, a first one is not), refusals, and the
encoding of numpy arrays and torch tensors."""

from __future__ import annotations

import json

import lz4.frame
import numpy as np
import pytest
import safetensors.numpy

from mbdata_client import Client, MBDataError, wire
from mbdata_client.outputs import SAFETENSORS_LZ4_TYPE, SAFETENSORS_TYPE, encode_safetensors, output_arrays
from servetest import fast_client

CURSOR = "o-0123456789abcdef"


def padded_batch(index=0, *, lease=9, rows=4, real=3):
    """A leased batch of `rows` rows whose last `rows - real` are padding (`_id` −1)."""
    ids = np.full(rows, -1, dtype=np.int64)
    ids[:real] = np.arange(index * rows + 1, index * rows + 1 + real)
    tensors = {"x": np.arange(rows * 2, dtype=np.float32).reshape(rows, 2), "_id": ids,
               "_valid": (ids >= 0).astype(np.uint8)}
    return wire.encode_batch(tensors, batch=index, lease=lease)


def end_message():
    return wire.encode_message(wire.KIND_END, json.dumps({"reason": "complete", "sent": 1}).encode())


def committed(batch=0, rows=3):
    return {"cursor": CURSOR, "batch": batch, "rows": rows, "finished": batch + 1, "batches": 1}


def error(code, message="m", field=None):
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def outputs_of(rows=4):
    return {"pred": np.arange(rows, dtype=np.int64), "prob": np.full((rows, 10), 0.1, dtype=np.float32)}


def one_batch(fake, client=None, **options):
    """Scripts one leased batch and returns it from a started infer loop."""
    fake.stream(padded_batch(), cursor=CURSOR)
    client = client or fast_client(fake.url)
    batches = client.infer("d", output="preds", batch_size=4, split="val", **options)
    return batches, next(batches)


def submissions(fake):
    return [r for r in fake.requests if r["path"].endswith("/outputs")]


def test_infer_leases_with_the_protocols_query_and_submits_safetensors_under_the_lease(fake):
    fake.script.append((204, {"Retry-After": "5"}, b""))
    fake.stream(padded_batch(lease=9), cursor=CURSOR)
    fake.json(200, committed())
    fake.stream(end_message(), cursor=CURSOR)
    client = fast_client(fake.url, poll_interval=0.01)
    answers = []
    for batch in client.infer("d", output="preds", batch_size=4, split="val", lease_seconds=7):
        assert batch.mode == "infer" and batch.lease == 9 and batch.ids.tolist() == [1, 2, 3, -1]
        answers.append(batch.submit(outputs_of()))
    assert answers == [committed()]
    leases = [r for r in fake.requests if r["path"] == "/v1/datasets/d/lease"]
    assert len(leases) == 3
    assert leases[0]["query"] == {"mode": "infer", "output": "preds", "batch_size": "4", "seed": "0",
                                  "shuffle": "false", "tail": "pad", "lease_seconds": "7", "split": "val"}
    [submission] = submissions(fake)
    assert submission["method"] == "POST" and submission["path"] == f"/v1/cursors/{CURSOR}/outputs"
    assert submission["headers"]["MBData-Lease"] == "9"
    assert submission["headers"]["Content-Type"] == SAFETENSORS_TYPE
    sent = safetensors.numpy.load(submission["body"])
    assert sorted(sent) == ["_id", "pred", "prob"]
    assert sent["_id"].tolist() == [1, 2, 3, -1]
    assert np.array_equal(sent["prob"], outputs_of()["prob"]) and sent["pred"].dtype == np.int64


def test_a_retry_answered_already_done_is_a_success(fake):
    batches, batch = one_batch(fake)
    fake.json(503, error("state_unavailable"), {"Retry-After": "1"})
    fake.json(409, error("already_done"))
    answer = batch.submit(outputs_of())
    assert answer == {"cursor": CURSOR, "batch": 0, "rows": 3, "already_done": True}
    first, second = submissions(fake)
    assert first["body"] == second["body"] and second["headers"]["MBData-Lease"] == "9"


def test_a_submission_whose_answer_was_lost_is_sent_again(fake):
    batches, batch = one_batch(fake)
    fake.hang_up()
    fake.json(409, error("already_done"))
    assert batch.submit(outputs_of())["already_done"] is True
    assert len(submissions(fake)) == 2


@pytest.mark.parametrize("status, code, field", [
    (409, "already_done", None),     # on a first attempt: someone else's outputs are committed
    (409, "lease_expired", None),    # the batch goes to another consumer
    (400, "invalid_outputs", "prob"),
])
def test_refusals_of_a_first_submission_raise_and_are_not_retried(fake, status, code, field):
    batches, batch = one_batch(fake)
    fake.json(status, error(code, "refused", field=field))
    with pytest.raises(MBDataError) as raised:
        batch.submit(outputs_of())
    assert (raised.value.status, raised.value.code, raised.value.field) == (status, code, field)
    if field is not None:
        assert f"[field {field}]" in str(raised.value)
    assert len(submissions(fake)) == 1 and batch.submitted is None


def test_compress_true_sends_one_lz4_frame_of_the_same_buffer(fake):
    batches, batch = one_batch(fake, compress=True)
    fake.json(200, committed())
    batch.submit(outputs_of())
    [submission] = submissions(fake)
    assert submission["headers"]["Content-Type"] == SAFETENSORS_LZ4_TYPE
    assert lz4.frame.get_frame_info(submission["body"])["content_size"] > 0
    sent = safetensors.numpy.load(lz4.frame.decompress(submission["body"]))
    assert sent["pred"].tolist() == [0, 1, 2, 3]


def test_a_small_body_to_a_local_daemon_is_not_compressed(fake):
    batches, batch = one_batch(fake)
    fake.json(200, committed())
    batch.submit({"pred": np.zeros(4, np.int64), "prob": np.zeros((4, 1 << 16), np.float32)})  # 1 MiB, local
    assert submissions(fake)[0]["headers"]["Content-Type"] == SAFETENSORS_TYPE


def test_submit_on_a_share_batch_and_ack_on_an_inference_batch_raise_without_a_request(fake):
    fake.stream(padded_batch(lease=5), cursor="s-share")
    share = next(fast_client(fake.url).share("d", 4, group="g"))
    with pytest.raises(MBDataError) as raised:
        share.submit(outputs_of())
    assert raised.value.code == "wrong_mode"
    batches, batch = one_batch(fake)
    with pytest.raises(MBDataError) as raised:
        batch.ack()
    assert raised.value.code == "wrong_mode"
    assert submissions(fake) == [] and not [r for r in fake.requests if r["path"].endswith("/acks")]


def test_a_given_id_is_sent_as_given(fake):
    batches, batch = one_batch(fake)
    fake.json(200, committed())
    batch.submit({**outputs_of(), "_id": np.array([9, 9, 9, 9], np.int64)})
    assert safetensors.numpy.load(submissions(fake)[0]["body"])["_id"].tolist() == [9, 9, 9, 9]


def test_infer_refuses_a_bad_tail_before_any_request(fake):
    with pytest.raises(ValueError):
        next(Client(fake.url).infer("d", output="preds", batch_size=4, tail="wrap"))
    assert fake.requests == []


# --- encoding ---------------------------------------------------------------------------


def test_every_schema_dtype_round_trips_through_the_safetensors_buffer():
    arrays = {
        name: np.arange(12).reshape(3, 4).astype(name)
        for name in ("uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
    }
    arrays["bool"] = np.array([[True, False]] * 3)
    arrays["empty"] = np.zeros((0, 5), np.float32)
    buffer = encode_safetensors(output_arrays(arrays))
    (header_length,) = np.frombuffer(bytes(buffer[:8]), "<u8")
    assert header_length % 8 == 0
    loaded = safetensors.numpy.load(bytes(buffer))
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array), name


def test_big_endian_and_strided_arrays_are_sent_little_endian_and_contiguous():
    base = np.arange(20, dtype=">i8").reshape(4, 5)
    arrays = output_arrays({"big": base, "strided": np.arange(40, dtype=np.float32).reshape(4, 10)[:, ::2]})
    loaded = safetensors.numpy.load(bytes(encode_safetensors(arrays)))
    assert loaded["big"].dtype == np.dtype("<i8") and loaded["big"].tolist() == base.tolist()
    assert loaded["strided"].tolist() == np.arange(40, dtype=np.float32).reshape(4, 10)[:, ::2].tolist()


@pytest.mark.parametrize("value", [np.array(["a", "b"]), np.array([1, 2], np.uint32), np.array([object()])])
def test_dtypes_outside_the_schema_format_are_refused_by_name(value):
    with pytest.raises(TypeError, match="'out'"):
        output_arrays({"out": value})


def test_torch_tensors_are_detached_moved_to_the_cpu_and_made_contiguous():
    torch = pytest.importorskip("torch")
    weights = torch.ones(3, 4, requires_grad=True)
    logits = (weights * 2).t()  # not contiguous, requires grad
    arrays = output_arrays({"logits": logits, "pred": logits.argmax(1), "half": logits.to(torch.bfloat16)})
    assert arrays["logits"][1] == "F32" and arrays["logits"][0].flags.c_contiguous
    assert arrays["pred"][1] == "I64"
    assert arrays["half"][1] == "BF16" and arrays["half"][0].dtype == np.uint16
    loaded = safetensors.numpy.load(bytes(encode_safetensors({"logits": arrays["logits"], "pred": arrays["pred"]})))
    assert loaded["logits"].shape == (4, 3) and np.all(loaded["logits"] == 2)
    widened = (arrays["half"][0].astype("<u4") << 16).view("<f4")
    assert np.all(widened == 2)
