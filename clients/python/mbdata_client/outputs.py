"""The body of an outputs submission (schemas/serve-protocol.md, § inference): the
tensors a consumer computed for one batch — numpy arrays or torch tensors — as one
safetensors buffer, optionally inside one LZ4 frame.

The buffer is written here rather than by `safetensors.numpy.save`: each tensor is copied
once, straight into the buffer that is sent, and a torch `bfloat16` tensor goes as `BF16`
(numpy has no bfloat16). torch is never imported unless a torch tensor is given.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import lz4.frame
import numpy as np

__all__ = [
    "LZ4_MIN_BYTES",
    "SAFETENSORS_TYPE",
    "SAFETENSORS_LZ4_TYPE",
    "encode_safetensors",
    "frame_if_smaller",
    "lz4_frame",
    "output_arrays",
]

#: Content type of a submission body that is a safetensors buffer.
SAFETENSORS_TYPE = "application/vnd.mbdata.safetensors"
#: Content type of a submission body that is one LZ4 frame holding a safetensors buffer.
SAFETENSORS_LZ4_TYPE = "application/vnd.mbdata.safetensors+lz4"
#: Bodies at least this large are LZ4-framed when the daemon is not on this machine.
LZ4_MIN_BYTES = 1 << 20

# numpy dtype → safetensors dtype, for the dtypes of the schema format (shard-format.md §5.1).
_SAFETENSORS_DTYPES = {
    np.dtype("uint8"): "U8",
    np.dtype("int8"): "I8",
    np.dtype("int16"): "I16",
    np.dtype("int32"): "I32",
    np.dtype("int64"): "I64",
    np.dtype("float16"): "F16",
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("bool"): "BOOL",
}
_BF16 = "BF16"


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "cpu")


def _torch_array(name: str, tensor: Any) -> tuple[np.ndarray, str]:
    """A torch tensor moved to the CPU and made contiguous, as a numpy array and its
    safetensors dtype (`BF16` travels as its raw 16-bit words)."""
    tensor = tensor.detach().cpu().contiguous()
    if str(tensor.dtype) == "torch.bfloat16":
        import torch  # already imported by whoever made the tensor

        return tensor.view(torch.int16).numpy().view(np.uint16), _BF16
    try:
        return _numpy_array(name, tensor.numpy())
    except TypeError as error:
        raise TypeError(f"output {name!r}: torch dtype {tensor.dtype} has no numpy equivalent ({error})") from None


def _numpy_array(name: str, value: Any) -> tuple[np.ndarray, str]:
    array = np.asarray(value)
    kind = _SAFETENSORS_DTYPES.get(np.dtype(array.dtype.name)) if array.dtype.kind in "biuf" else None
    if kind is None:
        raise TypeError(
            f"output {name!r}: dtype {array.dtype} is not one of the schema format's "
            f"({', '.join(sorted(d.name for d in _SAFETENSORS_DTYPES))}, or bfloat16 from torch)"
        )
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array), kind


def output_arrays(outputs: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, str]]:
    """Each output as a C-contiguous little-endian numpy array and its safetensors dtype.
    Accepts numpy arrays (or anything `np.asarray` takes) and torch tensors (detached,
    moved to the CPU); refuses names that are not strings and dtypes outside the schema
    format's with `TypeError`."""
    arrays = {}
    for name, value in outputs.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"output names must be non-empty strings, got {name!r}")
        arrays[name] = _torch_array(name, value) if _is_torch_tensor(value) else _numpy_array(name, value)
    return arrays


def encode_safetensors(arrays: Mapping[str, tuple[np.ndarray, str]]) -> bytearray:
    """A safetensors buffer of `arrays` (from `output_arrays`), tensors back to back in
    the mapping's order, the JSON header padded with spaces to a multiple of 8."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (array, kind) in arrays.items():
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    start = 8 + len(text)
    buffer = bytearray(start + offset)
    struct.pack_into("<Q", buffer, 0, len(text))
    buffer[8:start] = text
    view = np.frombuffer(buffer, dtype=np.uint8)
    position = start
    for array, _ in arrays.values():
        size = array.nbytes
        if size:
            view[position : position + size] = array.reshape(-1).view(np.uint8)
        position += size
    return buffer


def lz4_frame(buffer: bytes | bytearray) -> bytes:
    """`buffer` in one LZ4 frame, its content size stored."""
    return lz4.frame.compress(buffer, store_size=True)


def frame_if_smaller(buffer: bytes | bytearray) -> bytes | None:
    """`lz4_frame(buffer)`, or None when the frame would not be at least a tenth smaller
    than the buffer — not worth the daemon's decoding."""
    frame = lz4_frame(buffer)
    return frame if len(frame) < len(buffer) * 0.9 else None
