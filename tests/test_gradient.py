"""The runtime's backward pass (cpp/lic/gradient.hpp, via lic-run --grad) against PyTorch
autograd: d<g, model(x)>/dx for random x and g, op by op, in chains and through the
fixture's real synthesis transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_runtime import (
    conv_node,
    deconv_node,
    gdn_node,
    gdn_synthesis,
    relu_synthesis,
    save,
    t,
    torch_node,
)

from lic2cpp.errors import LicError
from lic2cpp.modelformat import Node, infer_channels
from lic2cpp.runtime import grad_licm, run_licm


def torch_grad(nodes: list[Node], x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Reference: autograd through torch.nn.functional in float64."""
    xt = t(x).permute(2, 0, 1)[None].double().requires_grad_(True)
    values = [xt]
    for node in nodes:
        n = Node(node.op, node.inputs, node.attrs,
                 {k: v.astype(np.float64) for k, v in node.tensors.items()})
        values.append(torch_node(n, values))
    out = values[-1]
    (dx,) = torch.autograd.grad(out, xt, t(g).permute(2, 0, 1)[None].double())
    return dx[0].permute(1, 2, 0).numpy()


def check_grad(tmp_path, nodes, h, w, *, threads=1, tol=2e-5, **kw) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w + 1)
    cin, _ = infer_channels(nodes)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    path = save(tmp_path, nodes)
    y = run_licm(path, x, threads, **kw)
    g = rng.standard_normal(y.shape).astype(np.float32)
    out, got = grad_licm(path, x, g, threads, **kw)
    np.testing.assert_array_equal(out, y)  # the recorded forward pass is run() itself
    want = torch_grad(nodes, x, g)
    assert got.shape == want.shape == x.shape
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= tol * scale, f"max gradient error {err} (scale {scale})"
    return got


SIZES = [(1, 1), (3, 5), (8, 13)]


@pytest.mark.parametrize("cin,cout,k,stride,pad,out_pad", [
    (8, 16, 5, 2, 2, 1),   # g_s layers
    (6, 3, 5, 2, 2, 1),    # g_s last layer (gradient: a convolution with 3 input channels)
    (5, 17, 3, 1, 1, 0),   # stride 1
    (3, 5, 4, 3, 0, 2),    # stride 3, out_pad 2 > pad
    (2, 4, 1, 2, 0, 1),    # kernel smaller than the stride
])
@pytest.mark.parametrize("h,w", SIZES)
def test_conv_transpose2d_grad(tmp_path, cin, cout, k, stride, pad, out_pad, h, w) -> None:
    rng = np.random.default_rng(cin * 100 + cout + k)
    check_grad(tmp_path, [deconv_node(rng, cin, cout, k, stride, pad, out_pad)], h, w)


@pytest.mark.parametrize("cin,cout,k,stride,pads", [
    (3, 16, 5, 2, (2, 2, 2, 2)),   # g_a's first layer (gradient: 3 output channels)
    (16, 20, 5, 2, (2, 2, 2, 2)),
    (7, 17, (3, 5), 1, (0, 2, 2, 1)),
    (6, 5, 3, 3, (1, 0, 2, 1)),    # rows the convolution never reads get zero gradient
])
@pytest.mark.parametrize("h,w", [(5, 5), (8, 13), (17, 9)])
def test_conv2d_grad(tmp_path, cin, cout, k, stride, pads, h, w) -> None:
    rng = np.random.default_rng(cin * 100 + cout)
    check_grad(tmp_path, [conv_node(rng, cin, cout, k, stride, pads)], h, w)


@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("c", [3, 16, 21])
def test_gdn_grad(tmp_path, c, inverse) -> None:
    rng = np.random.default_rng(c + inverse)
    for h, w in [(1, 1), (5, 3)]:
        check_grad(tmp_path, [gdn_node(rng, c, inverse)], h, w)


def test_activations_and_add_grad(tmp_path) -> None:
    rng = np.random.default_rng(5)
    nodes = [
        conv_node(rng, 3, 6, 1, 1, (0, 0, 0, 0)),
        Node("relu", [1]),                      # not fused: value 1 is read by the add too
        Node("leaky_relu", [1], {"alpha": 0.2}),
        Node("add", [2, 3]),
        Node("leaky_relu", [4], {"alpha": 0.05}),
        conv_node(rng, 6, 4, 3, 1, (1, 1, 1, 1), 5), Node("relu", [6]),  # fused
    ]
    for h, w in [(1, 1), (3, 5), (4, 7)]:
        check_grad(tmp_path, nodes, h, w)


@pytest.mark.parametrize("build", [relu_synthesis, gdn_synthesis])
@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (6, 4)])
def test_synthesis_chain_grad(tmp_path, build, h, w) -> None:
    check_grad(tmp_path, build(np.random.default_rng(7)), h, w)


def test_scalar_kernels_and_threads(tmp_path) -> None:
    rng = np.random.default_rng(12)
    nodes = relu_synthesis(rng) + [conv_node(rng, 3, 8, 3, 1, (1, 1, 1, 1), 5),
                                   gdn_node(rng, 8, 0, 6)]
    one = check_grad(tmp_path, nodes, 7, 5)
    scalar = check_grad(tmp_path, nodes, 7, 5, force_scalar=True)
    assert np.abs(scalar - one).max() <= 1e-4 * max(1.0, float(np.abs(one).max()))
    for threads in (2, 3):
        np.testing.assert_array_equal(check_grad(tmp_path, nodes, 7, 5, threads=threads), one)


def test_under_sanitizers(tmp_path) -> None:
    rng = np.random.default_rng(13)
    check_grad(tmp_path, relu_synthesis(rng, 5, 6), 3, 2, sanitize=True)
    check_grad(tmp_path, gdn_synthesis(rng, 5, 6), 2, 3, sanitize=True, threads=2)
    check_grad(tmp_path, [conv_node(rng, 3, 5, 3, 2, (1, 1, 1, 1))], 7, 6, sanitize=True)


def test_negative_slope_is_refused(tmp_path) -> None:
    rng = np.random.default_rng(14)
    path = save(tmp_path, [conv_node(rng, 3, 4, 1, 1, (0, 0, 0, 0)),
                           Node("leaky_relu", [1], {"alpha": -0.5})])
    x = np.ones((2, 2, 3), np.float32)
    with pytest.raises(LicError, match="negative slope"):
        grad_licm(path, x, np.ones((2, 2, 4), np.float32))
