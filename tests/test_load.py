"""Checkpoint loading (pickled models, state_dicts with --arch) and the supported-layer
check, including every one-line refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import GDN_CKPT, RELU_CKPT
from torch import nn

from lic2cpp.cli import main
from lic2cpp.errors import LicError
from lic2cpp.load import check_supported, known_archs, load_model

CDF_KEYS = ("entropy_bottleneck._quantized_cdf", "entropy_bottleneck._offset",
            "entropy_bottleneck._cdf_length")


def small(arch: str = "bmshj2018-factorized", n: int = 8, m: int = 12) -> nn.Module:
    from compressai.models import FactorizedPrior, FactorizedPriorReLU

    torch.manual_seed(0)
    cls = FactorizedPrior if arch == "bmshj2018-factorized" else FactorizedPriorReLU
    net = cls(n, m).eval()
    net.update(force=True)
    return net


def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        return bool(torch.equal(a.g_a(x), b.g_a(x))
                    and torch.equal(a.g_s(a.g_a(x)), b.g_s(a.g_a(x))))


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def load_error(path: Path, arch: str | None = None) -> str:
    with pytest.raises(LicError) as info:
        load_model(path, arch)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------- accepted inputs

@pytest.mark.parametrize(("ckpt", "cls_name"), [(RELU_CKPT, "FactorizedPriorReLU"),
                                                 (GDN_CKPT, "FactorizedPrior")])
def test_pickled_fixture_checkpoints(ckpt: Path, cls_name: str, request) -> None:
    net = load_model(ckpt)
    assert type(net).__name__ == cls_name and not net.training
    # conftest's fixtures load with plain torch.load(...)["model"]
    reference = request.getfixturevalue("relu_net" if ckpt == RELU_CKPT else "gdn_net")
    assert same_state(net, reference)
    assert same_outputs(net, reference)
    assert net.entropy_bottleneck._quantized_cdf.numel() > 0


def test_bare_pickled_module(tmp_path: Path) -> None:
    net = small()
    loaded = load_model(save(net, tmp_path / "net.pth"))
    assert same_state(loaded, net)


@pytest.mark.parametrize(("arch", "wrap"), [
    ("bmshj2018-factorized", "training"), ("bmshj2018-factorized", "dataparallel"),
    ("bmshj2018-factorized-relu", "bare"), ("bmshj2018_factorized_relu", "dataparallel")])
def test_state_dict_with_arch_infers_n_and_m(tmp_path: Path, arch: str, wrap: str) -> None:
    net = small(arch.replace("_", "-"), n=16, m=24)
    sd = net.state_dict()
    if wrap == "dataparallel":
        sd = {f"module.{k}": v for k, v in sd.items()}
    obj = sd if wrap == "bare" else {"epoch": 3, "state_dict": sd, "loss": 1.0}
    loaded = load_model(save(obj, tmp_path / "sd.pth.tar"), arch)
    assert type(loaded) is type(net) and (loaded.N, loaded.M) == (16, 24)
    assert same_state(loaded, net) and same_outputs(loaded, net)


def test_state_dict_without_cdf_tables_rebuilds_them(tmp_path: Path) -> None:
    """A state_dict saved before update(): the tables are rebuilt from the learned
    quantiles and equal the ones the trained fixture stores."""
    reference = torch.load(GDN_CKPT, weights_only=False)["model"]
    sd = {k: v for k, v in reference.state_dict().items() if k not in CDF_KEYS}
    loaded = load_model(save(sd, tmp_path / "sd.pth"), "bmshj2018-factorized")
    for key in CDF_KEYS:
        assert torch.equal(loaded.state_dict()[key], reference.state_dict()[key])


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_hyperprior_state_dicts_load_with_their_arch(tmp_path: Path, arch: str) -> None:
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior

    from lic2cpp.load import model_transforms

    torch.manual_seed(1)
    cls = ScaleHyperprior if arch == "bmshj2018-hyperprior" else MeanScaleHyperprior
    net = cls(16, 24).eval()
    net.update(force=True)
    loaded = load_model(save({"state_dict": net.state_dict()}, tmp_path / "sd.pth"), arch)
    assert type(loaded) is cls and (loaded.N, loaded.M) == (16, 24)
    assert same_state(loaded, net) and same_outputs(loaded, net)
    assert model_transforms(loaded) == ("g_a", "g_s", "h_a", "h_s")
    # the Gaussian conditional's tables come back as saved
    gc, ref = loaded.gaussian_conditional, net.gaussian_conditional
    assert torch.equal(gc._quantized_cdf, ref._quantized_cdf)
    assert torch.equal(gc.scale_table, ref.scale_table)


def test_other_registry_architecture_loads_then_layer_check(tmp_path: Path) -> None:
    from compressai.models import Cheng2020Anchor, ScaleHyperprior

    torch.manual_seed(0)
    hyper = ScaleHyperprior(16, 24).eval()
    hyper.update(force=True)
    loaded = load_model(save(hyper.state_dict(), tmp_path / "h.pth"), "bmshj2018-hyperprior")
    assert same_state(loaded, hyper)
    cheng = Cheng2020Anchor(16)
    message = load_error(save(cheng.state_dict(), tmp_path / "c.pth"), "cheng2020-anchor")
    assert message.startswith("g_s.1 (ResidualBlockUpsample) is not supported")


# ----------------------------------------------------------------------- refusals

def test_missing_file_and_not_a_checkpoint(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope.pth") == f"checkpoint not found: {tmp_path / 'nope.pth'}"
    assert load_error(tmp_path) == f"checkpoint is not a file: {tmp_path}"
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    assert load_error(text).startswith(f"{text} is not a PyTorch checkpoint")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert load_error(empty).startswith(f"{empty} is not a PyTorch checkpoint")
    junk = save({"epoch": 3, "notes": "x"}, tmp_path / "junk.pth")
    assert load_error(junk) == f"{junk} holds neither a model nor a state_dict (found dict)"


def test_state_dict_needs_a_known_arch(tmp_path: Path) -> None:
    path = save(small().state_dict(), tmp_path / "sd.pth")
    message = load_error(path)
    assert message.startswith(f"{path} holds a state_dict: give the architecture with --arch")
    assert "bmshj2018-factorized-relu" in message
    message = load_error(path, "bmshj2099")
    assert message == f"unknown architecture 'bmshj2099' (known: {', '.join(known_archs())})"
    assert {"bmshj2018-factorized", "bmshj2018-factorized-relu"} <= set(known_archs())


def test_wrong_arch_shape_mismatch_and_missing_transforms(tmp_path: Path) -> None:
    sd = small().state_dict()
    path = save(sd, tmp_path / "gdn.pth")
    assert "which bmshj2018-factorized-relu(N=8, M=12) does not have" in load_error(
        path, "bmshj2018-factorized-relu")
    bad = dict(sd)
    bad["g_s.2.weight"] = torch.zeros(8, 8, 3, 3)
    assert load_error(save(bad, tmp_path / "bad.pth"), "bmshj2018-factorized") == (
        "shape mismatch for 'g_s.2.weight': checkpoint has (8, 8, 3, 3), "
        "bmshj2018-factorized(N=8, M=12) expects (8, 8, 5, 5)")
    no_gs = {k: v for k, v in sd.items() if not k.startswith("g_s.")}
    assert load_error(save(no_gs, tmp_path / "nogs.pth"), "bmshj2018-factorized") == \
        "checkpoint has no g_s weights"
    no_layer = {k: v for k, v in sd.items() if not k.startswith("g_a.6.")}
    assert "lacks 'g_a.6.weight'" in load_error(save(no_layer, tmp_path / "nol.pth"),
                                                "bmshj2018-factorized")
    assert "not a bmshj2018-factorized-relu" in load_error(
        save({"model": small()}, tmp_path / "m.pth"), "bmshj2018-factorized-relu")


def test_pickled_module_without_transforms(tmp_path: Path) -> None:
    path = save({"model": nn.Sequential(nn.Conv2d(3, 3, 3))}, tmp_path / "seq.pth")
    assert load_error(path) == "model Sequential has no g_a transform"


@pytest.mark.parametrize(("transform", "index", "layer", "expected"), [
    ("g_s", 3, nn.PixelShuffle(2), "g_s.3 (PixelShuffle) is not supported by the lic2cpp "
                                   "runtime"),
    ("g_s", 6, nn.Sigmoid(), "g_s.6 (Sigmoid) is not supported by the lic2cpp runtime"),
    ("g_a", 1, None, "g_a.1 (GDN1) is not supported by the lic2cpp runtime"),
    ("g_a", 2, nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=2),
     "g_a.2 (Conv2d) has groups=2 (only 1 is supported)"),
    ("g_a", 0, nn.Conv2d(3, 8, 5, stride=2, padding=2, padding_mode="reflect"),
     "g_a.0 (Conv2d) has padding_mode='reflect' (only zero padding is supported)"),
    ("g_s", 0, nn.Sequential(nn.ConvTranspose2d(12, 8, 5, 2, 2, 1), nn.Tanh()),
     "g_s.0.1 (Tanh) is not supported by the lic2cpp runtime"),
])
def test_unsupported_layers_are_named(tmp_path: Path, transform: str, index: int,
                                      layer: nn.Module | None, expected: str) -> None:
    from compressai.layers import GDN1

    net = small()
    getattr(net, transform)[index] = GDN1(8) if layer is None else layer
    with pytest.raises(LicError) as info:
        check_supported(net)
    assert str(info.value) == expected
    assert load_error(save({"model": net}, tmp_path / "u.pth")) == expected


def test_supported_layers_pass() -> None:
    from compressai.layers import GDN, ResidualBlock, ResidualBlockWithStride

    net = small()
    net.g_a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), ResidualBlock(8, 8),
                            ResidualBlockWithStride(8, 12), nn.LeakyReLU(), GDN(12),
                            nn.Identity())
    check_supported(net)  # raises on failure


def test_cli_prints_one_line(tmp_path: Path, capsys) -> None:
    assert main(["export", "--model", str(tmp_path / "none.pth"), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"lic2cpp export: error: checkpoint not found: {tmp_path / 'none.pth'}\n"


# ----------------------------------------------------------------------- --weights-only

class Payload:
    """A pickle that runs code when loaded (here: creates a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_weights_only_loads_state_dicts(tmp_path: Path) -> None:
    net = small("bmshj2018-factorized-relu")
    for obj in (net.state_dict(), {"epoch": 3, "state_dict": net.state_dict(), "loss": 1.0}):
        path = save(obj, tmp_path / "sd.pth")
        loaded = load_model(path, "bmshj2018-factorized-relu", weights_only=True)
        assert same_state(loaded, net) and same_outputs(loaded, net)


def test_weights_only_refuses_pickled_models_without_running_them(tmp_path: Path) -> None:
    path = save({"model": small()}, tmp_path / "m.pth")
    message = str(pytest.raises(LicError, load_model, path, weights_only=True).value)
    assert message == (
        f"{path} holds pickled Python objects (compressai.models.google.FactorizedPrior), "
        "refused by --weights-only: unpickling them can run arbitrary code; save "
        "net.state_dict() and load that with --arch, or drop --weights-only if you trust "
        "the file")
    marker = tmp_path / "ran"
    evil = save({"state_dict": small().state_dict(), "x": Payload(marker)}, tmp_path / "e.pth")
    message = str(pytest.raises(LicError, load_model, evil, "bmshj2018-factorized",
                                weights_only=True).value)
    assert "holds pickled Python objects (getattr)" in message and "\n" not in message
    assert not marker.exists()
    # without --weights-only the same file does run its code: what the flag is for
    load_model(evil, "bmshj2018-factorized")
    assert marker.exists()


@pytest.mark.parametrize("command", ["export", "convert", "fit", "build", "eval"])
def test_every_model_command_has_weights_only(command: str, tmp_path: Path, capsys) -> None:
    path = save({"model": small()}, tmp_path / "m.pth")
    out = tmp_path / "out"
    args = {"export": ["export", "--model", path, "-o", out],
            "convert": ["convert", "--model", path, "-o", out],
            "fit": ["fit", "--model", path, "--training-set", tmp_path, "-o", out / "e.lice"],
            "build": ["build", "--model", path, "--entropy", path, "-o", out],
            "eval": ["eval", out, "--images", tmp_path, "--model", path]}[command]
    if command == "fit":
        np_path = tmp_path / "train.npy"
        import numpy as np

        np.save(np_path, np.zeros((1, 256, 256, 3), dtype=np.uint8))
        args[4] = np_path
    if command == "build":
        from lic2cpp.demo import default_entropy_path

        args[4] = default_entropy_path()
    if command == "eval":
        from lic2cpp.evaluate import codec_paths

        out.mkdir()
        for exe in ("encoder", "decoder"):
            (out / exe).write_text("")
            (out / exe).chmod(0o755)
        (tmp_path / "a.png").write_bytes(b"")
        codec_paths(out)
    assert main([command, *map(str, args[1:]), "--weights-only"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lic2cpp {command}: error: {path} holds pickled Python objects"), err
    assert err.count("\n") == 1


@pytest.mark.parametrize(("change", "expected"), [
    (("g_a.0.weight", torch.tensor(1.0)),
     "'g_a.0.weight' has shape (), expected a 4-d convolution weight"),
    (("g_a.0.weight", torch.zeros(0, 3, 5, 5)),
     "'g_a.2.weight' and 'g_a.6.weight' disagree with N = 0 read off 'g_a.0.weight'"),
    (("g_a.6.weight", torch.zeros(100000, 8, 1, 1)),
     "'g_a.2.weight' and 'g_a.6.weight' disagree with N = 8 read off 'g_a.0.weight'"),
    (("g_s.0.weight", torch.zeros(12, 8, 5, 5, dtype=torch.int64)),
     "'g_s.0.weight' has dtype torch.int64, bmshj2018-factorized-relu(N=8, M=12) expects "
     "torch.float32"),
    (("g_s.0.weight", torch.zeros(12, 8, 5, 5, dtype=torch.complex64)),
     "'g_s.0.weight' has dtype torch.complex64, bmshj2018-factorized-relu(N=8, M=12) "
     "expects torch.float32"),
    (("entropy_bottleneck.quantiles", torch.full((12, 1, 3), float("nan"))),
     "'entropy_bottleneck.quantiles' holds non-finite values (NaN or infinity)"),
])
def test_malformed_state_dicts(tmp_path: Path, change: tuple, expected: str) -> None:
    """Found by tests/test_untrusted_parsers.py-style mutations: each used to escape as an
    IndexError, a warning on stderr, or a model built far larger than the file."""
    sd = small("bmshj2018-factorized-relu").state_dict()
    sd[change[0]] = change[1]
    path = save(sd, tmp_path / "sd.pth")
    for weights_only in (False, True):
        with pytest.raises(LicError) as info:
            load_model(path, "bmshj2018-factorized-relu", weights_only=weights_only)
        assert str(info.value) == expected


def test_non_finite_weights_of_a_pickled_model(tmp_path: Path) -> None:
    net = small()
    with torch.no_grad():
        net.g_s[0].weight[0, 0, 0, 0] = float("inf")
    assert load_error(save({"model": net}, tmp_path / "m.pth")) == \
        "'g_s.0.weight' holds non-finite values (NaN or infinity)"
