"""The Python side of docs/model-format.md: exact bytes, round trips, every refusal."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from test_codec_programs import write_tiny_model

from lic2cpp.errors import LicError
from lic2cpp.modelformat import (
    ModelFile,
    Node,
    decode_licm,
    downsampling_factor,
    encode_licm,
    fingerprint,
    header_fingerprint,
    infer_channels,
    output_side,
    read_licm,
    write_licm,
)


def conv(cin: int, cout: int, k: int, stride: int, pad: int, inp: int, rng) -> Node:
    attrs = dict(cin=cin, cout=cout, kh=k, kw=k, stride_h=stride, stride_w=stride,
                 pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad)
    return Node("conv2d", [inp], attrs,
                {"weight": rng.standard_normal((cout, cin, k, k)).astype(np.float32),
                 "bias": rng.standard_normal(cout).astype(np.float32)})


def deconv(cin: int, cout: int, k: int, stride: int, pad: int, out_pad: int, inp: int,
           rng) -> Node:
    attrs = dict(cin=cin, cout=cout, kh=k, kw=k, stride_h=stride, stride_w=stride,
                 pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad,
                 out_pad_h=out_pad, out_pad_w=out_pad)
    return Node("conv_transpose2d", [inp], attrs,
                {"weight": rng.standard_normal((cin, cout, k, k)).astype(np.float32),
                 "bias": rng.standard_normal(cout).astype(np.float32)})


def gdn(c: int, inverse: int, inp: int, rng) -> Node:
    return Node("gdn", [inp], {"channels": c, "inverse": inverse},
                {"beta": rng.uniform(0.5, 1.5, c).astype(np.float32),
                 "gamma": rng.uniform(0, 0.1, (c, c)).astype(np.float32)})


def sample_model() -> ModelFile:
    rng = np.random.default_rng(1)
    nodes = [
        conv(3, 4, 3, 2, 1, 0, rng),
        gdn(4, 0, 1, rng),
        Node("leaky_relu", [2], {"alpha": 0.01}),
        Node("relu", [3]),
        Node("add", [4, 2]),
        deconv(4, 5, 5, 2, 2, 1, 5, rng),
        gdn(5, 1, 6, rng),
    ]
    return ModelFile("g_test", 3, 5, nodes)


def rebuild(body: bytes) -> bytes:
    """A valid header (right size and fingerprint) around an arbitrary body."""
    return b"LICM" + struct.pack("<HHQQ", 1, 0, len(body), fingerprint(body)) + body


def test_fingerprint_matches_published_fnv1a_vectors() -> None:
    # Reference values of FNV-1a 64 from the algorithm's authors' test suite.
    assert fingerprint(b"") == 0xCBF29CE484222325
    assert fingerprint(b"a") == 0xAF63DC4C8601EC8C
    assert fingerprint(b"foobar") == 0x85944171F73967E8


def test_header_fingerprint_is_the_body_hash() -> None:
    data = encode_licm(sample_model())
    assert header_fingerprint(data) == fingerprint(data[24:])
    assert header_fingerprint(data) == struct.unpack("<Q", data[16:24])[0]
    with pytest.raises(LicError, match="bad magic"):
        header_fingerprint(b"LICE" + data[4:])
    with pytest.raises(LicError, match="too short"):
        header_fingerprint(data[:20])


def test_output_side_formulas_by_hand() -> None:
    rng = np.random.default_rng(2)
    # conv: floor((s + pt + pb - k) / stride) + 1
    assert output_side(conv(3, 4, 5, 2, 2, 0, rng), 768) == (768 + 4 - 5) // 2 + 1 == 384
    assert output_side(conv(3, 4, 3, 1, 1, 0, rng), 17) == 17
    # transposed conv: (s - 1) * stride - pt - pb + k + out_pad
    assert output_side(deconv(4, 3, 5, 2, 2, 1, 0, rng), 48) == 47 * 2 - 4 + 5 + 1 == 96
    assert output_side(Node("relu", [0]), 31) == 31


def test_downsampling_factor(tmp_path) -> None:
    ga_path, _ = write_tiny_model(tmp_path, seed=1)
    assert downsampling_factor(read_licm(ga_path)) == 16
    rng = np.random.default_rng(3)
    ga = ModelFile("g_a", 3, 4, [conv(3, 4, 5, 2, 2, i, rng) for i in range(4)])
    assert downsampling_factor(ga) == 16  # four stride-2 convolutions
    flat = ModelFile("g_a", 3, 4, [conv(3, 4, 3, 1, 1, 0, rng)])
    assert downsampling_factor(flat) == 1
    odd = ModelFile("g_a", 3, 4, [conv(3, 4, 3, 3, 0, 0, rng)])  # 4096 -> 1365: no factor
    with pytest.raises(LicError, match="downsampling factor"):
        downsampling_factor(odd)


def test_tiny_model_bytes_by_hand() -> None:
    m = ModelFile("ab", 2, 2, [Node("leaky_relu", [0], {"alpha": 0.5})])
    body = (struct.pack("<4I", 2, 2, 1, 2) + b"ab\0\0"
            + struct.pack("<3I", 4, 1, 0) + struct.pack("<f", 0.5))
    # FNV-1a by hand, one byte at a time, independent of the module's loop.
    h = 0xCBF29CE484222325
    for b in body:
        h ^= b
        h = (h * 0x100000001B3) % 2**64
    header = b"LICM" + bytes([1, 0, 0, 0]) + len(body).to_bytes(8, "little") \
        + h.to_bytes(8, "little")
    assert encode_licm(m) == header + body
    assert decode_licm(header + body) == m


def test_conv_weight_layout_in_file() -> None:
    """PyTorch [co][ci][ky][kx] must land as [co][ky][kx][ci] in the file."""
    w = np.arange(2 * 3 * 1 * 2, dtype=np.float32).reshape(2, 3, 1, 2)  # co, ci, ky, kx
    node = Node("conv2d", [0], dict(cin=3, cout=2, kh=1, kw=2, stride_h=1, stride_w=1,
                                    pad_top=0, pad_left=0, pad_bottom=0, pad_right=0),
                {"weight": w, "bias": np.zeros(2, np.float32)})
    data = encode_licm(ModelFile("c", 3, 2, [node]))
    stored = np.frombuffer(data[-4 * (12 + 2):-8], dtype="<f4")
    expected = [w[co, ci, 0, kx] for co in range(2) for kx in range(2) for ci in range(3)]
    np.testing.assert_array_equal(stored, expected)


def test_conv_transpose_weight_layout_in_file() -> None:
    """PyTorch [ci][co][ky][kx] must land as [co][ky][kx][ci] in the file."""
    w = np.arange(3 * 2 * 2 * 1, dtype=np.float32).reshape(3, 2, 2, 1)  # ci, co, ky, kx
    attrs = dict(cin=3, cout=2, kh=2, kw=1, stride_h=2, stride_w=2, pad_top=0, pad_left=0,
                 pad_bottom=0, pad_right=0, out_pad_h=1, out_pad_w=0)
    node = Node("conv_transpose2d", [0], attrs, {"weight": w, "bias": np.zeros(2, np.float32)})
    data = encode_licm(ModelFile("t", 3, 2, [node]))
    stored = np.frombuffer(data[-4 * (12 + 2):-8], dtype="<f4")
    expected = [w[ci, co, ky, 0] for co in range(2) for ky in range(2) for ci in range(3)]
    np.testing.assert_array_equal(stored, expected)


def test_round_trip_all_ops(tmp_path) -> None:
    m = sample_model()
    path = tmp_path / "m.licm"
    write_licm(path, m)
    back = read_licm(path)
    assert (back.name, back.in_channels, back.out_channels) == ("g_test", 3, 5)
    assert len(back.nodes) == len(m.nodes)
    for a, b in zip(m.nodes, back.nodes, strict=True):
        assert a.op == b.op and a.inputs == b.inputs
        assert a.attrs.keys() == b.attrs.keys()
        for key in a.attrs:
            assert a.attrs[key] == pytest.approx(b.attrs[key])
        assert a.tensors.keys() == b.tensors.keys()
        for key in a.tensors:
            np.testing.assert_array_equal(a.tensors[key], b.tensors[key])
    assert encode_licm(back) == path.read_bytes()


def test_infer_channels() -> None:
    assert infer_channels(sample_model().nodes) == (3, 5)


def test_missing_file_is_licerror(tmp_path) -> None:
    with pytest.raises(LicError, match="cannot read"):
        read_licm(tmp_path / "nope.licm")


def test_every_truncation_is_refused() -> None:
    data = encode_licm(sample_model())
    for n in range(len(data)):
        with pytest.raises(LicError):
            decode_licm(data[:n])


def test_truncated_body_with_consistent_header_is_refused() -> None:
    body = encode_licm(sample_model())[24:]
    for n in range(0, len(body), 7):
        with pytest.raises(LicError):
            decode_licm(rebuild(body[:n]))


def test_header_errors() -> None:
    data = bytearray(encode_licm(sample_model()))
    with pytest.raises(LicError, match="too short"):
        decode_licm(bytes(data[:10]))
    bad = bytearray(data)
    bad[0:4] = b"LICX"
    with pytest.raises(LicError, match="magic"):
        decode_licm(bytes(bad))
    bad = bytearray(data)
    bad[4] = 2
    with pytest.raises(LicError, match="version"):
        decode_licm(bytes(bad))
    with pytest.raises(LicError, match="body size"):
        decode_licm(bytes(data) + b"\0\0\0\0")
    bad = bytearray(data)
    bad[-1] ^= 0x40
    with pytest.raises(LicError, match="fingerprint"):
        decode_licm(bytes(bad))


def body_of(m: ModelFile) -> bytearray:
    return bytearray(encode_licm(m)[24:])


def relu_model() -> ModelFile:
    return ModelFile("r", 3, 3, [Node("relu", [0])])


def test_refuses_node_count_limits() -> None:
    body = body_of(relu_model())
    body[8:12] = struct.pack("<I", 0)
    with pytest.raises(LicError, match="node_count"):
        decode_licm(rebuild(bytes(body)))
    body[8:12] = struct.pack("<I", 4097)
    with pytest.raises(LicError, match="node_count"):
        decode_licm(rebuild(bytes(body)))


def test_refuses_name_too_long_and_bad_padding() -> None:
    body = body_of(ModelFile("abc", 3, 3, [Node("relu", [0])]))
    bad = bytearray(body)
    bad[12:16] = struct.pack("<I", 257)
    with pytest.raises(LicError, match="name length"):
        decode_licm(rebuild(bytes(bad)))
    bad = bytearray(body)
    bad[19] = 1  # the one padding byte after "abc"
    with pytest.raises(LicError, match="padding"):
        decode_licm(rebuild(bytes(bad)))


def test_refuses_unknown_op_and_bad_inputs() -> None:
    body = body_of(relu_model())  # node at offset 20: op, n_inputs, input
    bad = bytearray(body)
    bad[20:24] = struct.pack("<I", 15)
    with pytest.raises(LicError, match="unknown op"):
        decode_licm(rebuild(bytes(bad)))
    bad[20:24] = struct.pack("<I", 7)  # an int16 op (1.1) in a file that says 1.0
    with pytest.raises(LicError, match="needs format version 1.1"):
        decode_licm(rebuild(bytes(bad)))
    bad = bytearray(body)
    bad[28:32] = struct.pack("<I", 1)
    with pytest.raises(LicError, match="not computed before"):
        decode_licm(rebuild(bytes(bad)))
    bad = bytearray(body)
    bad[24:28] = struct.pack("<I", 2)
    with pytest.raises(LicError, match="inputs"):
        decode_licm(rebuild(bytes(bad)))


def test_refuses_trailing_bytes() -> None:
    body = bytes(body_of(relu_model())) + b"\0\0\0\0"
    with pytest.raises(LicError, match="trailing"):
        decode_licm(rebuild(body))


def conv_model(**over: int) -> ModelFile:
    rng = np.random.default_rng(0)
    node = conv(3, 2, 3, 1, 1, 0, rng)
    node.attrs.update(over)
    # Shape the tensors after the (possibly absurd) attributes only when they are small.
    return ModelFile("c", 3, 2, [node])


def conv_body_with(field_index: int, value: int) -> bytes:
    body = body_of(conv_model())
    off = 16 + 4 + 12 + 4 * field_index  # header fields, name "c"+pad, op/n_in/input
    body[off:off + 4] = struct.pack("<I", value)
    return rebuild(bytes(body))


@pytest.mark.parametrize("field_index,value,message", [
    (0, 0, "cin"), (1, 5000, "cout"), (2, 16, "kh"), (3, 0, "kw"),
    (4, 9, "stride_h"), (5, 0, "stride_w"), (6, 3, "pad_top"), (9, 3, "pad_right"),
])
def test_refuses_conv_limits(field_index: int, value: int, message: str) -> None:
    with pytest.raises(LicError, match=message):
        decode_licm(conv_body_with(field_index, value))


def test_refuses_channels_that_do_not_chain() -> None:
    rng = np.random.default_rng(0)
    m = ModelFile("c", 3, 4, [conv(3, 4, 3, 1, 1, 0, rng), conv(5, 4, 1, 1, 0, 1, rng)])
    with pytest.raises(LicError, match="input channels"):
        encode_licm(m)
    m = ModelFile("c", 3, 4, [conv(3, 4, 3, 1, 1, 0, rng), Node("add", [1, 0])])
    with pytest.raises(LicError, match="adds"):
        encode_licm(m)
    m = ModelFile("c", 3, 3, [gdn(4, 0, 0, rng)])
    with pytest.raises(LicError, match="channels"):
        encode_licm(m)
    m = ModelFile("c", 3, 7, [Node("relu", [0])])
    with pytest.raises(LicError, match="output channels"):
        encode_licm(m)


def test_refuses_gdn_inverse_flag() -> None:
    rng = np.random.default_rng(0)
    body = body_of(ModelFile("g", 2, 2, [gdn(2, 0, 0, rng)]))
    body[36:40] = struct.pack("<I", 2)  # after header(16)+name(4)+op,n,in(12)+channels(4)
    with pytest.raises(LicError, match="inverse"):
        decode_licm(rebuild(bytes(body)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_refuses_non_finite_weights(bad: float) -> None:
    m = conv_model()
    m.nodes[0].tensors["weight"][1, 2, 0, 1] = bad
    body = bytearray(encode_body_unchecked(m))
    with pytest.raises(LicError, match="non-finite"):
        decode_licm(rebuild(bytes(body)))
    with pytest.raises(LicError, match="non-finite"):
        encode_licm(m)


def encode_body_unchecked(m: ModelFile) -> bytes:
    from lic2cpp.modelformat import encode_body

    return encode_body(m)


def test_writer_refuses_wrong_tensor_shape() -> None:
    m = conv_model()
    m.nodes[0].tensors["weight"] = np.zeros((2, 3, 3, 2), np.float32)
    with pytest.raises(LicError, match="shape"):
        encode_licm(m)


def test_name_must_be_utf8() -> None:
    body = body_of(ModelFile("g\u00e4", 3, 3, [Node("relu", [0])]))  # "g" + 2-byte "ä"
    assert decode_licm(rebuild(bytes(body))).name == "g\u00e4"
    body[17] = 0xFF  # breaks the 2-byte sequence
    with pytest.raises(LicError, match="UTF-8"):
        decode_licm(rebuild(bytes(body)))
