"""`lic2cpp fit`: g_a over the training patches, then the entropy model, on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lic2cpp.cli import main
from lic2cpp.entropy import EntropyModel
from lic2cpp.fit import compute_latents, fit_latents, summarise_model


def tiny_model(path: Path, seed: int = 0) -> torch.nn.Module:
    """A random-init FactorizedPriorReLU(8, 16) saved the upstream way ({"model": net}),
    with medians moved off their initial 0 so that they are told apart from other offsets."""
    from compressai.models import FactorizedPriorReLU

    torch.manual_seed(seed)
    net = FactorizedPriorReLU(N=8, M=16).eval()
    with torch.no_grad():
        net.entropy_bottleneck.quantiles[:, 0, 1] = torch.rand(16) - 0.5
    net.update(force=True)
    torch.save({"model": net}, path)
    return net


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path]:
    root = tmp_path_factory.mktemp("fit")
    net = tiny_model(root / "tiny.pth")
    patches = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    np.save(root / "set.npy", patches)
    return net, root / "tiny.pth", root / "set.npy"


def test_latents_match_pytorch_g_a(tiny: tuple[torch.nn.Module, Path, Path]) -> None:
    net, _, set_path = tiny
    patches = np.load(set_path)
    with torch.no_grad():
        x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0
        expected = net.g_a(x).numpy()
    for batch in (1, 4, 8):  # the last batch is partial for 4
        got = compute_latents(net, patches, batch_size=batch, progress=False)
        assert got.dtype == np.float32 and got.shape == (6, 16, 4, 4)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_fit_offsets_are_the_medians_or_the_means(tiny: tuple[torch.nn.Module, Path, Path]
                                                  ) -> None:
    net, _, set_path = tiny
    result = fit_latents(net, set_path, patch_size=64, progress=False)
    medians = net.entropy_bottleneck.quantiles[:, 0, 1].detach().numpy()
    assert np.array_equal(result.entropy_model.offsets, medians)  # the default, exactly
    assert result.offsets == {"mode": "median"}
    # the tables code round(y - median): the most probable symbol of each channel is its
    # most frequent value of that rounding
    q = np.rint(result.latents - medians[None, :, None, None])
    for c, ch in enumerate(result.entropy_model.channels):
        values, counts = np.unique(q[:, c], return_counts=True)
        assert ch.mpv == values[np.argmax(counts)]
    by_mean = fit_latents(net, set_path, patch_size=64, offsets="mean", progress=False)
    per_channel = result.latents.astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(by_mean.entropy_model.offsets, per_channel, atol=1e-5)
    assert np.abs(by_mean.entropy_model.offsets - medians).max() > 0.1
    assert result.summary == {
        "arch": "FactorizedPriorReLU", "N": 8, "M": 16,
        "params": sum(p.numel() for p in net.parameters()),
        "params_g_a": sum(p.numel() for p in net.g_a.parameters()),
        "params_g_s": sum(p.numel() for p in net.g_s.parameters()),
        "downsampling": 16,
    }
    assert summarise_model(net)["params"] > summarise_model(net)["params_g_a"]


def test_fit_cli_writes_a_loadable_model(tiny: tuple[torch.nn.Module, Path, Path],
                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net, model, set_path = tiny
    out = tmp_path / "e.lice"
    rc = main(["fit", "--model", str(model), "--training-set", str(set_path), "-o", str(out),
               "--patch-size", "64", "--max-patches", "4", "--seed", "1", "--offsets", "mean"])
    printed = capsys.readouterr().out
    assert rc == 0 and "fitted on 4 patches" in printed
    assert "quantisation offsets: mean" in printed
    loaded = EntropyModel.load(out)
    assert loaded.num_channels == 16
    # The same subset, computed independently, has the same channel means.
    from lic2cpp.datasets import load_training_set

    sub = load_training_set(set_path, patch_size=64, max_patches=4, seed=1)
    with torch.no_grad():
        y = net.g_a(torch.from_numpy(sub).permute(0, 3, 1, 2).float() / 255.0).numpy()
    np.testing.assert_allclose(loaded.offsets, y.astype(np.float64).mean(axis=(0, 2, 3)),
                               atol=1e-5)
    est = loaded.estimate_bits(y)
    assert f"{est['bits_ctx'] / (4 * 64 * 64):.4f} bpp with contexts" in printed
    assert f"{est['bits_plain'] / (4 * 64 * 64):.4f} bpp with per-channel" in printed


@pytest.mark.parametrize("case", ["missing model", "missing set", "kodak", "bad raw",
                                  "rd without lambda", "lambda without rd", "bad lambda"])
def test_fit_cli_errors_are_one_line(case: str, tiny: tuple[torch.nn.Module, Path, Path],
                                     tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, model, set_path = tiny
    args = {"model": str(model), "set": str(set_path)}
    if case == "missing model":
        args["model"] = str(tmp_path / "none.pth")
    elif case == "missing set":
        args["set"] = str(tmp_path / "none.npy")
    elif case == "kodak":
        (tmp_path / "kodak").mkdir()
        args["set"] = str(tmp_path / "kodak")
    elif case == "bad raw":
        (tmp_path / "set.raw").write_bytes(b"\0" * 1000)
        args["set"] = str(tmp_path / "set.raw")
    extra = {"rd without lambda": ["--offsets", "rd"],  # the tiny checkpoint records no λ
             "lambda without rd": ["--lambda", "0.01"],
             "bad lambda": ["--offsets", "rd", "--lambda", "-1"]}.get(case, [])
    rc = main(["fit", "--model", args["model"], "--training-set", args["set"],
               "-o", str(tmp_path / "e.lice"), "--patch-size", "64", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("lic2cpp fit: error:"), err
    assert not (tmp_path / "e.lice").exists()
