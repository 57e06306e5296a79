"""Just enough of the ONNX protobuf format to write a model, since the `onnx` package is not a dep.

Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto, TypeProto); onnxruntime parses the bytes this module produces.
"""

from __future__ import annotations

import struct

import numpy as np

FLOAT, INT32, INT64 = 1, 6, 7  # TensorProto.DataType
_DTYPES = {"float32": FLOAT, "int32": INT32, "int64": INT64}
_ATTR_FLOAT, _ATTR_INT = 1, 2  # AttributeProto.AttributeType
IR_VERSION = 8


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values take ten bytes, as in two's complement."""
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(field: int, n: int) -> bytes:
    """A varint field (wire type 0)."""
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes and nested messages."""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    """A string field."""
    return _bytes(field, text.encode("utf-8"))


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto holding the array as little-endian raw_data."""
    arr = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    dims = b"".join(_int(1, d) for d in arr.shape)
    return dims + _int(2, _DTYPES[arr.dtype.name]) + _str(8, name) + _bytes(9, arr.tobytes())


def value_info(name: str, elem_type: int, shape: list[int | str]) -> bytes:
    """ValueInfoProto for a graph input or output; str dims are symbolic (dynamic)."""
    dims = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def node(op: str, inputs: list[str], outputs: list[str], domain: str = "",
         **attrs: int | float) -> bytes:
    """NodeProto; int and float attributes only, which is all this project's graphs use."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, outputs[0]) + _str(4, op) + _str(7, domain)
    return body + b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items())


def _attribute(name: str, value: int | float) -> bytes:
    """AttributeProto for one int or float."""
    if isinstance(value, float):
        return _str(1, name) + _int(20, _ATTR_FLOAT) + _varint(2 << 3 | 5) + struct.pack("<f", value)
    return _str(1, name) + _int(20, _ATTR_INT) + _int(3, value)


def model(nodes: list[bytes], initializers: list[bytes], inputs: list[bytes], outputs: list[bytes],
          opsets: dict[str, int]) -> bytes:
    """ModelProto around one graph, importing the given operator sets (domain -> version)."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, "main")
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, i) for i in inputs) + b"".join(_bytes(12, o) for o in outputs)
    imports = b"".join(_bytes(8, _str(1, d) + _int(2, v)) for d, v in opsets.items())
    return _int(1, IR_VERSION) + imports + _str(2, "trade-hub") + _bytes(7, graph)
