"""The Open Inference Protocol binary tensor extension (KServe V2 / Triton HTTP), both ways.

Request: a JSON header of `Inference-Header-Content-Length` bytes, then the raw tensors in the
order of the inputs that carry `parameters.binary_data_size`. Response: when the request asks
(`parameters.binary_data_output`, or `parameters.binary_data` on a requested output), those
outputs carry `parameters.binary_data_size` instead of `data` and their bytes follow the JSON
header; the response names the header length in `Inference-Header-Content-Length`.

Raw layout: little-endian, row-major; BYTES elements are a 4-byte little-endian length and the
bytes. numpy only; tritonclient's defaults (binary inputs, binary outputs) work unmodified.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_kit.errors import ValidationError

HEADER = "inference-header-content-length"  # lower-case: headers arrive lower-cased
NUMERIC = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
DATATYPES = frozenset(NUMERIC) | {"BYTES"}
_LEN = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """(JSON header, binary tail or None) of a request body."""
    if header_length is None:
        return body, None
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if n < 0 or n > len(body):
        raise ValidationError(
            f"Inference-Header-Content-Length: {header_length[:20]!r} is not a length within "
            f"the {len(body)}-byte body", field="Inference-Header-Content-Length")
    return body[:n], memoryview(body)[n:]


def binary_size(tensor: dict[str, Any], where: str) -> int | None:
    params = tensor.get("parameters")
    if params is None:
        return None
    if not isinstance(params, dict):
        raise ValidationError(f"{where}.parameters: must be an object", field="inputs")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValidationError(f"{where}.parameters.binary_data_size: must be a byte count",
                              field="inputs")
    return size


def decode_tensor(raw: memoryview, datatype: str, count: int, where: str) -> np.ndarray | list:
    """`count` elements of `datatype` from raw bytes: a numpy array (numeric) or a list of str
    (BYTES, UTF-8)."""
    if datatype == "BYTES":
        out: list[str] = []
        pos, end = 0, len(raw)
        for _ in range(count):
            if pos + 4 > end:
                raise ValidationError(f"{where}: BYTES data ends early", field="inputs")
            (n,) = _LEN.unpack_from(raw, pos)
            pos += 4
            if pos + n > end:
                raise ValidationError(f"{where}: BYTES data ends early", field="inputs")
            try:
                out.append(bytes(raw[pos:pos + n]).decode("utf-8"))
            except UnicodeDecodeError:
                raise ValidationError(f"{where}: BYTES element is not UTF-8",
                                      field="inputs") from None
            pos += n
        if pos != end:
            raise ValidationError(f"{where}: {end - pos} bytes left after {count} BYTES elements",
                                  field="inputs")
        return out
    dtype = NUMERIC[datatype]
    if len(raw) != count * dtype.itemsize:
        raise ValidationError(
            f"{where}: {len(raw)} bytes for {count} {datatype} values (expected "
            f"{count * dtype.itemsize})", field="inputs")
    return np.frombuffer(raw, dtype=dtype, count=count)


def take_binary(inputs: list[dict[str, Any]], tail: memoryview | None) -> list[Any]:
    """Each input's raw bytes (memoryview) in order, or None for a JSON `data` input; checks
    that the sizes add up to the tail exactly."""
    out: list[Any] = []
    pos = 0
    for i, tensor in enumerate(inputs):
        size = binary_size(tensor, f"inputs[{i}]") if isinstance(tensor, dict) else None
        if size is None:
            out.append(None)
            continue
        if tail is None:
            raise ValidationError(f"inputs[{i}].parameters.binary_data_size: binary data needs "
                                  "the Inference-Header-Content-Length header", field="inputs")
        if pos + size > len(tail):
            raise ValidationError(f"inputs[{i}]: binary data ends early", field="inputs")
        out.append(tail[pos:pos + size])
        pos += size
    if tail is not None and pos != len(tail):
        raise ValidationError(f"body: {len(tail) - pos} bytes of binary data no input claims",
                              field="body")
    return out


@dataclass
class Output:
    """One response tensor: JSON data, or raw bytes after the header."""

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray
    decimals: int | None = None  # JSON only: probabilities answer with 6, as V1 does

    def tensor(self, binary: bool) -> tuple[dict[str, Any], bytes | None]:
        head: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": self.shape}
        if not binary:
            head["data"] = _json_data(self.values, self.datatype, self.decimals)
            return head, None
        raw = encode_tensor(self.values, self.datatype)
        head["parameters"] = {"binary_data_size": len(raw)}
        return head, raw


def encode_tensor(values: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in values.reshape(-1).tolist():
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(_LEN.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=NUMERIC[datatype]).tobytes()


def _json_data(values: np.ndarray, datatype: str, decimals: int | None) -> list:
    flat = values.reshape(-1)
    if datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in flat.tolist()]
    if decimals is not None:
        return np.round(flat.astype(np.float64), decimals).tolist()
    return flat.tolist()


def label_datatype(labels: np.ndarray) -> str:
    kind = labels.dtype.kind
    return "INT64" if kind in "iub" else "FP32" if kind == "f" else "BYTES"


def wanted_outputs(data: dict[str, Any], available: list[str]) -> dict[str, bool]:
    """{output name: binary?} in response order: the requested outputs (all if none are named);
    binary if the output asks (`parameters.binary_data`) or the request does
    (`parameters.binary_data_output`)."""
    params = data.get("parameters") or {}
    default = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    requested = data.get("outputs")
    if requested is None:
        return dict.fromkeys(available, default)
    if not isinstance(requested, list):
        raise ValidationError("outputs: must be a list of requested outputs", field="outputs")
    out: dict[str, bool] = {}
    for i, o in enumerate(requested):
        name = o.get("name") if isinstance(o, dict) else None
        if name not in available:
            raise ValidationError(f"outputs[{i}].name: {str(name)[:40]!r} is not an output of "
                                  f"this model ({available})", field="outputs")
        p = o.get("parameters") or {}
        out[name] = bool(p.get("binary_data", default)) if isinstance(p, dict) else default
    return out
