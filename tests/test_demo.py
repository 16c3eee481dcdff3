"""The shipped default model and `lic2cpp demo`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lic2cpp import demo
from lic2cpp.assets import default_entropy_path, default_model_path
from lic2cpp.cli import main as cli_main
from lic2cpp.entropy import EntropyModel
from lic2cpp.errors import LicError
from lic2cpp.images import psnr, read_rgb
from lic2cpp.load import load_model


def test_generated_images_are_deterministic_and_varied(tmp_path: Path) -> None:
    a, b = demo.generated_image(1), demo.generated_image(1)
    assert a.dtype == np.uint8 and a.shape == (192, 256, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, demo.generated_image(2))
    assert a.std() > 20  # not a flat picture
    paths = demo.write_generated_images(tmp_path, 2)
    assert [p.name for p in paths] == ["generated-1.png", "generated-2.png"]
    assert np.array_equal(read_rgb(paths[0]), a)


def test_demo_round_trip_matches_pytorch(tmp_path: Path) -> None:
    """The demo's codec (shipped tables, no photos needed) on generated images: the decoded
    PSNR is PyTorch's on the model's own de-quantised latent round(y - median) + median
    (the shipped tables' offsets are the medians), the size is the tables' ideal code
    length plus a small header."""
    images = tmp_path / "images"
    demo.write_generated_images(images, 2)
    results = demo.demo(tmp_path / "out", images_dir=images, count=2, training_set=None,
                        log=lambda s: None)
    assert [r.name for r in results] == ["generated-1.png", "generated-2.png"]
    assert (tmp_path / "out" / "encoder").is_file() and (tmp_path / "out" / "decoder").is_file()

    net = load_model(default_model_path())
    tables = EntropyModel.load(default_entropy_path())
    medians = net.entropy_bottleneck.quantiles[:, 0, 1].detach()
    assert np.array_equal(tables.offsets, medians.numpy())
    mean = medians[None, :, None, None]
    for r in results:
        rgb = read_rgb(images / r.name)
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            y = net.g_a(x)
            x_hat = net.g_s(torch.round(y - mean) + mean)
        ref = (x_hat.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        assert r.psnr == pytest.approx(psnr(rgb, ref), abs=0.02)
        ideal_bits = tables.estimate_bits(y.numpy())["bits_ctx"]
        assert ideal_bits / 8 <= r.bytes <= ideal_bits / 8 * 1.01 + 64
        assert r.bpp == pytest.approx(r.bytes * 8 / (r.width * r.height))


def test_demo_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo", "--count", "0"]) == 1
    assert "--count" in capsys.readouterr().err
    with pytest.raises(LicError, match="not a folder"):
        demo.pick_images(tmp_path / "missing", 2, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LicError, match="no images"):
        demo.pick_images(tmp_path / "empty", 2, tmp_path)
    bad = tmp_path / "empty" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(LicError, match="cannot read image"):
        read_rgb(bad)
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", "--help"])
    assert exc.value.code == 0
    assert "--images" in capsys.readouterr().out


def test_demo_writes_outside_the_checkout_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without -o the output goes to demo/ in the lic2cpp cache (printed), not to the
    working folder (the build itself is stood in for: test_demo_round_trip covers it)."""
    monkeypatch.setenv("LIC2CPP_CACHE", str(tmp_path / "cache"))
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    calls: list[Path] = []

    def fake_demo(out_dir: Path, *args: object, **kwargs: object) -> list[demo.RoundTrip]:
        calls.append(out_dir)
        return []

    monkeypatch.setattr(demo, "demo", fake_demo)
    assert cli_main(["demo", "--shipped-tables"]) == 0
    assert calls == [tmp_path / "cache" / "demo"] == [demo.default_output_dir()]
    assert f"output folder: {tmp_path / 'cache' / 'demo'}" in capsys.readouterr().out
    assert list(cwd.iterdir()) == []
    assert cli_main(["demo", "--shipped-tables", "-o", "here"]) == 0
    assert calls[-1] == Path("here")


def test_demo_int16_uses_the_trained_quantizers(tmp_path: Path) -> None:
    """`lic2cpp demo --int16`: the shipped model's own quantizers (no calibration), and the
    int16 decoder lands within a few hundredths of a dB of PyTorch's float g_s."""
    import json

    images = tmp_path / "images"
    demo.write_generated_images(images, 1)
    results = demo.demo(tmp_path / "out", images_dir=images, count=1, training_set=None,
                        log=lambda s: None, int16=True)
    info = json.loads((tmp_path / "out" / "int16.json").read_text())
    assert info["mode"] == "decoder" and info["g_s"]["source"].startswith("trained")
    net = load_model(default_model_path())
    tables = EntropyModel.load(default_entropy_path())
    mean = torch.from_numpy(tables.offsets)[None, :, None, None]
    rgb = read_rgb(images / results[0].name)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        x_hat = net.g_s(torch.round(net.g_a(x) - mean) + mean)
    ref = (x_hat.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert abs(results[0].psnr - psnr(rgb, ref)) < 0.05
