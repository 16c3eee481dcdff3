"""Python side of the `.licm` model format (docs/model-format.md, version 1.1).

Nodes hold their weights in PyTorch/ONNX layout; ``encode_licm`` is the one place that
transposes them to the file's ``[cout][kh][kw][cin]`` layout, and ``decode_licm`` the one
place that transposes them back. ``decode_licm`` validates exactly like the C++ reader.

Version 1.1 adds the int16 operators of docs/int16.md (op codes 7-14). A file that uses
none of them is written as 1.0, byte for byte what earlier writers produced.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lic2cpp import fixedpoint
from lic2cpp.errors import LicError

MAGIC = b"LICM"
VERSION_MAJOR = 1
VERSION_MINOR = 1  # the newest minor version this code reads and writes
HEADER_SIZE = 24

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3

MAX_NODES = 4096
MAX_CHANNELS = 4096
MAX_KERNEL = 15
MAX_STRIDE = 8
MAX_NAME = 256

OP_CODES = {
    "conv2d": 1,
    "conv_transpose2d": 2,
    "relu": 3,
    "leaky_relu": 4,
    "gdn": 5,
    "add": 6,
    # 1.1: int16 fixed point (docs/int16.md)
    "quantize": 7,
    "dequantize": 8,
    "s16_conv2d": 9,
    "s16_conv_transpose2d": 10,
    "s16_relu": 11,
    "s16_leaky_relu": 12,
    "s16_gdn": 13,
    "s16_add": 14,
}
OP_NAMES = {code: name for name, code in OP_CODES.items()}
FIRST_V11_OP = 7

CONV_ATTRS = ["cin", "cout", "kh", "kw", "stride_h", "stride_w",
              "pad_top", "pad_left", "pad_bottom", "pad_right"]
CONVT_ATTRS = [*CONV_ATTRS, "out_pad_h", "out_pad_w"]
CONV_OPS = ("conv2d", "conv_transpose2d", "s16_conv2d", "s16_conv_transpose2d")
# Signed (i32) attributes of the int16 operators, in file order, after their u32 ones.
S16_CONV_SHIFTS = ["weight_shift", "out_shift"]
GDN_SHIFTS = ["square_shift", "gamma_shift", "root_shift", "out_shift"]
I32_ATTRS = {
    "quantize": ["shift"],
    "s16_conv2d": S16_CONV_SHIFTS,
    "s16_conv_transpose2d": S16_CONV_SHIFTS,
    "s16_leaky_relu": ["alpha_q", "alpha_shift"],
    "s16_gdn": GDN_SHIFTS,
    "s16_add": ["out_shift"],
}


@dataclass
class Node:
    """One operator. ``inputs`` are value ids: 0 is the model input, node i gives i+1."""

    op: str
    inputs: list[int]
    attrs: dict[str, int | float] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ModelFile:
    name: str
    in_channels: int
    out_channels: int
    nodes: list[Node]


def fingerprint(data: bytes) -> int:
    """FNV-1a 64-bit hash (the header's fingerprint of the body bytes)."""
    h = FNV_OFFSET
    prime = FNV_PRIME
    mask = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        h = ((h ^ byte) * prime) & mask
    return h


def header_fingerprint(data: bytes) -> int:
    """The fingerprint recorded in the header of ``.licm`` file bytes ``data`` (the
    FNV-1a 64 of the body: the value the codec's bitstream header carries)."""
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        raise LicError("not a lic2cpp model file (bad magic or too short)")
    return int(struct.unpack_from("<Q", data, 16)[0])


def output_side(node: Node, side: int) -> int:
    """Height of ``node``'s output for an input of height ``side`` (the formulas of
    docs/model-format.md; widths follow the same formulas with the ``_w``/left/right
    attributes)."""
    a = node.attrs
    if node.op in ("conv2d", "s16_conv2d"):
        return ((side + int(a["pad_top"]) + int(a["pad_bottom"]) - int(a["kh"]))
                // int(a["stride_h"]) + 1)
    if node.op in ("conv_transpose2d", "s16_conv_transpose2d"):
        return ((side - 1) * int(a["stride_h"]) - int(a["pad_top"]) - int(a["pad_bottom"])
                + int(a["kh"]) + int(a["out_pad_h"]))
    return side


def downsampling_factor(model: ModelFile) -> int:
    """Input side / output side of an analysis transform.

    Sizes are propagated through the graph for a large input; the factor must divide it
    exactly (true of every CompressAI g_a).
    """
    side = 4096
    sides = [side]
    for node in model.nodes:
        sides.append(output_side(node, sides[node.inputs[0]]))
    out = sides[-1]
    if out < 1 or side % out != 0:
        raise LicError(f"{model.name}: cannot find the downsampling factor of the analysis "
                       "transform")
    return side // out


def node_out_channels(node: Node, in_channels: int) -> int:
    """Channels of ``node``'s output given the channels of its (first) input."""
    if node.op in CONV_OPS:
        return int(node.attrs["cout"])
    return in_channels


def infer_channels(nodes: list[Node]) -> tuple[int, int]:
    """(in_channels, out_channels) of a node list: from the first conv or GDN that reads
    the input (directly or through channel-preserving ops such as ``quantize``), and by
    following channels through the graph to the last node."""
    in_ch = None
    same = {0}  # values with the input's channel count
    for i, node in enumerate(nodes):
        if node.inputs[0] not in same:
            continue
        if node.op in CONV_OPS:
            in_ch = int(node.attrs["cin"])
            break
        if node.op in ("gdn", "s16_gdn"):
            in_ch = int(node.attrs["channels"])
            break
        same.add(i + 1)
    if in_ch is None:
        raise LicError("cannot infer the model's input channels: no conv or GDN reads it")
    channels = [in_ch]
    for node in nodes:
        channels.append(node_out_channels(node, channels[node.inputs[0]]))
    return in_ch, channels[-1]


# ---------------------------------------------------------------------------- writing

def _u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _f32(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def _expect_shape(node: Node, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in node.tensors:
        raise LicError(f"{node.op} node is missing tensor '{key}'")
    arr = np.asarray(node.tensors[key], dtype=np.float32)
    if arr.shape != shape:
        raise LicError(f"{node.op} tensor '{key}' has shape {arr.shape}, expected {shape}")
    return arr


def _i32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def _i16_array(array: np.ndarray) -> bytes:
    """int16 little-endian, zero-padded to a multiple of 4 bytes."""
    data = np.ascontiguousarray(array, dtype="<i2").tobytes()
    return data + b"\0" * ((-len(data)) % 4)


def _i32_array(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<i4").tobytes()


def _expect_int(node: Node, key: str, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """An integer tensor of ``node``, checked for shape and range ``[lo, hi]``."""
    if key not in node.tensors:
        raise LicError(f"{node.op} node is missing tensor '{key}'")
    raw = np.asarray(node.tensors[key])
    if raw.shape != shape:
        raise LicError(f"{node.op} tensor '{key}' has shape {raw.shape}, expected {shape}")
    arr = raw.astype(np.int64)
    if not np.array_equal(arr, raw):
        raise LicError(f"{node.op} tensor '{key}' holds non-integer values")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise LicError(f"{node.op} tensor '{key}' has values outside [{lo}, {hi}]")
    return arr


def _conv_weight_in_file(w: np.ndarray, transpose: bool) -> np.ndarray:
    """PyTorch/ONNX layout -> the file's [co][ky][kx][ci]."""
    return w.transpose(1, 2, 3, 0) if transpose else w.transpose(0, 2, 3, 1)


def _encode_s16(node: Node) -> list[bytes]:
    a = node.attrs
    parts = []
    if node.op in ("s16_conv2d", "s16_conv_transpose2d"):
        transpose = node.op == "s16_conv_transpose2d"
        parts.append(_u32(*(int(a[n]) for n in (CONVT_ATTRS if transpose else CONV_ATTRS))))
        parts.append(_i32(*(int(a[n]) for n in S16_CONV_SHIFTS)))
        cin, cout, kh, kw = (int(a[n]) for n in ("cin", "cout", "kh", "kw"))
        shape = (cin, cout, kh, kw) if transpose else (cout, cin, kh, kw)
        w = _expect_int(node, "weight", shape, -fixedpoint.WEIGHT_MAX, fixedpoint.WEIGHT_MAX)
        parts.append(_i16_array(_conv_weight_in_file(w, transpose)))
        parts.append(_i32_array(_expect_int(node, "bias", (cout,), fixedpoint.INT32_MIN,
                                            fixedpoint.INT32_MAX)))
    elif node.op == "s16_gdn":
        c = int(a["channels"])
        parts.append(_u32(c, int(a["inverse"])))
        parts.append(_i32(*(int(a[n]) for n in GDN_SHIFTS)))
        parts.append(_i32_array(_expect_int(node, "beta", (c,), 1, fixedpoint.INT32_MAX)))
        parts.append(_i16_array(_expect_int(node, "gamma", (c, c), 0, fixedpoint.INT16_MAX)))
    elif node.op in I32_ATTRS:
        parts.append(_i32(*(int(a[n]) for n in I32_ATTRS[node.op])))
    return parts


def _encode_node(node: Node) -> bytes:
    if node.op not in OP_CODES:
        raise LicError(f"unknown op '{node.op}'")
    parts = [_u32(OP_CODES[node.op], len(node.inputs), *node.inputs)]
    a = node.attrs
    required = {"conv2d": CONV_ATTRS, "conv_transpose2d": CONVT_ATTRS,
                "s16_conv2d": CONV_ATTRS, "s16_conv_transpose2d": CONVT_ATTRS,
                "leaky_relu": ["alpha"], "gdn": ["channels", "inverse"],
                "s16_gdn": ["channels", "inverse"]}.get(node.op, [])
    required = [*required, *I32_ATTRS.get(node.op, [])]
    missing = [n for n in required if n not in a]
    if missing:
        raise LicError(f"{node.op} node is missing attributes {missing}")
    if node.op in ("conv2d", "conv_transpose2d"):
        names = CONV_ATTRS if node.op == "conv2d" else CONVT_ATTRS
        parts.append(_u32(*(int(a[n]) for n in names)))
        cin, cout, kh, kw = (int(a[n]) for n in ("cin", "cout", "kh", "kw"))
        if node.op == "conv2d":
            w = _expect_shape(node, "weight", (cout, cin, kh, kw))
        else:
            w = _expect_shape(node, "weight", (cin, cout, kh, kw))
        parts.append(_f32(_conv_weight_in_file(w, node.op == "conv_transpose2d")))
        parts.append(_f32(_expect_shape(node, "bias", (cout,))))
    elif node.op == "leaky_relu":
        parts.append(struct.pack("<f", float(a["alpha"])))
    elif node.op == "gdn":
        c = int(a["channels"])
        parts.append(_u32(c, int(a["inverse"])))
        parts.append(_f32(_expect_shape(node, "beta", (c,))))
        parts.append(_f32(_expect_shape(node, "gamma", (c, c))))
    else:
        parts += _encode_s16(node)
    return b"".join(parts)


def minor_version(m: ModelFile) -> int:
    """The oldest minor version that holds ``m``: 1 with int16 ops, else 0."""
    return 1 if any(OP_CODES.get(n.op, 0) >= FIRST_V11_OP for n in m.nodes) else 0


def encode_body(m: ModelFile) -> bytes:
    name = m.name.encode("utf-8")
    pad = (-len(name)) % 4
    parts = [_u32(m.in_channels, m.out_channels, len(m.nodes), len(name)), name, b"\0" * pad]
    parts += [_encode_node(node) for node in m.nodes]
    return b"".join(parts)


def encode_licm(m: ModelFile) -> bytes:
    """The complete file. The result is decoded again so a writer can never produce a
    file the reader (and so the C++ runtime) would refuse."""
    body = encode_body(m)
    header = MAGIC + struct.pack("<HHQQ", VERSION_MAJOR, minor_version(m), len(body),
                                 fingerprint(body))
    data = header + body
    _decode(data, check_fingerprint=False)
    return data


def write_licm(path: str | Path, m: ModelFile) -> None:
    Path(path).write_bytes(encode_licm(m))


# ---------------------------------------------------------------------------- reading

class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.pos = offset

    def need(self, n: int, what: str) -> None:
        if n > len(self.data) - self.pos:
            raise LicError(f"model file truncated while reading {what}")

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return v

    def f32s(self, count: int, what: str) -> np.ndarray:
        self.need(4 * count, what)
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos += 4 * count
        if not np.all(np.isfinite(arr)):
            raise LicError(f"non-finite value in {what}")
        return arr.astype(np.float32)

    def i32(self, what: str) -> int:
        self.need(4, what)
        (v,) = struct.unpack_from("<i", self.data, self.pos)
        self.pos += 4
        return v

    def i32s(self, count: int, what: str, lo: int, hi: int) -> np.ndarray:
        self.need(4 * count, what)
        arr = np.frombuffer(self.data, dtype="<i4", count=count, offset=self.pos)
        self.pos += 4 * count
        return _in_range(arr.astype(np.int64), what, lo, hi)

    def i16s(self, count: int, what: str, lo: int, hi: int) -> np.ndarray:
        """``count`` int16 values and their zero padding to a multiple of 4 bytes."""
        padded = 2 * count + (2 * count) % 4
        self.need(padded, what)
        arr = np.frombuffer(self.data, dtype="<i2", count=count, offset=self.pos)
        if any(self.data[self.pos + 2 * count:self.pos + padded]):
            raise LicError(f"non-zero padding after {what}")
        self.pos += padded
        return _in_range(arr.astype(np.int64), what, lo, hi)


def _in_range(arr: np.ndarray, what: str, lo: int, hi: int) -> np.ndarray:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise LicError(f"{what} has values outside [{lo}, {hi}]")
    return arr


def _check_channels(value: int, what: str) -> None:
    if not 1 <= value <= MAX_CHANNELS:
        raise LicError(f"{what} = {value} is outside 1..{MAX_CHANNELS}")


def _checked_range(r: _Reader, what: str, lo: int, hi: int) -> int:
    value = r.u32(what)
    if not lo <= value <= hi:
        raise LicError(f"{what} = {value} is outside {lo}..{hi}")
    return value


def _read_conv(r: _Reader, op: str, where: str) -> Node:
    # Each attribute is read and checked in turn, in the C++ reader's order and words
    # (tests/test_reader_differential.py holds the two to the same messages).
    transpose = op in ("conv_transpose2d", "s16_conv_transpose2d")
    a: dict[str, int | float] = {}
    for name in ("cin", "cout"):
        a[name] = _checked_range(r, f"{where} {name}", 1, MAX_CHANNELS)
    for name in ("kh", "kw"):
        a[name] = _checked_range(r, f"{where} {name}", 1, MAX_KERNEL)
    for name in ("stride_h", "stride_w"):
        a[name] = _checked_range(r, f"{where} {name}", 1, MAX_STRIDE)
    for name, k in (("pad_top", "kh"), ("pad_left", "kw"), ("pad_bottom", "kh"),
                    ("pad_right", "kw")):
        a[name] = _checked_range(r, f"{where} {name}", 0, int(a[k]) - 1)
    if transpose:
        # As in PyTorch: an output padding must be smaller than the stride.
        for name, stride in (("out_pad_h", "stride_h"), ("out_pad_w", "stride_w")):
            a[name] = _checked_range(r, f"{where} {name}", 0, int(a[stride]) - 1)
    cin, cout, kh, kw = (int(a[n]) for n in ("cin", "cout", "kh", "kw"))
    count = cout * kh * kw * cin
    if op.startswith("s16_"):
        a.update(_read_shifts(r, S16_CONV_SHIFTS, where))
        wmax = fixedpoint.WEIGHT_MAX
        w = r.i16s(count, f"{where} weight", -wmax, wmax).reshape(cout, kh, kw, cin)
        bias = r.i32s(cout, f"{where} bias", fixedpoint.INT32_MIN, fixedpoint.INT32_MAX)
    else:
        w = r.f32s(count, f"{where} weight").reshape(cout, kh, kw, cin)
        bias = r.f32s(cout, f"{where} bias")
    if transpose:
        weight = w.transpose(3, 0, 1, 2)  # -> [ci][co][ky][kx]
    else:
        weight = w.transpose(0, 3, 1, 2)  # -> [co][ci][ky][kx]
    tensors = {"weight": np.ascontiguousarray(weight), "bias": bias}
    return Node(op, [], dict(a), tensors)


def _read_shifts(r: _Reader, names: list[str], where: str) -> dict[str, int]:
    """Signed attributes; every shift lies in SHIFT_MIN..SHIFT_MAX (finer limits per op
    are checked with the graph, where the input shifts are known)."""
    values = {n: r.i32(f"{where} {n}") for n in names}
    for n, v in values.items():
        if n.endswith("shift") and not fixedpoint.SHIFT_MIN <= v <= fixedpoint.SHIFT_MAX:
            raise LicError(f"{where} {n} = {v} is outside "
                           f"{fixedpoint.SHIFT_MIN}..{fixedpoint.SHIFT_MAX}")
    return values


def _read_s16_gdn(r: _Reader, where: str) -> Node:
    c = r.u32(f"{where} channels")
    _check_channels(c, f"{where} channels")
    inverse = r.u32(f"{where} inverse flag")
    if inverse not in (0, 1):
        raise LicError(f"{where} inverse flag is {inverse}, expected 0 or 1")
    a: dict[str, int | float] = {"channels": c, "inverse": inverse}
    a.update(_read_shifts(r, GDN_SHIFTS, where))
    beta = r.i32s(c, f"{where} beta", 1, fixedpoint.INT32_MAX)
    gamma = r.i16s(c * c, f"{where} gamma", 0, fixedpoint.INT16_MAX).reshape(c, c)
    return Node("s16_gdn", [], a, {"beta": beta, "gamma": gamma})


def _read_leaky_s16(r: _Reader, where: str) -> Node:
    a = _read_shifts(r, ["alpha_q", "alpha_shift"], where)
    if abs(a["alpha_q"]) > fixedpoint.WEIGHT_MAX:
        raise LicError(f"{where} alpha_q = {a['alpha_q']} does not fit int16")
    if not 0 <= a["alpha_shift"] <= 30:
        raise LicError(f"{where} alpha_shift = {a['alpha_shift']} is outside 0..30")
    return Node("s16_leaky_relu", [], dict(a), {})


def _read_node(r: _Reader, index: int, minor: int) -> Node:
    where = f"node {index}"
    code = r.u32(f"{where} op")
    if code not in OP_NAMES:
        raise LicError(f"{where}: unknown op code {code}")
    op = OP_NAMES[code]
    where = f"node {index} ({op})"
    if code >= FIRST_V11_OP and minor < 1:
        raise LicError(f"{where}: op code {code} needs format version 1.1, the file says "
                       f"1.{minor}")
    n_inputs = r.u32(f"{where} input count")
    expected = 2 if op in ("add", "s16_add") else 1
    if n_inputs != expected:
        raise LicError(f"{where} has {n_inputs} inputs, expected {expected}")
    inputs = [r.u32(f"{where} inputs") for _ in range(n_inputs)]
    for value in inputs:
        if value > index:
            raise LicError(f"{where} reads value {value}, which is not computed before it")
    if op in CONV_OPS:
        node = _read_conv(r, op, where)
    elif op == "s16_gdn":
        node = _read_s16_gdn(r, where)
    elif op == "s16_leaky_relu":
        node = _read_leaky_s16(r, where)
    elif op in I32_ATTRS:  # quantize, s16_add
        node = Node(op, [], dict(_read_shifts(r, I32_ATTRS[op], where)), {})
    elif op == "leaky_relu":
        alpha = r.f32s(1, f"{where} alpha")
        node = Node(op, [], {"alpha": float(alpha[0])}, {})
    elif op == "gdn":
        c = r.u32(f"{where} channels")
        _check_channels(c, f"{where} channels")
        inverse = r.u32(f"{where} inverse flag")
        if inverse not in (0, 1):
            raise LicError(f"{where} inverse flag is {inverse}, expected 0 or 1")
        beta = r.f32s(c, f"{where} beta")
        gamma = r.f32s(c * c, f"{where} gamma").reshape(c, c)
        node = Node(op, [], {"channels": c, "inverse": inverse},
                    {"beta": beta, "gamma": gamma})
    else:
        node = Node(op, [], {}, {})
    node.inputs = inputs
    return node


def _check_graph(m: ModelFile) -> None:
    """Channel counts must chain from the input through every node to the output; int16
    values must meet int16 operators with valid shifts and int32-safe worst cases."""
    channels = [m.in_channels]
    for i, node in enumerate(m.nodes):
        where = f"node {i} ({node.op})"
        c = channels[node.inputs[0]]
        if node.op in CONV_OPS and node.attrs["cin"] != c:
            raise LicError(f"{where} expects {node.attrs['cin']} input channels, gets {c}")
        if node.op in ("gdn", "s16_gdn") and node.attrs["channels"] != c:
            raise LicError(f"{where} expects {node.attrs['channels']} channels, gets {c}")
        if node.op in ("add", "s16_add") and channels[node.inputs[1]] != c:
            raise LicError(f"{where} adds {c} and {channels[node.inputs[1]]} channels")
        channels.append(node_out_channels(node, c))
    if channels[-1] != m.out_channels:
        raise LicError(f"model declares {m.out_channels} output channels, its last node "
                       f"gives {channels[-1]}")
    fixedpoint.check_worst_cases(m)  # value types, shifts, int32 worst cases (docs/int16.md)


def _decode(data: bytes, check_fingerprint: bool = True) -> ModelFile:
    if len(data) < HEADER_SIZE:
        raise LicError(f"model file too short ({len(data)} bytes) for a .licm header")
    if data[:4] != MAGIC:
        raise LicError("not a lic2cpp model file (bad magic)")
    major, minor, body_size, fp = struct.unpack_from("<HHQQ", data, 4)
    if major != VERSION_MAJOR:
        raise LicError(f"unsupported model format version {major}.x (this reader: 1.x)")
    if body_size != len(data) - HEADER_SIZE:
        raise LicError(f"model body size {body_size} disagrees with the file size "
                       f"({len(data) - HEADER_SIZE} bytes after the header)")
    if check_fingerprint and fingerprint(data[HEADER_SIZE:]) != fp:
        raise LicError("model fingerprint mismatch (corrupt file)")
    r = _Reader(data, HEADER_SIZE)
    in_ch = r.u32("in_channels")
    out_ch = r.u32("out_channels")
    _check_channels(in_ch, "in_channels")
    _check_channels(out_ch, "out_channels")
    count = r.u32("node_count")
    if not 1 <= count <= MAX_NODES:
        raise LicError(f"node_count = {count} is outside 1..{MAX_NODES}")
    name_len = r.u32("name length")
    if name_len > MAX_NAME:
        raise LicError(f"model name length {name_len} exceeds {MAX_NAME}")
    padded = name_len + (-name_len) % 4
    r.need(padded, "name")
    raw = data[r.pos:r.pos + name_len]
    if any(data[r.pos + name_len:r.pos + padded]):
        raise LicError("non-zero padding after the model name")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LicError("model name is not valid UTF-8") from None
    r.pos += padded
    nodes = [_read_node(r, i, minor) for i in range(count)]
    if r.pos != len(data):
        raise LicError(f"{len(data) - r.pos} trailing bytes after the last node")
    model = ModelFile(name, in_ch, out_ch, nodes)
    _check_graph(model)
    return model


def decode_licm(data: bytes) -> ModelFile:
    """Parse and validate a complete `.licm` file; raises LicError on anything wrong."""
    return _decode(bytes(data))


def read_licm(path: str | Path) -> ModelFile:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LicError(f"cannot read model file {path}: {exc.strerror}") from None
    try:
        return decode_licm(data)
    except LicError as exc:  # name the file: codegen reads two of them
        raise LicError(f"{path}: {exc}") from None

