"""`lic2cpp train` mechanics on seconds-long runs: tiny models, small crops of the photos."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PHOTOS
from PIL import Image

from lic2cpp import qat
from lic2cpp.cli import main as cli_main
from lic2cpp.train import TrainConfig, learning_rate, load_checkpoint, train


@pytest.fixture(scope="module")
def small_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six downscaled training photos (never Kodak); the last one is held out."""
    folder = tmp_path_factory.mktemp("photos")
    for src in sorted(PHOTOS.glob("*.png"))[:6]:
        with Image.open(src) as im:
            im.convert("RGB").resize((144, 96), Image.LANCZOS).save(folder / src.name)
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    # Bit-for-bit comparisons need the same reduction order in every run.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(images: Path, out: Path, **kw) -> TrainConfig:
    base = TrainConfig(
        images=str(images), out_dir=str(out), n=8, m=12, patch_size=32, batch_size=4,
        steps=20, lr=2e-3, warmup=2, val_count=1, val_every=10, val_size=64, log_every=5,
        save_every=5, seed=3, settle_steps=300,
    )
    return replace(base, **kw)


def read_log(path: Path, split: str) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split]


def test_loss_decreases(small_images: Path, tmp_path: Path) -> None:
    cfg = tiny_config(small_images, tmp_path, steps=120, log_every=20, val_every=60)
    final = train(cfg, progress=False)
    rows = read_log(tmp_path / "log.csv", "train")
    assert [int(r["step"]) for r in rows] == list(range(20, 121, 20))
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.7 * first, (first, last)
    # PSNR column is the PSNR of the logged MSE
    for r in rows:
        assert float(r["psnr"]) == pytest.approx(-10 * math.log10(float(r["mse"])), abs=1e-6)
    val = read_log(tmp_path / "log.csv", "val")
    assert [int(r["step"]) for r in val] == [60, 120]
    ckpt = torch.load(final, weights_only=False)
    net = ckpt["model"]
    assert not net.training
    # update(force=True) ran: the CDF tables are filled in
    assert net.entropy_bottleneck._quantized_cdf.numel() > 0
    assert "optimizer" not in ckpt
    # the quantiles were settled after training: aux loss well below the last logged one
    assert ckpt["aux_loss"] == pytest.approx(net.aux_loss().item(), rel=1e-5)
    assert ckpt["aux_loss"] < float(rows[-1]["aux_loss"])


def test_settling_moves_only_the_quantiles() -> None:
    from lic2cpp.train import build_model, settle_quantiles

    torch.manual_seed(0)
    net = build_model(8, 12)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start = net.aux_loss().item()
    end = settle_quantiles(net, 200, 5e-2)
    assert end == pytest.approx(net.aux_loss().item())
    assert end < 0.95 * start
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]) != k.endswith("quantiles"), k


def test_resume_is_bit_for_bit(small_images: Path, tmp_path: Path) -> None:
    whole = tiny_config(small_images, tmp_path / "whole", steps=20)
    train(whole, progress=False)
    split = replace(whole, out_dir=str(tmp_path / "split"))
    last = train(split, progress=False, stop_after=10)
    assert load_checkpoint(last)["step"] == 10
    # a second process would start from scratch: scramble the global RNGs to prove the
    # checkpoint restores them
    torch.manual_seed(12345)
    np.random.seed(12345)
    train(split, resume=last, progress=False)

    a = torch.load(tmp_path / "whole" / "last.pth", weights_only=False)
    b = torch.load(tmp_path / "split" / "last.pth", weights_only=False)
    assert a["step"] == b["step"] == 20
    sa, sb = a["model"].state_dict(), b["model"].state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for sa_, sb_ in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                        strict=True):
        assert torch.equal(sa_["exp_avg"], sb_["exp_avg"])
        assert torch.equal(sa_["exp_avg_sq"], sb_["exp_avg_sq"])
    la = read_log(tmp_path / "whole" / "log.csv", "train")
    lb = read_log(tmp_path / "split" / "log.csv", "train")
    assert [(r["step"], r["loss"], r["bpp"]) for r in la] == [
        (r["step"], r["loss"], r["bpp"]) for r in lb
    ]


def test_resume_drops_log_rows_after_the_checkpoint(small_images: Path, tmp_path: Path) -> None:
    cfg = tiny_config(small_images, tmp_path, steps=20, save_every=10)
    train(cfg, progress=False, stop_after=10)
    # simulate a crash after step 15: a log row newer than the checkpoint
    with (tmp_path / "log.csv").open("a") as f:
        f.write("15,train,0,0,9,9,9,9,9\n")
    train(cfg, resume=tmp_path / "last.pth", progress=False)
    steps = [int(r["step"]) for r in read_log(tmp_path / "log.csv", "train")]
    assert steps == [5, 10, 15, 20]


def test_int16_checkpoint_is_on_the_grid(small_images: Path, tmp_path: Path) -> None:
    cfg = tiny_config(small_images, tmp_path, steps=15, int16=True)
    ckpt = torch.load(train(cfg, progress=False), weights_only=False)
    net = ckpt["model"]
    names = [n for n, _ in net.g_s.named_parameters()]
    assert len(ckpt["quant_layer"]) == len(names) == 8
    assert qat.check_int16(net, ckpt["quant_layer"]) == []
    for (_, p), s in zip(net.g_s.named_parameters(), ckpt["quant_layer"], strict=True):
        q = p.detach().double() * 2.0**s
        assert torch.equal(q, q.round())
        assert q.abs().max() <= 32767
        # the shift is the finest that fits: one more bit would overflow int16
        assert q.abs().max() * 2 > 32767 or s == qat.MAX_SHIFT
    # activations: a held-out crop through the fake-quantized decoder stays on the grid
    eb = net.entropy_bottleneck
    assert torch.equal(ckpt["cdf"], eb._quantized_cdf)
    assert torch.equal(ckpt["cdflen"], eb._cdf_length)
    assert torch.equal(ckpt["cdfoff"], eb._offset)
    assert len(ckpt["quant_act"]) == 5


def test_int16_activations_within_range(small_images: Path) -> None:
    torch.manual_seed(0)
    from lic2cpp.train import build_model

    net = build_model(8, 12).train()
    ctl = qat.QatController(net)
    y = torch.randn(2, 12, 4, 4) * 20
    out = ctl.synthesize(y)
    assert out.shape == (2, 3, 64, 64)
    for r, s in zip(ctl.ranges, ctl.act_shifts(), strict=True):
        assert r * 2.0**s <= 32767 < r * 2.0 ** (s + 1) or s == qat.MAX_SHIFT
    # each intermediate on its grid: recompute the decoder by hand from the shifts
    shifts = ctl.act_shifts()
    x = torch.clamp(torch.round(y * 2.0 ** shifts[0]), -32768, 32767) / 2.0 ** shifts[0]
    k = 0
    for layer in net.g_s:
        layer.requires_grad_(False)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            w = qat.fake_quant(layer.weight, qat.shift_for(float(layer.weight.abs().max())))
            b = qat.fake_quant(layer.bias, qat.shift_for(float(layer.bias.abs().max())))
            x = torch.nn.functional.conv_transpose2d(x, w, b, 2, 2, 1)
            k += 1
            x = torch.clamp(torch.round(x * 2.0 ** shifts[k]), -32768, 32767) / 2.0 ** shifts[k]
        else:
            x = torch.relu(x)
    assert torch.allclose(out, x, atol=0, rtol=0)


def test_fake_quant_values_and_straight_through_gradient() -> None:
    assert qat.shift_for(1.0) == 14  # 1.0 * 2^14 = 16384 fits, 2^15 = 32768 does not
    assert qat.shift_for(0.5) == 15
    assert qat.shift_for(3.0) == 13  # 3 * 8192 = 24576
    assert qat.shift_for(40000.0) == -1
    x = torch.tensor([0.30, -1.0, 5.0, 1e-6], requires_grad=True)
    y = qat.fake_quant(x, 2)  # grid of 0.25, int16 range +-8192
    assert y.tolist() == [0.25, -1.0, 5.0, 0.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert qat.fake_quant(torch.tensor([1e5]), 0).item() == 32767
    assert qat.snap(torch.tensor([1e9, -1e9]), 0).tolist() == [32767, -32768]


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(images="", out_dir="", steps=1000, lr=1e-3, lr_min=1e-5, warmup=100)
    assert learning_rate(cfg, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 99) == pytest.approx(1e-3)
    assert learning_rate(cfg, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 550) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cfg, 1000) == pytest.approx(1e-5)
    step = replace(cfg, lr_schedule="step")
    assert learning_rate(step, 500) == 1e-3
    assert learning_rate(step, 800) == pytest.approx(2e-4)
    assert learning_rate(step, 950) == pytest.approx(4e-5)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "--images", str(tmp_path / "missing"), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err
    (tmp_path / "empty").mkdir()
    assert cli_main(["train", "--images", str(tmp_path / "empty")]) == 1
    assert "no images" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "nope.pth")]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["train", "--resume", str(bad)]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert cli_main(["train", "--images", str(PHOTOS), "--patch-size", "100"]) == 1
    assert "multiple of 16" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "--help"])
    assert exc.value.code == 0
    assert "--int16" in capsys.readouterr().out


def test_trained_int16_checkpoint_converts_and_runs_like_pytorch(
    small_images: Path, tmp_path: Path
) -> None:
    """A checkpoint of `lic2cpp train --int16` goes through lic2cpp's loader, ONNX export and
    conversion; the C++ runtime's outputs match PyTorch's transforms."""
    from lic2cpp.convert import convert_model
    from lic2cpp.load import load_model
    from lic2cpp.runtime import run_licm

    cfg = tiny_config(small_images, tmp_path / "run", steps=10, int16=True)
    net = load_model(train(cfg, progress=False))
    ga, gs = convert_model(net, tmp_path / "licm")
    rgb = np.asarray(Image.open(small_images / "001.png").convert("RGB"))[:64, :96]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = net.g_a(x)
        y_hat = torch.round(y)
        x_hat = net.g_s(y_hat)

    def hwc(t: torch.Tensor) -> np.ndarray:
        return t[0].permute(1, 2, 0).numpy()

    y_cpp = run_licm(ga, hwc(x))
    assert y_cpp.shape == hwc(y).shape
    np.testing.assert_allclose(y_cpp, hwc(y), rtol=0, atol=1e-4 * float(y.abs().max()) + 1e-5)
    x_cpp = run_licm(gs, hwc(y_hat))
    assert x_cpp.shape == (64, 96, 3)
    np.testing.assert_allclose(x_cpp, hwc(x_hat), rtol=0,
                               atol=1e-4 * float(x_hat.abs().max()) + 1e-5)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gdn"])
def test_model_variants_run_and_pass_the_layer_check(activation: str) -> None:
    from lic2cpp.load import check_supported
    from lic2cpp.train import build_model

    torch.manual_seed(0)
    net = build_model(8, 12, activation)
    out = net(torch.rand(1, 3, 32, 48))
    assert out["x_hat"].shape == (1, 3, 32, 48)
    assert out["likelihoods"]["y"].shape == (1, 12, 2, 3)
    check_supported(net)  # raises on a layer the converter does not take
    decoder_act = {"relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU, "gdn": torch.nn.ReLU}
    assert any(isinstance(m, decoder_act[activation]) for m in net.g_s)
    if activation != "gdn":  # the int16 decoder forward covers both decoder activations
        ctl = qat.QatController(net.train())
        assert ctl.forward(torch.rand(1, 3, 32, 32))["x_hat"].shape == (1, 3, 32, 32)


def test_unknown_activation_is_a_clear_error() -> None:
    from lic2cpp.errors import LicError
    from lic2cpp.train import build_model

    with pytest.raises(LicError, match="unknown activation"):
        build_model(8, 12, "swish")


def test_init_starts_from_the_given_model(small_images: Path, tmp_path: Path) -> None:
    first = train(tiny_config(small_images, tmp_path / "a", steps=10), progress=False)
    cfg = tiny_config(small_images, tmp_path / "b", steps=1, lr=1e-12, warmup=1, int16=True,
                      init=str(first), n=99, m=99)  # --N/--M ignored: the model's are used
    ckpt = torch.load(train(cfg, progress=False), weights_only=False)
    start = torch.load(first, weights_only=False)["model"].state_dict()
    after = ckpt["model"].state_dict()
    for k, v in start.items():
        if k.startswith(("g_a.", "g_s.")):  # g_s additionally snapped onto the int16 grid
            assert torch.allclose(after[k], v, rtol=0, atol=2.0 ** -10), k
    assert qat.check_int16(ckpt["model"], ckpt["quant_layer"]) == []


def test_init_refuses_a_missing_model(small_images: Path, tmp_path: Path) -> None:
    from lic2cpp.errors import LicError

    cfg = tiny_config(small_images, tmp_path, init=str(tmp_path / "nope.pth"))
    with pytest.raises(LicError):
        train(cfg, progress=False)


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_hyperprior_architectures_train_and_load(small_images: Path, tmp_path: Path,
                                                 arch: str) -> None:
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior

    from lic2cpp.load import load_model, model_transforms

    cfg = tiny_config(small_images, tmp_path, arch=arch, patch_size=64, steps=30,
                      val_every=15, val_size=96, settle_steps=50)
    final = train(cfg, progress=False)
    rows = read_log(tmp_path / "log.csv", "train")
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    net = load_model(final)
    want = ScaleHyperprior if arch == "bmshj2018-hyperprior" else MeanScaleHyperprior
    assert type(net) is want and (net.N, net.M) == (8, 12)
    assert model_transforms(net) == ("g_a", "g_s", "h_a", "h_s")
    # update(force=True) built both entropy models' tables
    assert net.entropy_bottleneck._quantized_cdf.numel() > 0
    assert net.gaussian_conditional._quantized_cdf.shape[0] == 64
    val = read_log(tmp_path / "log.csv", "val")
    assert val and all(math.isfinite(float(r["psnr"])) for r in val)


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "mbt2018-mean", "--patch-size", "96"], "multiple of 64"),
    (["--arch", "bmshj2018-hyperprior", "--int16"], "--int16 training is for factorized"),
])
def test_hyperprior_config_errors(small_images: Path, tmp_path: Path, args: list[str],
                                  message: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["train", "--images", str(small_images), "-o", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and message in err, err
