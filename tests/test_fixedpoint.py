"""The int16 arithmetic of docs/int16.md (lic2cpp.fixedpoint) against hand-computed values,
exact integer math (Python ints, math.isqrt, fractions) and PyTorch's float64 convolutions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lic2cpp import fixedpoint as fx
from lic2cpp.errors import LicError
from lic2cpp.modelformat import ModelFile, Node, decode_licm, encode_licm, fingerprint


def rebuild(data: bytes) -> bytes:
    """The file with its fingerprint recomputed (so the parser proper sees an edit)."""
    body = data[24:]
    return data[:16] + fingerprint(body).to_bytes(8, "little") + body

# ------------------------------------------------------------------------------ primitives


def test_rounding_shift_rounds_half_up() -> None:
    cases = {(5, 1): 3, (-5, 1): -2, (-6, 2): -1, (-7, 2): -2, (6, 2): 2, (7, 0): 7,
             (-1, 1): 0, (-3, 1): -1, (2**31 - 1, 31): 1, (-(2**31), 31): -1}
    for (a, n), want in cases.items():
        assert int(fx.rs(a, n)) == want, (a, n)
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**40), 2**40, 1000)
    for n in (1, 7, 20):
        got = fx.rs(a, n)
        want = [math.floor(Fraction(int(v), 2**n) + Fraction(1, 2)) for v in a]
        assert got.tolist() == want


def test_saturation_and_float_quantization() -> None:
    assert fx.sat16([-40000, -32768, 0, 32767, 40000]).tolist() == [-32768, -32768, 0,
                                                                     32767, 32767]
    v = np.array([0.5, -0.5, 1.5, -1.5, 2.49, np.nan, np.inf, -np.inf, 1e30, -1e30],
                 np.float32)
    assert fx.quantize_float(v, 0).tolist() == [1, 0, 2, -1, 2, 0, 32767, -32768, 32767,
                                                -32768]
    # shifts scale exactly: 0.375 * 2^3 = 3; 0.1 at shift 10 = floor(102.4 + 0.5) = 102
    assert fx.quantize_float(np.float32(0.375), 3) == 3
    assert fx.quantize_float(np.float32(0.1), 10) == 102
    assert fx.quantize_float(np.float32(-0.1), 10) == -102
    assert fx.dequantize(np.array([3, -32768]), 3).tolist() == [0.375, -4096.0]


def test_weight_quantization_is_symmetric_and_refuses_overflow() -> None:
    assert fx.weight_shift_for(1.0) == 14  # 1.0 * 2^15 = 32768 does not fit 32767
    assert fx.weight_shift_for(0.99998) == 15  # floor(32767.3 + .5) = 32767
    assert fx.weight_shift_for(0.99999) == 14  # rounds to 32768
    assert fx.quantize_weights(np.array([-0.99998, 0.5]), 15).tolist() == [-32767, 16384]
    with pytest.raises(LicError, match="do not fit"):
        fx.quantize_weights(np.array([-1.0]), 15)  # -32768 is not a weight


def test_isqrt_is_exact() -> None:
    rng = np.random.default_rng(1)
    edge = [0, 1, 2, 3, 4, 15, 16, 17, 2**62 - 1, (2**31 - 1) ** 2, (2**31 - 1) ** 2 - 1,
            (2**31 - 2) ** 2 + 1, 2**52 + 1, (2**26 + 1) ** 2 - 1, (2**26 + 1) ** 2]
    squares = [int(r) ** 2 + d for r in rng.integers(0, 2**31 - 1, 300) for d in (-1, 0, 1)]
    values = np.array(edge + [v for v in squares if 0 <= v < 2**62]
                      + rng.integers(0, 2**62, 3000).tolist(), dtype=np.int64)
    got = fx.isqrt(values)
    assert got.tolist() == [math.isqrt(int(v)) for v in values]
    with pytest.raises(ValueError):
        fx.isqrt(np.array([2**62]))


def test_division_rounds_half_up() -> None:
    rng = np.random.default_rng(2)
    num = np.concatenate([rng.integers(-(2**61), 2**61, 2000), [-3, -1, 1, 3, 5, -5]])
    den = np.concatenate([rng.integers(1, 2**31, 2000), [2, 2, 2, 2, 2, 2]])
    got = fx.div_round_half_up(num, den)
    want = [math.floor(Fraction(int(a), int(b)) + Fraction(1, 2))
            for a, b in zip(num, den, strict=True)]
    assert got.tolist() == want
    assert got[-6:].tolist() == [-1, 0, 1, 2, 3, -2]


def test_pixels_match_the_float_decoders_rule() -> None:
    q = np.arange(-200, 2**14 + 300, dtype=np.int64)
    for s in (8, 14):
        want = np.floor(np.clip(q / 2.0**s, 0, 1) * 255 + 0.5)  # float64: exact here
        assert fx.to_pixels(q, s).tolist() == want.astype(np.uint8).tolist()


def test_leaky_relu_is_a_fixed_point_multiply() -> None:
    x = np.array([-32768, -100, -3, -1, 0, 5, 32767], np.int64)
    a, t = 20972, 21  # 0.01 at shift 21
    want = [x_ if x_ >= 0 else math.floor(Fraction(x_ * a, 2**t) + Fraction(1, 2)) for x_ in x]
    assert fx.s16_leaky_relu(x, a, t).tolist() == want


def test_add_aligns_and_rounds() -> None:
    a, b = np.array([100, -7, 32767]), np.array([3, 5, 32767])
    # a at shift 4, b at shift 2, out at 2: (100 + 3*4)/4 -> 28; (-7 + 20)/4 = 3.25 -> 3
    assert fx.s16_add(a, 4, b, 2, 2).tolist() == [28, 3, 32767]


# ------------------------------------------------------------------------------ convolutions

def conv_attrs(cin, cout, k, stride, pads, out_pad=None):
    a = dict(cin=cin, cout=cout, kh=k[0], kw=k[1], stride_h=stride[0], stride_w=stride[1],
             pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3])
    if out_pad is not None:
        a.update(out_pad_h=out_pad[0], out_pad_w=out_pad[1])
    return a


def torch_conv(x, w, a, transpose):
    """Float64 PyTorch on integer tensors (exact: all sums below 2^53)."""
    t = torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None]
    wt = torch.from_numpy(w.astype(np.float64))
    stride = (a["stride_h"], a["stride_w"])
    if not transpose:
        t = F.pad(t, (a["pad_left"], a["pad_right"], a["pad_top"], a["pad_bottom"]))
        out = F.conv2d(t, wt, stride=stride)
    else:
        out = F.conv_transpose2d(t, wt, stride=stride,
                                 output_padding=(a["out_pad_h"], a["out_pad_w"]))
        h, w_ = out.shape[2:]
        out = out[:, :, a["pad_top"]:h - a["pad_bottom"], a["pad_left"]:w_ - a["pad_right"]]
    return out[0].permute(1, 2, 0).numpy().astype(np.int64)


CONV_CASES = [  # cin, cout, k, stride, pads, out_pad, h, w
    (3, 5, (3, 3), (1, 1), (1, 1, 1, 1), None, 7, 9),
    (4, 2, (5, 5), (2, 2), (2, 2, 2, 2), None, 9, 6),
    (2, 3, (3, 2), (2, 1), (0, 1, 2, 0), None, 5, 4),
    (5, 4, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 4, 3),  # g_s style
    (3, 2, (4, 3), (3, 2), (1, 0, 2, 1), (2, 1), 3, 5),
    (2, 3, (1, 1), (2, 2), (0, 0, 0, 0), (1, 0), 2, 3),  # k < stride: bias-only phases
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_sums_match_torch_exactly(case) -> None:
    cin, cout, k, stride, pads, out_pad, h, w = case
    transpose = out_pad is not None
    rng = np.random.default_rng(sum(k) + h)
    a = conv_attrs(cin, cout, k, stride, pads, out_pad)
    shape = (cin, cout, *k) if transpose else (cout, cin, *k)
    for lo in (-32768, 0):  # random, then extreme values
        x = rng.integers(lo, 32768, (h, w, cin))
        wts = rng.integers(-32767, 32768, shape)
        if lo == 0:
            x[:] = 32767
            wts = np.where(wts > 0, 32767, -32767)
        want = torch_conv(x, wts, a, transpose)
        got = fx.conv_sums(x, wts, a, transpose)
        assert np.array_equal(got, want)
        assert np.array_equal(fx.conv_sums(x, wts, a, transpose, exact="int64"), want)


@pytest.mark.parametrize("case", CONV_CASES)
def test_worst_case_is_exact_and_reached(case) -> None:
    """The bound is tight: the input that picks hi where w > 0 and lo where w < 0 (over
    a whole interior window / phase) reaches it."""
    cin, cout, k, stride, pads, out_pad, h, w = case
    transpose = out_pad is not None
    rng = np.random.default_rng(7)
    shape = (cin, cout, *k) if transpose else (cout, cin, *k)
    wts = rng.integers(-32767, 32768, shape)
    bias = rng.integers(-(2**20), 2**20, cout)
    a = conv_attrs(cin, cout, k, stride, pads, out_pad)
    for lo, hi in (fx.FULL_RANGE, fx.RELU_RANGE):
        bounds = fx.conv_worst_case(wts, bias, lo, hi, transpose, stride)
        best = -(2**62)
        for co in range(cout):
            wc = wts[:, co] if transpose else wts[co]  # [ci][ky][kx] or [ci][ky][kx]
            # choose the input that maximises output channel co at every position
            sign = np.sign(wc.sum(axis=(1, 2)))
            for ci_sign in (sign, -sign):
                x = np.where(ci_sign[None, None, :] > 0, hi, lo) * np.ones((h, w, cin), int)
                out = fx.conv_sums(x, wts, a, transpose)[..., co] + bias[co]
                best = max(best, int(out.max()))
        assert best <= bounds[1]
    # a hand-made 1x1 case: the bound is the exact extreme sum
    w1 = np.array([[[[3]], [[-5]]]])  # cout 1, cin 2
    assert fx.conv_worst_case(w1, np.array([7]), -32768, 32767, False) == (
        7 * 0 + 3 * -32768 + -5 * 32767, 7 + 3 * 32767 + 5 * 32768)
    assert fx.conv_worst_case(w1, np.array([7]), 0, 32767, False) == (-5 * 32767,
                                                                      7 + 3 * 32767)


def s16_deconv_node(rng, cin, cout, s_x=8, s_w=12, s_y=8, weights=None, bias=None):
    a = conv_attrs(cin, cout, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1))
    a.update(weight_shift=s_w, out_shift=s_y)
    w = weights if weights is not None else rng.integers(-300, 301, (cin, cout, 5, 5))
    b = bias if bias is not None else rng.integers(-(2**16), 2**16, cout)
    return Node("s16_conv_transpose2d", [1], a, {"weight": w, "bias": b})


def int16_model(nodes: list[Node], cin: int, cout: int, s_in: int = 8) -> ModelFile:
    nodes = [Node("quantize", [0], {"shift": s_in}), *nodes,
             Node("dequantize", [len(nodes) + 1])]
    return ModelFile("q", cin, cout, nodes)


def test_conv_node_matches_the_definition_by_hand() -> None:
    """One output value recomputed with Python integers from docs/int16.md."""
    rng = np.random.default_rng(3)
    node = s16_deconv_node(rng, 3, 2, s_x=8, s_w=12, s_y=9)
    x = rng.integers(-32768, 32768, (4, 3, 3))
    y = fx.s16_conv(x, 8, node)
    n = 8 + 12 - 9
    w, b = node.tensors["weight"], node.tensors["bias"]
    for oy, ox, co in [(0, 0, 0), (3, 4, 1), (7, 5, 0), (4, 2, 1)]:
        acc = int(b[co])
        for iy in range(4):
            for ix in range(3):
                ky, kx = oy + 2 - 2 * iy, ox + 2 - 2 * ix
                if 0 <= ky < 5 and 0 <= kx < 5:
                    acc += sum(int(w[ci, co, ky, kx]) * int(x[iy, ix, ci]) for ci in range(3))
        want = max(-32768, min(32767, (acc + 2 ** (n - 1)) >> n))
        assert int(y[oy, ox, co]) == want


def test_worst_case_check_refuses_a_file_one_past_int32() -> None:
    """A 1x1 convolution whose worst case is exactly 2^31 - 1 is valid; one more is not,
    and the reader refuses it."""
    cin = 2
    a = conv_attrs(cin, 1, (1, 1), (1, 1), (0, 0, 0, 0))
    a.update(weight_shift=0, out_shift=0)  # n = 8: rounding constant 128
    w = np.array([[[[32767]], [[32767]]]])
    # max = b + 128 + 2 * 32767 * 32767 (input after ReLU: [0, 32767])
    top = 2**31 - 1 - 128 - 2 * 32767 * 32767
    for bias, ok in ((top, True), (top + 1, False)):
        conv = Node("s16_conv2d", [2], dict(a), {"weight": w, "bias": np.array([bias])})
        m = int16_model([Node("s16_relu", [1]), conv], cin, 1, s_in=0)
        m.nodes[2].attrs["out_shift"] = -8
        if ok:
            decode_licm(encode_licm(m))
        else:
            with pytest.raises(LicError, match="worst-case sum"):
                encode_licm(m)
    # a negative bias that fits after a ReLU (products >= 0) overflows without it, where
    # the input reaches -32768: least sum = B + 128 - 2 * 32767 * 32768 = -2^31 - 1
    bias = np.array([-(2**31) - 1 - 128 + 2 * 32767 * 32768])
    conv = Node("s16_conv2d", [2], dict(a), {"weight": w, "bias": bias})
    m = int16_model([Node("s16_relu", [1]), conv], cin, 1, s_in=0)
    m.nodes[2].attrs["out_shift"] = -8
    decode_licm(encode_licm(m))
    conv = Node("s16_conv2d", [1], dict(a), {"weight": w, "bias": bias})
    m = int16_model([conv], cin, 1, s_in=0)
    m.nodes[1].attrs["out_shift"] = -8
    with pytest.raises(LicError, match="worst-case sum"):
        encode_licm(m)


# ------------------------------------------------------------------------------ GDN

def float_gdn(x, beta, gamma, inverse):
    norm = beta + (x * x) @ gamma.T
    return x * np.sqrt(norm) if inverse else x / np.sqrt(norm)


@pytest.mark.parametrize("inverse", [0, 1])
def test_gdn_follows_the_float_operator(inverse) -> None:
    rng = np.random.default_rng(4 + inverse)
    c = 6
    beta = rng.uniform(0.5, 1.2, c)
    gamma = rng.uniform(0, 0.2, (c, c)) * (rng.random((c, c)) < 0.6)
    x = rng.normal(0, 1.0, (5, 7, c))
    s_x, s_2, s_g, s_y = 12, 11, 16, 12  # x² < 16: fits at shift 11
    g = fx.quantize_weights(gamma, s_g)
    b = fx.quantize_weights(beta, 14) << (s_g + s_2 - 14)
    norm_max = fx.gdn_norm_max(g, b)
    k = 62 - norm_max.bit_length()
    k -= (s_g + s_2 + k) % 2
    attrs = {"channels": c, "inverse": inverse, "square_shift": s_2, "gamma_shift": s_g,
             "root_shift": k, "out_shift": s_y}
    node = Node("s16_gdn", [1], attrs, {"beta": b, "gamma": g})
    xq = fx.quantize_float(x, s_x)
    y = fx.s16_gdn(xq, s_x, node)
    want = float_gdn(xq / 2.0**s_x, beta, gamma, inverse)
    assert np.abs(y / 2.0**s_y - want).max() < 4e-3
    # one element by hand, with Python integers
    i = (2, 3, 4)
    xv = int(xq[i])
    x2 = [min((int(v) * int(v) + 2 ** (2 * s_x - s_2 - 1)) >> (2 * s_x - s_2), 32767)
          for v in xq[2, 3]]
    norm = int(b[4]) + sum(int(g[4, j]) * x2[j] for j in range(c))
    r = math.isqrt(norm << k)
    s_r = (s_g + s_2 + k) // 2
    if inverse:
        m = s_x + s_r - s_y
        want_q = (xv * r + 2 ** (m - 1)) >> m
    else:
        e = s_y - s_x + s_r
        want_q = math.floor(Fraction(xv * 2**e, r) + Fraction(1, 2))
    assert int(y[i]) == max(-32768, min(32767, want_q))
    # the model-level checks accept it, and an encoded file round-trips
    m = int16_model([node], c, c, s_in=s_x)
    back = decode_licm(encode_licm(m))
    assert np.array_equal(back.nodes[1].tensors["gamma"], g)
    assert np.array_equal(fx.run_reference(back, x.astype(np.float32)),
                          fx.run_reference(m, x.astype(np.float32)))


# ------------------------------------------------------------------------------ format

def test_int16_file_round_trip_and_version() -> None:
    rng = np.random.default_rng(5)
    nodes = [s16_deconv_node(rng, 3, 3), Node("s16_relu", [2]),
             Node("s16_leaky_relu", [3], {"alpha_q": -12345, "alpha_shift": 17}),
             Node("s16_add", [4, 2], {"out_shift": 7})]
    m = int16_model(nodes, 3, 3)
    data = encode_licm(m)
    assert data[4:8] == b"\x01\x00\x01\x00"  # version 1.1: int16 ops inside
    back = decode_licm(data)
    assert [n.op for n in back.nodes] == [n.op for n in m.nodes]
    for a, b in zip(m.nodes, back.nodes, strict=True):
        assert a.inputs == b.inputs and a.attrs == b.attrs
        for key in a.tensors:
            assert np.array_equal(a.tensors[key], b.tensors[key])
    assert encode_licm(back) == data
    x = rng.normal(0, 4, (3, 2, 3)).astype(np.float32)
    assert np.array_equal(fx.run_reference(back, x), fx.run_reference(m, x))
    # file layout of the int16 weights: [co][ky][kx][ci] int16, zero-padded to 4 bytes
    w = m.nodes[1].tensors["weight"]  # [ci][co][ky][kx]
    flat = w.transpose(1, 2, 3, 0).astype("<i2").tobytes()
    assert len(flat) % 4 == 2  # 3*3*25 values
    at = data.index(flat) + len(flat)
    assert data[at:at + 2] == b"\0\0"
    bad = bytearray(data)
    bad[at] = 1
    with pytest.raises(LicError, match="padding"):
        decode_licm(rebuild(bytes(bad)))


def test_int16_reader_refusals() -> None:
    rng = np.random.default_rng(6)
    good = int16_model([s16_deconv_node(rng, 2, 2)], 2, 2)
    encode_licm(good)

    def refused(edit, match):
        m = int16_model([s16_deconv_node(np.random.default_rng(6), 2, 2)], 2, 2)
        edit(m)
        with pytest.raises(LicError, match=match):
            encode_licm(m)

    refused(lambda m: m.nodes[1].tensors.__setitem__(
        "weight", np.full((2, 2, 5, 5), -32768)), "outside")
    refused(lambda m: m.nodes[1].attrs.__setitem__("out_shift", 30), "accumulator shift")
    refused(lambda m: m.nodes[0].attrs.__setitem__("shift", 40), "outside")
    refused(lambda m: m.nodes.pop(), "output is int16")
    refused(lambda m: m.nodes.__setitem__(0, Node("relu", [0])), "float value")
    refused(lambda m: m.nodes.insert(2, Node("relu", [2])), "int16 value")
    gdn = Node("s16_gdn", [1], {"channels": 2, "inverse": 1, "square_shift": 16,
                                "gamma_shift": 10, "root_shift": 4, "out_shift": 8},
               {"beta": np.array([0, 5]), "gamma": np.ones((2, 2), int)})
    with pytest.raises(LicError, match="beta"):
        encode_licm(int16_model([gdn], 2, 2))


# ------------------------------------------------------------------------------ whole models

def test_reference_runs_int64_and_f64_alike() -> None:
    rng = np.random.default_rng(8)
    nodes = [s16_deconv_node(rng, 6, 5), Node("s16_relu", [2]),
             s16_deconv_node(rng, 5, 3)]
    nodes[2].inputs = [3]
    m = int16_model(nodes, 6, 3)
    x = rng.normal(0, 20, (3, 4, 6)).astype(np.float32)
    a = fx.run_values(m, x)
    b = fx.run_values(m, x, exact="int64")
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert np.abs(a[2]).max() > 1000  # not a trivial all-zero run
