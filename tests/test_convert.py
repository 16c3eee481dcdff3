"""ONNX -> .licm conversion, checked through the C++ runtime against PyTorch (issue 2 item 5)
and ONNX Runtime, plus every refusal."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from test_convert_models import (
    MODELS,
    converted,
    image_of_size,
    torch_hwc,
    work_dir,
)
from torch import nn

from lic2cpp.cli import main
from lic2cpp.convert import convert_model, convert_onnx
from lic2cpp.errors import LicError
from lic2cpp.export import effective_gdn
from lic2cpp.modelformat import read_licm
from lic2cpp.runtime import run_licm

# Each model runs one full-size image (both architectures and both kinds of weights see
# both full sizes) and every small size.
FULL_SIZE = {"relu": "kodak", "gdn": "784x528", "relu_init": "784x528", "gdn_init": "kodak"}
CASES = [(key, FULL_SIZE[key]) for key in MODELS] + [
    (key, size) for key in MODELS for size in ("16x16", "37x21")
]


@pytest.mark.parametrize(("key", "size"), CASES)
def test_runtime_matches_pytorch(key: str, size: str) -> None:
    c = converted(key)
    x = image_of_size(size)
    y_ref = torch_hwc(c.net.g_a, x)
    y = run_licm(c.ga_licm, x)
    assert y.shape == y_ref.shape
    ga_err = float(np.abs(y - y_ref).max())
    agree = float(np.mean(np.round(y) == np.round(y_ref)))
    # The decoder sees integer latents; g_s runs on PyTorch's quantised latent.
    y_hat = np.round(y_ref)
    if size == "16x16":
        assert y_hat.shape == (1, 1, 192)  # the 1x1 latent case
    x_ref = torch_hwc(c.net.g_s, y_hat)
    x_hat = run_licm(c.gs_licm, y_hat)
    assert x_hat.shape == x_ref.shape == (16 * y_hat.shape[0], 16 * y_hat.shape[1], 3)
    gs_err = float(np.abs(x_hat - x_ref).max())
    print(f"\n{key} {size}: g_a max err {ga_err:.3g}, rounding agreement {agree:.6f}, "
          f"g_s max err {gs_err:.3g}")
    assert ga_err <= 1e-3
    assert agree >= 0.9999
    assert gs_err <= 1e-4


@pytest.mark.parametrize("key", ["relu", "gdn"])
def test_licm_holds_the_pytorch_weights(key: str) -> None:
    """Every weight of the .licm (read back in PyTorch layout) is PyTorch's, exactly; GDN
    holds CompressAI's effective (re-parametrised) beta and gamma."""
    from compressai.layers import GDN

    c = converted(key)
    for transform, licm in (("g_a", c.ga_licm), ("g_s", c.gs_licm)):
        model = read_licm(licm)
        layers = list(getattr(c.net, transform))
        assert model.name == transform
        assert len(model.nodes) == len(layers)
        for i, (node, layer) in enumerate(zip(model.nodes, layers, strict=True)):
            assert node.inputs == [i]
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                assert node.op == ("conv2d" if isinstance(layer, nn.Conv2d)
                                   else "conv_transpose2d")
                np.testing.assert_array_equal(node.tensors["weight"], layer.weight.detach())
                np.testing.assert_array_equal(node.tensors["bias"], layer.bias.detach())
                assert (node.attrs["kh"], node.attrs["stride_h"], node.attrs["pad_top"]) \
                    == (5, 2, 2)
                if node.op == "conv_transpose2d":
                    assert node.attrs["out_pad_h"] == node.attrs["out_pad_w"] == 1
            elif isinstance(layer, GDN):
                assert node.op == "gdn"
                assert node.attrs["inverse"] == int(layer.inverse) == int(transform == "g_s")
                eff = effective_gdn(layer)
                np.testing.assert_array_equal(node.tensors["beta"], eff.beta)
                np.testing.assert_array_equal(node.tensors["gamma"], eff.gamma[:, :, 0, 0])
            else:
                assert isinstance(layer, nn.ReLU) and node.op == "relu"


class ResidualNet(nn.Module):
    """Kernel 3 and 1x1 convolutions, stride 1 and 2, LeakyReLU, Add, GDN inside CompressAI
    residual blocks, and a stride-1 kernel-3 ConvTranspose."""

    def __init__(self) -> None:
        from compressai.layers import GDN, ResidualBlock, ResidualBlockWithStride

        super().__init__()
        torch.manual_seed(3)
        self.g_a = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2), ResidualBlock(8, 8),
            ResidualBlockWithStride(8, 12, stride=2), nn.LeakyReLU(0.2),
            nn.Conv2d(12, 6, 3, stride=1, padding=1))
        self.g_s = nn.Sequential(
            nn.ConvTranspose2d(6, 8, 5, stride=2, padding=2, output_padding=1),
            GDN(8, inverse=True), ResidualBlock(8, 10), nn.ReLU(),
            nn.ConvTranspose2d(10, 3, 3, stride=2, padding=1, output_padding=1),
            nn.Identity())
        with torch.no_grad():  # non-trivial GDN parameters
            for m in self.modules():
                if isinstance(m, GDN):
                    m.gamma.add_(0.05 * torch.rand_like(m.gamma))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_residual_blocks_and_add(exporter: str) -> None:
    net = ResidualNet().eval()
    ga, gs = convert_model(net, work_dir(f"residual-{exporter}"), exporter=exporter)
    ops = [n.op for n in read_licm(ga).nodes]
    assert ops.count("add") == 2 and "leaky_relu" in ops and "gdn" in ops
    x = image_of_size("45x27")
    y_ref = torch_hwc(net.g_a, x)
    y = run_licm(ga, x)
    assert y.shape == y_ref.shape
    assert np.abs(y - y_ref).max() <= 1e-4
    x_ref = torch_hwc(net.g_s, y_ref)
    x_hat = run_licm(gs, y_ref)
    assert x_hat.shape == x_ref.shape
    assert np.abs(x_hat - x_ref).max() <= 1e-4


def test_onnx_of_unmodified_compressai_gdn_converts() -> None:
    """An ONNX file exported elsewhere, straight from CompressAI's GDN (dynamo folds the
    re-parametrisation into constants, GDN shows as Pow(x, 2) -> Conv -> Sqrt -> Mul)."""
    import warnings

    from compressai.models import FactorizedPrior

    torch.manual_seed(2)
    g_s = FactorizedPrior(8, 12).eval().g_s
    path = work_dir("raw-gdn") / "g_s.onnx"
    dims = {2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(g_s, (torch.zeros(1, 12, 4, 4),), str(path), dynamo=True,
                          verbose=False, input_names=["input"], output_names=["output"],
                          dynamic_shapes=(dims,), external_data=False)
    convert_onnx(path, path.with_suffix(".licm"), "g_s")
    assert [n.op for n in read_licm(path.with_suffix(".licm")).nodes].count("gdn") == 3
    y = np.round(np.random.default_rng(0).normal(0, 3, (3, 5, 12))).astype(np.float32)
    x_ref = torch_hwc(g_s, y)
    assert np.abs(run_licm(path.with_suffix(".licm"), y) - x_ref).max() <= 1e-5


# ----------------------------------------------------------------- hand-built ONNX graphs

def make_onnx(nodes: list, inits: dict[str, np.ndarray], cin: int = 2,
              out: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "h", "w"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_inits(rng: np.random.Generator, cout: int, cin: int, k: int) -> dict[str, np.ndarray]:
    return {"w": rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k),
            "b": rng.standard_normal(cout)}


def save(model: onnx.ModelProto, name: str):
    path = work_dir("onnx") / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def ort_run(path, x_hwc: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x_hwc.transpose(2, 0, 1)[None])
    return sess.run(None, {"x": x})[0][0].transpose(1, 2, 0)


def test_same_padding_constant_identity_and_rsqrt_gdn_match_onnxruntime() -> None:
    """Variants the exporters might produce: auto_pad SAME_* at stride 1 with an even
    kernel, weights behind Constant/Identity, GDN written Pow(x,2) -> Conv -> Pow(-0.5)
    -> Mul and Sqrt -> Reciprocal -> Mul, an inverse GDN as Div(x, rsqrt); checked against
    ONNX Runtime."""
    rng = np.random.default_rng(5)
    c = 4
    inits = {**conv_inits(rng, c, 2, 4), "w2": rng.standard_normal((c, c, 3, 3)) / 6,
             "two": np.array(2.0), "mhalf": np.array(-0.5),
             "gamma": rng.uniform(0, 0.2, (c, c, 1, 1)), "beta": rng.uniform(0.5, 1, c)}
    w_const = helper.make_tensor("wc", TensorProto.FLOAT, [c, 2, 4, 4],
                                 inits.pop("w").astype(np.float32).ravel().tolist())
    nodes = [
        helper.make_node("Constant", [], ["w"], value=w_const, name="const_w"),
        helper.make_node("Identity", ["w"], ["w_id"], name="id_w"),
        helper.make_node("Conv", ["x", "w_id", "b"], ["c1"], auto_pad="SAME_UPPER"),
        helper.make_node("Pow", ["c1", "two"], ["sq"]),
        helper.make_node("Conv", ["sq", "gamma", "beta"], ["n"]),
        helper.make_node("Pow", ["n", "mhalf"], ["r"]),
        helper.make_node("Mul", ["r", "c1"], ["g1"]),  # GDN, operands swapped
        helper.make_node("Conv", ["g1", "w2", "b"], ["c2"], auto_pad="SAME_LOWER",
                         name="conv_same_lower"),
        helper.make_node("Mul", ["c2", "c2"], ["sq2"]),
        helper.make_node("Conv", ["sq2", "gamma", "beta"], ["n2"]),
        helper.make_node("Sqrt", ["n2"], ["s2"]),
        helper.make_node("Reciprocal", ["s2"], ["r2"]),
        helper.make_node("Div", ["c2", "r2"], ["g2"]),  # inverse GDN
        helper.make_node("Identity", ["g2"], ["y"]),
    ]
    path = save(make_onnx(nodes, inits), "variants")
    licm = path.with_suffix(".licm")
    convert_onnx(path, licm, "variants")
    model = read_licm(licm)
    assert [(n.op, n.attrs.get("inverse")) for n in model.nodes] == [
        ("conv2d", None), ("gdn", 0), ("conv2d", None), ("gdn", 1)]
    a0, a2 = model.nodes[0].attrs, model.nodes[2].attrs
    assert (a0["pad_top"], a0["pad_bottom"], a0["pad_left"], a0["pad_right"]) == (1, 2, 1, 2)
    assert (a2["pad_top"], a2["pad_bottom"]) == (1, 1)
    x = rng.uniform(-1, 1, (9, 14, 2)).astype(np.float32)
    np.testing.assert_allclose(run_licm(licm, x), ort_run(path, x), rtol=1e-5, atol=1e-5)


def convert_error(nodes: list, inits: dict[str, np.ndarray], name: str, cin: int = 2) -> str:
    path = save(make_onnx(nodes, inits, cin), name)
    with pytest.raises(LicError) as info:
        convert_onnx(path, path.with_suffix(".licm"), name)
    assert not path.with_suffix(".licm").exists()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unsupported_op_names_op_and_node() -> None:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv0"),
             helper.make_node("Sigmoid", ["c"], ["y"], name="attention_gate")]
    message = convert_error(nodes, conv_inits(rng, 3, 2, 3), "sigmoid")
    assert message == "unsupported ONNX op Sigmoid (node 'attention_gate')"


def test_lone_elementwise_op_is_refused() -> None:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("Mul", ["c", "x"], ["y"], name="gate_mul")]
    message = convert_error(nodes, conv_inits(rng, 2, 2, 3), "mul")
    assert message.startswith("unsupported ONNX op Mul (node 'gate_mul'): element-wise")


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"group": 2}, "group=2 is not supported"),
    ({"dilations": [2, 2]}, "dilations [2, 2] are not supported"),
    ({"strides": [2, 2], "auto_pad": "SAME_UPPER"}, "auto_pad=SAME_UPPER depends on the input"),
    ({"pads": [3, 3, 3, 3]}, "must be non-negative and smaller than the kernel"),
])
def test_conv_attributes_the_format_cannot_hold(attrs: dict, expected: str) -> None:
    rng = np.random.default_rng(0)
    cin_w = 1 if attrs.get("group") == 2 else 2
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="bad_conv", **attrs)]
    message = convert_error(nodes, conv_inits(rng, 2, cin_w, 3), "badconv")
    assert message.startswith("Conv node 'bad_conv': ") and expected in message


def test_conv_transpose_output_shape_is_refused() -> None:
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((2, 3, 5, 5)), "b": rng.standard_normal(3)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up",
                              strides=[2, 2], output_shape=[10, 10])]
    assert "output_shape depends on the input size" in convert_error(nodes, inits, "oshape")


def test_channel_mismatch_and_dynamic_weight_are_refused() -> None:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="c")]
    assert "expects 2 input channels, gets 3" in convert_error(
        nodes, conv_inits(rng, 2, 2, 3), "chan", cin=3)
    nodes = [helper.make_node("Conv", ["x", "x"], ["y"], name="c")]
    assert "the weight must be a constant" in convert_error(nodes, {}, "dynw")


def test_missing_and_corrupt_onnx_files(tmp_path) -> None:
    with pytest.raises(LicError, match="ONNX file not found"):
        convert_onnx(tmp_path / "none.onnx", tmp_path / "x.licm", "x")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\x00 not a protobuf" * 10)
    with pytest.raises(LicError, match="is not an ONNX model"):
        convert_onnx(bad, tmp_path / "x.licm", "x")


# ----------------------------------------------------------------------------- CLI

def test_cli_converts_one_onnx_file_like_convert_model(capsys) -> None:
    c = converted("relu")
    out = work_dir("cli") / "g_s.licm"
    assert main(["convert", str(c.gs_onnx), "-o", str(out)]) == 0
    assert out.read_bytes() == c.gs_licm.read_bytes()
    assert "7 nodes" in capsys.readouterr().out
    folder = work_dir("cli-folder")  # -o FOLDER writes FOLDER/g_s.licm
    assert main(["convert", str(c.gs_onnx), "-o", str(folder)]) == 0
    assert (folder / "g_s.licm").read_bytes() == c.gs_licm.read_bytes()


def test_cli_converts_a_state_dict_checkpoint(capsys) -> None:
    from compressai.models import FactorizedPrior

    torch.manual_seed(4)
    net = FactorizedPrior(8, 12).eval()
    path = work_dir("cli-sd") / "checkpoint.pth.tar"
    torch.save({"epoch": 9, "state_dict": net.state_dict()}, path)
    out = work_dir("cli-sd") / "out"
    assert main(["convert", "--model", str(path), "--arch", "bmshj2018-factorized",
                 "--exporter", "torchscript", "-o", str(out)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 2
    assert {p.name for p in out.iterdir()} == {"g_a.onnx", "g_s.onnx", "g_a.licm", "g_s.licm"}
    x = image_of_size("48x32")
    y = torch_hwc(net.g_a, x)
    assert np.abs(run_licm(out / "g_a.licm", x) - y).max() <= 1e-4
    assert np.abs(run_licm(out / "g_s.licm", y) - torch_hwc(net.g_s, y)).max() <= 1e-4


def test_cli_refuses_unsupported_layer_in_one_line(capsys) -> None:
    from compressai.models import FactorizedPriorReLU

    net = FactorizedPriorReLU(8, 12)
    net.g_s.append(nn.PixelShuffle(1))
    path = work_dir("cli") / "pixelshuffle.pth"
    torch.save({"model": net}, path)
    assert main(["convert", "--model", str(path), "-o", str(work_dir("cli") / "ps")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("lic2cpp convert: error: g_s.7 (PixelShuffle) is not supported by the "
                   "lic2cpp runtime")
    with pytest.raises(LicError, match=r"g_s\.7 \(PixelShuffle\)"):
        convert_model(net, work_dir("cli") / "ps2")


def test_cli_needs_exactly_one_source(capsys) -> None:
    assert main(["convert", "-o", "x.licm"]) == 1
    assert "give exactly one of FILE.onnx and --model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["convert", "--help"])
    assert info.value.code == 0
    assert "--model" in capsys.readouterr().out
