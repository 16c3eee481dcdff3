"""The C++ runtime (via lic-run) against torch.nn.functional, op by op and in small chains.

Models are built with lic2cpp.modelformat, so these tests also check the Python writer
against the C++ reader.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lic2cpp.errors import LicError
from lic2cpp.modelformat import ModelFile, Node, decode_licm, infer_channels, write_licm
from lic2cpp.runtime import run_licm, run_tool
from lic2cpp.toolchain import compile_program, cpp_dir

# --------------------------------------------------------------------------- model builders

def conv_node(rng, cin, cout, k, stride, pads, inp=0) -> Node:
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    top, left, bottom, right = pads
    attrs = dict(cin=cin, cout=cout, kh=kh, kw=kw, stride_h=sh, stride_w=sw,
                 pad_top=top, pad_left=left, pad_bottom=bottom, pad_right=right)
    return Node("conv2d", [inp], attrs,
                {"weight": rng.standard_normal((cout, cin, kh, kw)).astype(np.float32)
                 / np.sqrt(cin * kh * kw),
                 "bias": rng.standard_normal(cout).astype(np.float32)})


def deconv_node(rng, cin, cout, k, stride, pad, out_pad, inp=0) -> Node:
    attrs = dict(cin=cin, cout=cout, kh=k, kw=k, stride_h=stride, stride_w=stride,
                 pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad,
                 out_pad_h=out_pad, out_pad_w=out_pad)
    return Node("conv_transpose2d", [inp], attrs,
                {"weight": rng.standard_normal((cin, cout, k, k)).astype(np.float32)
                 / np.sqrt(cin * k * k),
                 "bias": rng.standard_normal(cout).astype(np.float32)})


def gdn_node(rng, c, inverse, inp=0) -> Node:
    return Node("gdn", [inp], {"channels": c, "inverse": inverse},
                {"beta": rng.uniform(0.5, 1.5, c).astype(np.float32),
                 "gamma": rng.uniform(0.0, 0.2, (c, c)).astype(np.float32)})


def save(tmp_path, nodes: list[Node], name: str = "m"):
    cin, cout = infer_channels(nodes)
    path = tmp_path / f"{name}.licm"
    write_licm(path, ModelFile(name, cin, cout, nodes))
    return path


# --------------------------------------------------------------------------- torch reference

def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def torch_node(node: Node, values: list[torch.Tensor]) -> torch.Tensor:
    """Independent reference: the node evaluated with torch.nn.functional (NCHW)."""
    x = values[node.inputs[0]]
    a = node.attrs
    if node.op == "conv2d":
        x = F.pad(x, (a["pad_left"], a["pad_right"], a["pad_top"], a["pad_bottom"]))
        return F.conv2d(x, t(node.tensors["weight"]), t(node.tensors["bias"]),
                        stride=(a["stride_h"], a["stride_w"]))
    if node.op == "conv_transpose2d":
        assert a["pad_top"] == a["pad_bottom"] and a["pad_left"] == a["pad_right"]
        return F.conv_transpose2d(x, t(node.tensors["weight"]), t(node.tensors["bias"]),
                                  stride=(a["stride_h"], a["stride_w"]),
                                  padding=(a["pad_top"], a["pad_left"]),
                                  output_padding=(a["out_pad_h"], a["out_pad_w"]))
    if node.op == "relu":
        return F.relu(x)
    if node.op == "leaky_relu":
        return F.leaky_relu(x, a["alpha"])
    if node.op == "gdn":
        c = a["channels"]
        gamma = t(node.tensors["gamma"]).reshape(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, t(node.tensors["beta"]))
        return x * torch.sqrt(norm) if a["inverse"] else x * torch.rsqrt(norm)
    if node.op == "add":
        return x + values[node.inputs[1]]
    raise AssertionError(node.op)


def torch_model(nodes: list[Node], x: np.ndarray) -> np.ndarray:
    values = [t(x).permute(2, 0, 1)[None].double()]
    for node in nodes:
        n = Node(node.op, node.inputs, node.attrs,
                 {k: v.astype(np.float64) for k, v in node.tensors.items()})
        values.append(torch_node(n, values))
    return values[-1][0].permute(1, 2, 0).numpy()


def check(tmp_path, nodes, h, w, *, threads=1, tol=2e-5, force_scalar=False, sanitize=False):
    rng = np.random.default_rng(h * 1000 + w)
    cin, _ = infer_channels(nodes)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    path = save(tmp_path, nodes)
    got = run_licm(path, x, threads, force_scalar=force_scalar, sanitize=sanitize)
    want = torch_model(nodes, x)
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= tol * scale, f"max error {err} (scale {scale})"
    return got


SIZES = [(1, 1), (3, 5), (17, 9), (8, 13)]


# --------------------------------------------------------------------------- single ops

CONV_CASES = [
    (3, 16, 5, 2, (2, 2, 2, 2)),     # g_a first layer shape
    (7, 20, 3, 1, (1, 1, 1, 1)),     # channel tail (20 = 16 + 4)
    (5, 3, 3, 2, (1, 1, 1, 1)),
    (4, 9, (3, 5), 1, (0, 2, 2, 1)),  # rectangular kernel, asymmetric padding
    (2, 33, 1, 1, (0, 0, 0, 0)),
    (96, 20, 7, 1, (3, 3, 3, 3)),   # 96*49*16 weights per panel: reduction split in blocks
    # Winograd form (lic/ops/conv_winograd.hpp): 16+ input channels, 2 or 3 taps per phase
    (16, 20, 5, 2, (2, 2, 2, 2)),    # g_a's layers: phases of 3 and 2 taps, channel tail
    (17, 33, 3, 1, (1, 0, 1, 2)),    # one 3-tap phase, asymmetric padding, 3 panels
    (24, 16, (2, 4), (1, 2), (0, 1, 1, 0)),  # stride 1 down, 2 across: two 2-tap phases
    (16, 40, (1, 6), (3, 2), (0, 3, 0, 2)),  # stride 3 down, 2 across: two 3-tap phases
    # rows paired across the stride's y terms (3 + 2 kernel rows; 2 + 2), odd top padding
    (16, 18, (5, 3), (2, 1), (1, 1, 2, 1)),
    (20, 16, (4, 3), (2, 1), (2, 1, 1, 1)),
]


def fits(case, size) -> bool:
    _, _, k, _, pads = case
    kh, kw = (k, k) if isinstance(k, int) else k
    return size[0] + pads[0] + pads[2] >= kh and size[1] + pads[1] + pads[3] >= kw


@pytest.mark.parametrize("case,size", [(c, s) for c in CONV_CASES for s in SIZES if fits(c, s)])
def test_conv2d(tmp_path, case, size) -> None:
    cin, cout, k, stride, pads = case
    rng = np.random.default_rng(cin * 100 + cout)
    check(tmp_path, [conv_node(rng, cin, cout, k, stride, pads)], *size)


@pytest.mark.parametrize("cin,cout,k,stride,pad,out_pad", [
    (8, 16, 5, 2, 2, 1),   # g_s layers
    (6, 3, 5, 2, 2, 1),    # g_s last layer (3 output channels): output pixels in pairs
    (5, 3, 4, 2, 1, 0),    # 3 outputs, 4x4 stride 2: 2 taps a phase, pairs from an odd pixel
    (4, 3, 3, 2, 1, 1),    # 3 outputs, 3x3 stride 2: 2 and 1 taps
    (7, 3, 6, 2, 3, 1),    # 3 outputs, 6x6 stride 2, wide padding
    (5, 17, 3, 1, 1, 0),   # kernel 3, stride 1
    (4, 7, 3, 2, 1, 1),    # kernel 3, stride 2
    (3, 5, 4, 3, 0, 2),    # stride 3: phases with different tap counts
    (2, 4, 1, 2, 0, 1),    # kernel smaller than stride: phases with no taps (bias only)
    # Winograd form (16+ input and output channels, 2 or 3 taps per phase across)
    (16, 20, 5, 2, 2, 1),  # g_s's layers: phases of 3 and 2 taps both ways, channel tail
    (17, 33, 3, 1, 1, 0),  # stride 1: one 3-tap phase, 3 panels
    (20, 16, 4, 2, 1, 0),  # two 2-tap phases each way, no output padding
    (16, 18, 6, 2, 3, 1),  # two 3-tap phases, wide padding
])
@pytest.mark.parametrize("h,w", SIZES)
def test_conv_transpose2d(tmp_path, cin, cout, k, stride, pad, out_pad, h, w) -> None:
    rng = np.random.default_rng(cin * 100 + cout + k)
    check(tmp_path, [deconv_node(rng, cin, cout, k, stride, pad, out_pad)], h, w)


def test_gather_form_with_fused_activation(tmp_path) -> None:
    # The RGB layer's gather form stores a fused LEAKY_RELU with the sums (pairs and single
    # pixels, borders and interior).
    rng = np.random.default_rng(33)
    nodes = [deconv_node(rng, 6, 3, 5, 2, 2, 1), Node("leaky_relu", [1], {"alpha": 0.25})]
    for h, w in [(1, 1), (3, 5), (6, 11)]:
        check(tmp_path, nodes, h, w)


@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("c", [3, 16, 21])
def test_gdn(tmp_path, c, inverse) -> None:
    rng = np.random.default_rng(c + inverse)
    for h, w in [(1, 1), (5, 3)]:
        check(tmp_path, [gdn_node(rng, c, inverse)], h, w)


def test_activations_and_add(tmp_path) -> None:
    rng = np.random.default_rng(5)
    nodes = [
        conv_node(rng, 3, 6, 1, 1, (0, 0, 0, 0)),
        Node("relu", [1]),                      # not fused: value 1 is read by the add too
        Node("leaky_relu", [1], {"alpha": 0.2}),
        Node("add", [2, 3]),
        Node("leaky_relu", [4], {"alpha": -1.5}),  # unusual alpha: x >= 0 ? x : alpha * x
    ]
    for h, w in [(1, 1), (3, 5), (4, 7)]:
        check(tmp_path, nodes, h, w)


# --------------------------------------------------------------------------- chains

def relu_synthesis(rng, m=12, n=10) -> list[Node]:
    """A scaled-down FactorizedPriorReLU g_s: fused deconv + ReLU chains."""
    return [
        deconv_node(rng, m, n, 5, 2, 2, 1, 0), Node("relu", [1]),
        deconv_node(rng, n, n, 5, 2, 2, 1, 2), Node("relu", [3]),
        deconv_node(rng, n, 3, 5, 2, 2, 1, 4),
    ]


def gdn_analysis(rng, n=10, m=12) -> list[Node]:
    """A scaled-down FactorizedPrior g_a: conv + GDN chains."""
    return [
        conv_node(rng, 3, n, 5, 2, (2, 2, 2, 2), 0), gdn_node(rng, n, 0, 1),
        conv_node(rng, n, n, 5, 2, (2, 2, 2, 2), 2), gdn_node(rng, n, 0, 3),
        conv_node(rng, n, m, 5, 2, (2, 2, 2, 2), 4),
    ]


def gdn_synthesis(rng, m=12, n=10) -> list[Node]:
    return [
        deconv_node(rng, m, n, 5, 2, 2, 1, 0), gdn_node(rng, n, 1, 1),
        deconv_node(rng, n, 3, 5, 2, 2, 1, 2),
    ]


@pytest.mark.parametrize("build", [relu_synthesis, gdn_synthesis])
@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (6, 4)])
def test_synthesis_chain(tmp_path, build, h, w) -> None:
    check(tmp_path, build(np.random.default_rng(7)), h, w)


@pytest.mark.parametrize("h,w", [(1, 1), (16, 16), (23, 9)])
def test_analysis_chain(tmp_path, h, w) -> None:
    check(tmp_path, gdn_analysis(np.random.default_rng(8)), h, w)


def test_scalar_kernels_match_torch(tmp_path) -> None:
    rng = np.random.default_rng(9)
    check(tmp_path, relu_synthesis(rng), 5, 3, force_scalar=True)
    check(tmp_path, gdn_analysis(rng), 13, 11, force_scalar=True)
    check(tmp_path, [conv_node(rng, 16, 20, 5, 2, (2, 2, 2, 2))], 9, 13, force_scalar=True)
    check(tmp_path, [deconv_node(rng, 16, 20, 5, 2, 2, 1)], 7, 10, force_scalar=True)


def test_thread_count_does_not_change_results(tmp_path) -> None:
    rng = np.random.default_rng(10)
    nodes = relu_synthesis(rng) + [conv_node(rng, 3, 8, 3, 1, (1, 1, 1, 1), 5),
                                   gdn_node(rng, 8, 0, 6)]
    path = save(tmp_path, nodes)
    x = rng.standard_normal((9, 7, 12)).astype(np.float32)
    one = run_licm(path, x, 1)
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(run_licm(path, x, threads), one)


# --------------------------------------------------------------------------- streaming

def streamed_cases(rng) -> list[tuple[str, list[Node], int]]:
    """Chains the runtime streams: (name, nodes, input channels)."""
    return [
        ("relu synthesis", relu_synthesis(rng), 12),
        ("gdn synthesis", gdn_synthesis(rng), 12),
        ("gdn analysis", gdn_analysis(rng), 3),
        # odd kernels, strides and paddings; a transposed conv whose kernel is smaller than
        # its stride (phases without taps); an unfused activation after GDN
        ("mixed", [conv_node(rng, 5, 17, (3, 5), 1, (0, 2, 2, 1)),
                   deconv_node(rng, 17, 9, 2, 3, 0, 1, 1), Node("relu", [2]),
                   conv_node(rng, 9, 20, 4, 3, (1, 0, 2, 3), 3), gdn_node(rng, 20, 1, 4),
                   Node("leaky_relu", [5], {"alpha": 0.2}),
                   deconv_node(rng, 20, 4, 5, 2, 2, 1, 6)], 5),
        # the Winograd form (16+ input channels): 5x5 stride 2 with a fused ReLU, 3x3
        # stride 1 before GDN, a fused leaky ReLU (lic/ops/conv_winograd.hpp)
        ("winograd analysis", [conv_node(rng, 3, 16, 5, 2, (2, 2, 2, 2)), Node("relu", [1]),
                               conv_node(rng, 16, 20, 5, 2, (2, 2, 2, 2), 2), Node("relu", [3]),
                               conv_node(rng, 20, 18, 3, 1, (1, 1, 1, 1), 4),
                               gdn_node(rng, 18, 0, 5),
                               conv_node(rng, 18, 33, (3, 4), (1, 2), (1, 1, 1, 2), 6),
                               Node("leaky_relu", [7], {"alpha": 0.1})], 3),
        # transposed convolutions in the Winograd form: 5x5 stride 2 with a fused ReLU,
        # 3x3 stride 1 before inverse GDN, 4x4 stride 2 into the gather form's last layer
        ("winograd synthesis", [deconv_node(rng, 16, 20, 5, 2, 2, 1), Node("relu", [1]),
                                deconv_node(rng, 20, 17, 3, 1, 1, 0, 2), gdn_node(rng, 17, 1, 3),
                                deconv_node(rng, 17, 16, 4, 2, 1, 0, 4),
                                deconv_node(rng, 16, 3, 5, 2, 2, 1, 5)], 16),
    ]


# (3, 150): rows wide enough that a band of one row is cut into column pieces between the
# threads (lic/ops/igemm_pass.hpp column_pieces).
@pytest.mark.parametrize("h,w", [(4, 6), (7, 5), (17, 11), (3, 150)])
def test_streamed_runs_equal_whole_tensor_runs(tmp_path, h, w) -> None:
    # A chain runs in bands of output rows, each operator keeping only the input rows it
    # still needs (lic/stream.hpp). Every output value must be bit for bit what the
    # whole-tensor execution (LIC_STREAM=0) gives, for any band height and thread count.
    # Every buffer the runtime takes from its pool starts as NaN (LIC_POISON_BUFFERS): an
    # element read before it is written (a window's margins) would show in the output.
    rng = np.random.default_rng(12)
    poison = {"LIC_POISON_BUFFERS": "1"}
    for name, nodes, cin in streamed_cases(rng):
        path = save(tmp_path, nodes, name.replace(" ", "_"))
        x = rng.standard_normal((h, w, cin)).astype(np.float32)
        whole = run_licm(path, x, 1, env={"LIC_STREAM": "0", **poison})
        want = torch_model(nodes, x)
        assert np.abs(whole - want).max() <= 2e-5 * max(1.0, np.abs(want).max()), name
        for band in ("1", "2", "3", "7", ""):
            for threads in (1, 2, 3):
                env = {"LIC_BAND_ROWS": band, **poison} if band else poison
                got = run_licm(path, x, threads, env=env)
                assert got.shape == whole.shape
                assert np.array_equal(got.view(np.uint32), whole.view(np.uint32)), \
                    (name, band, threads)


def test_window_shifts_shared_between_threads(tmp_path) -> None:
    # A window's kept rows are moved to the top of its buffer by all threads at once, each
    # its own columns of every row, once rows are 8192 floats or longer (lic/stream.hpp
    # shift_to_top): here 64 channels x 154 padded columns, shifted every band or two. The
    # result must be bit for bit the whole-tensor run's on any thread count (AddressSanitizer
    # and UBSan on).
    rng = np.random.default_rng(21)
    nodes = [conv_node(rng, 8, 64, 3, 1, (1, 1, 1, 1)), Node("relu", [1]),
             conv_node(rng, 64, 32, 5, 2, (2, 2, 2, 2), 2), Node("relu", [3]),
             deconv_node(rng, 32, 64, 5, 2, 2, 1, 4), Node("relu", [5]),
             conv_node(rng, 64, 3, 3, 1, (1, 1, 1, 1), 6)]
    path = save(tmp_path, nodes, "shifts")
    x = rng.standard_normal((26, 150, 8)).astype(np.float32)
    whole = run_licm(path, x, 1, env={"LIC_STREAM": "0"})
    want = torch_model(nodes, x)
    assert np.abs(whole - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    for band in ("1", "2", "5"):
        for threads in (2, 3):
            got = run_licm(path, x, threads, sanitize=True,
                           env={"LIC_BAND_ROWS": band, "LIC_POISON_BUFFERS": "1"})
            assert np.array_equal(got.view(np.uint32), whole.view(np.uint32)), (band, threads)


def four_stride_two(rng, channels: tuple[int, int, int, int]) -> list[Node]:
    """g_a's shape: four 5x5 stride-2 convolutions from RGB, ReLUs between them."""
    nodes, cin = [], 3
    for i, cout in enumerate(channels):
        if i:
            nodes.append(Node("relu", [len(nodes)]))
        nodes.append(conv_node(rng, cin, cout, 5, 2, (2, 2, 2, 2), len(nodes)))
        cin = cout
    return nodes


def test_stream_windows_hold_what_a_band_needs(tmp_path) -> None:
    # Four 5x5 stride-2 convolutions (g_a's shape; 16 channels on: the Winograd form) in
    # bands of one output row. Once a window keeps rows, operator 3 (the last) reads 5 input
    # rows a band, 2 of them new; operator 2 makes those 2 from 7 rows, 4 new; operator 1
    # 11 rows, 8 new; operator 0 19 rows, 16 new. A window holds its span plus one band's
    # new rows (a shift at most every other band): 7, 11, 19 and 35 rows. The first band
    # reaches further back (into the padding) but its new rows pass through staging a
    # steady band's worth at a time, so it does not size the windows (it made them 10, 18,
    # 34 and 66 rows).
    rng = np.random.default_rng(14)
    nodes = four_stride_two(rng, (16, 16, 16, 24))
    path = save(tmp_path, nodes, "four_stride_two")
    x = rng.standard_normal((96, 40, 3)).astype(np.float32)
    with open(tmp_path / "in.npy", "wb") as f:
        np.save(f, x)
    whole = run_licm(path, x, 1, env={"LIC_STREAM": "0"})
    for threads in (1, 2):
        proc = run_tool([str(path), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"),
                         "--threads", str(threads)],
                        env={"LIC_BAND_ROWS": "1", "LIC_PROFILE": "1",
                             "LIC_POISON_BUFFERS": "1"})
        assert proc.returncode == 0, proc.stderr
        windows = [int(m) for m in re.findall(r"window (\d+) rows", proc.stderr)]
        assert windows == [35, 19, 11, 7], proc.stderr
        got = np.load(tmp_path / "out.npy")
        assert np.array_equal(got.view(np.uint32), whole.view(np.uint32))


def test_analysis_windows_on_the_pair_grid_are_exact(tmp_path) -> None:
    # A stride-2 convolution in the Winograd form pairs its output rows across its y terms
    # (docs/runtime.md#row-pairs); a row's arithmetic depends on its place in its pair, so a
    # window of the input (a tile, codec/tiling.hpp) must start every such layer's input on
    # a multiple of 4 rows. Four 5x5 stride-2 layers (g_a's shape, the last three paired):
    # a window starting at a multiple of 32 rows gives the whole run's values bit for bit,
    # once past the rows the window's own top padding reaches; one starting at 16 rows
    # (the third paired layer's input at 2) does not.
    rng = np.random.default_rng(15)
    nodes = four_stride_two(rng, (16, 16, 20, 24))
    path = save(tmp_path, nodes, "paired_analysis")
    x = rng.standard_normal((192, 40, 3)).astype(np.float32)
    whole = run_licm(path, x, 1)
    want = torch_model(nodes, x)
    assert np.abs(whole - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    reach = 2  # latent rows that read the window's top padding (receptive field 61 rows)
    for origin, exact in ((32, True), (64, True), (16, False), (48, False)):
        for threads in (1, 2):
            got = run_licm(path, np.ascontiguousarray(x[origin:]), threads)
            a = whole[origin // 16 + reach:]
            b = got[reach:reach + a.shape[0]]
            assert a.shape == b.shape
            same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
            assert same == exact, (origin, threads)
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max())


def supported_levels() -> list[str]:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    levels = []
    if {"avx2", "fma"} <= flags:
        levels.append("avx2+fma")
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            levels.append("avx512")
    return levels


def test_simd_levels_give_identical_results(tmp_path) -> None:
    # The AVX2 and AVX-512 GEMM kernels compute every output as the same chain of FMAs, so
    # a model's output must not depend on which of them the CPU picks.
    levels = supported_levels()
    if len(levels) < 2:
        pytest.skip(f"this CPU offers only {levels or ['scalar']} of the FMA levels")
    rng = np.random.default_rng(13)
    for name, nodes, cin in streamed_cases(rng):
        path = save(tmp_path, nodes, name.replace(" ", "_"))
        x = rng.standard_normal((13, 10, cin)).astype(np.float32)
        outs = [run_licm(path, x, 2, env={"LIC_ISA": lv}) for lv in levels]
        for lv, out in zip(levels[1:], outs[1:], strict=True):
            assert np.array_equal(out.view(np.uint32), outs[0].view(np.uint32)), (name, lv)


# --------------------------------------------------------------------------- sanitizers

def test_ops_under_sanitizers(tmp_path) -> None:
    rng = np.random.default_rng(11)
    check(tmp_path, relu_synthesis(rng, 5, 6), 3, 2, sanitize=True)
    check(tmp_path, gdn_analysis(rng, 6, 5), 9, 7, sanitize=True, threads=2)
    check(tmp_path, [conv_node(rng, 16, 20, 5, 2, (2, 2, 2, 2)), Node("relu", [1]),
                     conv_node(rng, 20, 17, 3, 1, (1, 1, 1, 1), 2)], 11, 9, sanitize=True,
          threads=2)
    check(tmp_path, gdn_synthesis(rng, 5, 6), 2, 3, sanitize=True, force_scalar=True)
    check(tmp_path, [deconv_node(rng, 16, 20, 5, 2, 2, 1), Node("relu", [1]),
                     deconv_node(rng, 20, 17, 4, 2, 1, 0, 2)], 5, 3, sanitize=True, threads=2)
    # streamed in bands of one and two rows, on two threads
    nodes = relu_synthesis(rng, 5, 6)
    path = save(tmp_path, nodes, "bands")
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    whole = run_licm(path, x, 1, env={"LIC_STREAM": "0"})
    for band in ("1", "2"):
        got = run_licm(path, x, 2, sanitize=True, env={"LIC_BAND_ROWS": band})
        np.testing.assert_array_equal(got, whole)
    nodes = [conv_node(rng, 3, 17, (3, 5), 1, (0, 2, 2, 1)), Node("relu", [1]),
             Node("add", [2, 1]), deconv_node(rng, 17, 2, 4, 3, 0, 2, 3)]
    check(tmp_path, nodes, 2, 5, sanitize=True)


def test_corrupt_models_under_sanitizers(tmp_path) -> None:
    """Every truncation and many byte flips (with and without a repaired fingerprint) of a
    small model, parsed and run in one sanitized process: refused or run, never a crash."""
    rng = np.random.default_rng(12)
    nodes = [conv_node(rng, 2, 3, 3, 2, (1, 1, 1, 1)), gdn_node(rng, 3, 1, 1),
             Node("leaky_relu", [2], {"alpha": 0.1}), Node("add", [3, 2]),
             deconv_node(rng, 3, 2, 3, 2, 1, 1, 4)]
    path = save(tmp_path, nodes)
    src = cpp_dir().parent / "tests" / "cpp" / "fuzz_model.cpp"
    exe = compile_program([src], "fuzz-model-asan", sanitize=True)
    proc = subprocess.run([str(exe), str(path), "3000"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # The harness reports how many variants it refused and accepted: both must occur.
    refused, accepted = (int(v) for v in proc.stdout.split()[-2:])
    assert refused > 0 and accepted > 0


# --------------------------------------------------------------------------- CLI errors

def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lic-run: error: "), proc.stderr
    return lines[0]


def test_truncated_model_files_give_one_line(tmp_path) -> None:
    rng = np.random.default_rng(13)
    data = save(tmp_path, [conv_node(rng, 2, 3, 3, 1, (1, 1, 1, 1))]).read_bytes()
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 4, 2), np.float32))
    for n in [0, 3, 23, 24, 40, len(data) // 2, len(data) - 1]:
        bad = tmp_path / "bad.licm"
        bad.write_bytes(data[:n])
        msg = one_line_error(run_tool([str(bad), str(x), str(tmp_path / "y.npy")],
                                      sanitize=True))
        assert "short" in msg or "disagrees" in msg
    flipped = bytearray(data)
    flipped[60] ^= 1
    bad.write_bytes(bytes(flipped))
    assert "fingerprint" in one_line_error(run_tool(["--info", str(bad)], sanitize=True))


def test_bad_inputs_give_one_line(tmp_path) -> None:
    rng = np.random.default_rng(14)
    model = save(tmp_path, [conv_node(rng, 2, 3, 5, 1, (0, 0, 0, 0))])
    out = str(tmp_path / "y.npy")
    cases = {
        "missing.npy": None,
        "wrong_channels.npy": np.zeros((6, 6, 3), np.float32),
        "too_small.npy": np.zeros((3, 6, 2), np.float32),
        "float64.npy": np.zeros((6, 6, 2), np.float64),
        "rank2.npy": np.zeros((6, 6), np.float32),
        "batch2.npy": np.zeros((2, 6, 6, 2), np.float32),
    }
    for name, arr in cases.items():
        p = tmp_path / name
        if arr is not None:
            np.save(p, arr)
        one_line_error(run_tool([str(model), str(p), out]))
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
    one_line_error(run_tool([str(model), str(garbage), out]))
    one_line_error(run_tool([str(tmp_path / "none.licm"), str(garbage), out]))
    one_line_error(run_tool([str(model), str(garbage), out, "--threads", "0"]))
    one_line_error(run_tool([str(model)]))
    with pytest.raises(LicError, match="too small"):
        run_licm(model, np.zeros((3, 6, 2), np.float32))


def test_info_and_rank4(tmp_path) -> None:
    rng = np.random.default_rng(15)
    nodes = relu_synthesis(rng, 4, 5)
    path = save(tmp_path, nodes, "g_s")
    proc = run_tool(["--info", str(path)])
    assert proc.returncode == 0
    assert "model g_s" in proc.stdout and "conv_transpose2d" in proc.stdout
    params = sum(v.size for n in nodes for v in n.tensors.values())
    assert f"{params} parameters" in proc.stdout
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = run_tool([str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                     "--repeat", "3"])
    assert proc.returncode == 0, proc.stderr
    assert "best" in proc.stderr and "median" in proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (1, 16, 24, 3)
    np.testing.assert_allclose(y[0], torch_model(nodes, x[0]), atol=2e-5, rtol=0)



def assert_readers_agree(tmp_path: Path, variants: list[bytes]) -> None:
    """The Python reader and lic-run accept and refuse the same of these .licm files (and
    the set holds some of each)."""
    accepted = 0
    for i, v in enumerate(variants):
        path = tmp_path / f"v{i}.licm"
        path.write_bytes(v)
        try:
            decode_licm(v)
            py_ok = True
        except LicError:
            py_ok = False
        proc = run_tool(["--info", str(path)])
        assert proc.returncode in (0, 1), proc.stderr
        assert (proc.returncode == 0) == py_ok, (i, proc.stderr)
        accepted += py_ok
    assert 0 < accepted < len(variants)

def test_python_and_cpp_readers_agree(tmp_path) -> None:
    """The Python reader and the C++ reader accept and refuse the same files."""
    import struct

    from lic2cpp.modelformat import encode_licm, fingerprint

    rng = np.random.default_rng(16)
    nodes = [conv_node(rng, 2, 3, 3, 2, (1, 1, 1, 1)), gdn_node(rng, 3, 0, 1),
             Node("leaky_relu", [2], {"alpha": 0.5}), Node("add", [3, 1]),
             deconv_node(rng, 3, 2, 3, 2, 1, 1, 4)]
    cin, cout = infer_channels(nodes)
    data = encode_licm(ModelFile("g\u00e4", cin, cout, nodes))
    body = data[24:]
    variants = [data]
    for k in range(70):
        b = bytearray(body)
        pos = int(rng.integers(0, len(b) // 4)) * 4
        value = int(rng.integers(0, 40)) if k % 2 else int(rng.integers(0, 2**32))
        b[pos:pos + 4] = struct.pack("<I", value)
        variants.append(b"LICM" + struct.pack("<HHQQ", 1, 0, len(b), fingerprint(bytes(b)))
                        + bytes(b))
    bad_name = bytearray(body)
    bad_name[17] = 0xFF
    variants.append(b"LICM" + struct.pack("<HHQQ", 1, 0, len(bad_name),
                                          fingerprint(bytes(bad_name))) + bytes(bad_name))
    assert_readers_agree(tmp_path, variants)


def test_absurd_output_size_is_refused_before_any_work(tmp_path) -> None:
    rng = np.random.default_rng(17)
    nodes = [deconv_node(rng, 1, 1, 8, 8, 0, 0, 0), deconv_node(rng, 1, 1, 8, 8, 0, 0, 1)]
    model = save(tmp_path, nodes)
    x = tmp_path / "wide.npy"
    np.save(x, np.zeros((1, 2**20, 1), np.float32))  # output would be 64 x 2^26
    msg = one_line_error(run_tool([str(model), str(x), str(tmp_path / "y.npy")]))
    assert "too large" in msg


def test_background_packing_and_thread_helpers(tmp_path) -> None:
    # lic/parallel.hpp's start_thread (the thread gets the process's CPU mask back) and
    # parallel_each (items once each, helpers only once let start, the lowest item's
    # exception), and lic/runtime.hpp's PendingModel (a model packed by threads of its own
    # and the caller's first get(), or on first use; being_packed()): same results as the
    # model packed directly, under ASan + UBSan.
    from lic2cpp.toolchain import compile_program, cpp_dir

    rng = np.random.default_rng(12)
    nodes = gdn_analysis(rng, n=16, m=20) + [conv_node(rng, 20, 24, 5, 2, (2, 2, 2, 2), 5)]
    path = save(tmp_path, nodes)
    x = rng.standard_normal((37, 29, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    exe = compile_program([cpp_dir().parent / "tests" / "cpp" / "parallel_check.cpp"],
                          "parallel-check-asan", sanitize=True)
    proc = subprocess.run([str(exe), str(path), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    if seen["allowed_cpus"] >= 2:  # 20 threads started: placed on another CPU than their creator's
        assert seen["started_elsewhere"] >= 16, seen  # 20 of 20 here; plain threads: 0-9
