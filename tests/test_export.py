"""ONNX export: clean graphs with dynamic height/width that ONNX Runtime runs with
PyTorch's numbers, GDN replaced by its effective parameters, refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from test_convert_models import MODELS, converted, image_of_size, torch_hwc, work_dir
from torch import nn

from lic2cpp.cli import main
from lic2cpp.errors import LicError
from lic2cpp.export import EffectiveGDN, export_copy, export_onnx


def ort_hwc(path, x_hwc: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x_hwc.transpose(2, 0, 1)[None])
    return sess.run(["output"], {"input": x})[0][0].transpose(1, 2, 0)


@pytest.mark.parametrize("key", list(MODELS))
def test_onnx_graph_is_clean_and_dynamic(key: str) -> None:
    c = converted(key)
    for path, channels in ((c.ga_onnx, 3), (c.gs_onnx, 192)):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        (inp,) = model.graph.input
        dims = inp.type.tensor_type.shape.dim
        assert inp.name == "input" and model.graph.output[0].name == "output"
        assert [d.dim_value for d in dims[:2]] == [1, channels]
        assert dims[2].dim_param and dims[3].dim_param  # symbolic height and width
        ops = {n.op_type for n in model.graph.node}
        allowed = {"Conv", "ConvTranspose", "Relu", "Identity", "Constant"}
        if "gdn" in key:
            allowed |= {"Mul", "Sqrt", "Div"}
        assert ops <= allowed, ops - allowed


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("size", ["16x16", "61x35"])
def test_onnxruntime_matches_pytorch(key: str, size: str) -> None:
    c = converted(key)
    x = image_of_size(size)
    y_ref = torch_hwc(c.net.g_a, x)
    y = ort_hwc(c.ga_onnx, x)
    assert y.shape == y_ref.shape
    assert np.abs(y - y_ref).max() <= 1e-4
    y_hat = np.round(y_ref)
    x_ref = torch_hwc(c.net.g_s, y_hat)
    x_hat = ort_hwc(c.gs_onnx, y_hat)
    assert x_hat.shape == x_ref.shape
    assert np.abs(x_hat - x_ref).max() <= 1e-5


@pytest.mark.parametrize("inverse", [False, True])
def test_effective_gdn_equals_compressai_gdn(inverse: bool) -> None:
    from compressai.layers import GDN

    torch.manual_seed(1)
    gdn = GDN(16, inverse=inverse)
    with torch.no_grad():  # move off the identity-like init; some gammas hit the bound
        gdn.gamma.add_(0.1 * torch.randn_like(gdn.gamma))
        gdn.beta.add_(0.5 * torch.rand_like(gdn.beta))
    seq = nn.Sequential(gdn)
    clone = export_copy(seq)
    assert isinstance(clone[0], EffectiveGDN) and type(seq[0]) is GDN  # original untouched
    assert clone[0].inverse == inverse
    assert torch.all(clone[0].gamma >= 0) and torch.all(clone[0].beta > 0)
    x = torch.randn(1, 16, 7, 9) * 3
    with torch.no_grad():
        torch.testing.assert_close(clone(x), seq(x), rtol=1e-6, atol=1e-6)


def test_export_refuses_unsupported_layer_naming_it() -> None:
    from compressai.models import FactorizedPrior

    net = FactorizedPrior(8, 12)
    net.g_a[3] = nn.Sigmoid()
    with pytest.raises(LicError, match=r"^g_a\.3 \(Sigmoid\) is not supported"):
        export_onnx(net, work_dir("export-refused"))
    assert not (work_dir("export-refused") / "g_a.onnx").exists()


def test_export_rejects_unknown_exporter() -> None:
    from compressai.models import FactorizedPriorReLU

    with pytest.raises(LicError, match="unknown exporter 'jit'"):
        export_onnx(FactorizedPriorReLU(8, 12), work_dir("export-x"), exporter="jit")


def test_cli_export(capsys) -> None:
    from compressai.models import FactorizedPrior

    torch.manual_seed(0)
    net = FactorizedPrior(8, 12).eval()
    path = work_dir("cli-export") / "sd.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, path)
    out = work_dir("cli-export") / "out"
    assert main(["export", "--model", str(path), "--arch", "bmshj2018-factorized",
                 "--exporter", "torchscript", "-o", str(out)]) == 0
    x = image_of_size("32x48")
    np.testing.assert_allclose(ort_hwc(out / "g_a.onnx", x), torch_hwc(net.g_a, x),
                               rtol=0, atol=1e-5)
    assert "g_s.onnx" in capsys.readouterr().out
    assert main(["export", "--model", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lic2cpp export: error: ") and "--arch" in err
    assert len(err.splitlines()) == 1
    not_a_folder = out / "g_a.onnx"
    assert main(["export", "--model", str(path), "--arch", "bmshj2018-factorized",
                 "-o", str(not_a_folder)]) == 1
    assert capsys.readouterr().err == (f"lic2cpp export: error: output folder {not_a_folder} "
                                       "exists and is not a folder\n")
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0
