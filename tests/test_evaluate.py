"""`lic2cpp eval`: metrics against independent computations, the CompressAI side, outputs,
and the command line's errors. The end-to-end run of the built executables is in
tests/test_build.py (it shares that build)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lic2cpp.cli import main
from lic2cpp.evaluate import (
    CODEC_LIC,
    CODEC_TORCH,
    ImageResult,
    averages,
    eval_compressai,
    format_table,
    ms_ssim,
    plot_rd,
    write_csv,
)
from lic2cpp.images import psnr


def rand_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_ms_ssim_matches_pytorch_msssim() -> None:
    from pytorch_msssim import ms_ssim as reference

    a = rand_image(192, 170, seed=1)
    noise = np.random.default_rng(2).integers(-12, 13, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    ta = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)
    tb = torch.tensor(b, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)
    expected = float(reference(ta, tb, data_range=255.0))
    assert ms_ssim(a, b) == pytest.approx(expected, abs=1e-6)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(ms_ssim(a[:160], b[:160]))  # too small for five scales


def test_compressai_side_against_direct_calls() -> None:
    from compressai.models import FactorizedPriorReLU

    torch.manual_seed(0)
    net = FactorizedPriorReLU(N=8, M=16).eval()
    net.update(force=True)
    img = rand_image(70, 90, seed=3)  # not a multiple of 64: padded and cropped back
    result, decoded = eval_compressai(net, Path("x.png"), img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    padded = torch.zeros(1, 3, 128, 128)
    top, left = (128 - 70) // 2, (128 - 90) // 2  # CompressAI centres the image
    padded[:, :, top:top + 70, left:left + 90] = x
    with torch.no_grad():
        enc = net.compress(padded)
        x_hat = net.decompress(enc["strings"], enc["shape"])["x_hat"]
    nbytes = len(enc["strings"][0][0])
    want = (x_hat[0, :, top:top + 70, left:left + 90].permute(1, 2, 0).numpy() * 255)
    want_u8 = np.clip(np.rint(want), 0, 255).astype(np.uint8)
    assert result.codec == CODEC_TORCH and (result.width, result.height) == (90, 70)
    assert result.bytes == nbytes
    assert result.bpp == pytest.approx(nbytes * 8 / (70 * 90))
    np.testing.assert_array_equal(decoded, want_u8)
    assert result.psnr == pytest.approx(psnr(img, want_u8))
    assert math.isnan(result.ms_ssim)


def results_fixture() -> list[ImageResult]:
    return [
        ImageResult("a.png", CODEC_LIC, 10, 10, 50, 4.0, 30.0, 0.9, 0.1, 0.2),
        ImageResult("a.png", CODEC_TORCH, 10, 10, 60, 4.8, 30.5, 0.91, 0.3, 0.4),
        ImageResult("b.png", CODEC_LIC, 10, 10, 25, 2.0, 32.0, 0.95, 0.1, 0.2),
        ImageResult("b.png", CODEC_TORCH, 10, 10, 30, 2.4, 32.5, 0.96, 0.3, 0.4),
    ]


def test_table_csv_and_plot(tmp_path: Path) -> None:
    results = results_fixture()
    avg = averages(results, CODEC_LIC)
    assert avg["bpp"] == pytest.approx(3.0) and avg["psnr"] == pytest.approx(31.0)
    table = format_table(results)
    assert "a.png" in table and "average" in table
    assert "16.67% fewer bits" in table  # 1 - 3.0 / 3.6
    write_csv(results, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 6
    assert rows[0]["image"] == "a.png" and float(rows[0]["bpp"]) == 4.0
    assert rows[4]["image"] == "AVERAGE" and float(rows[5]["bpp"]) == pytest.approx(3.6)
    plot_rd(results, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    cases = [
        ["eval", str(tmp_path / "nothing"), "--images", str(images)],  # no build folder
        ["eval", str(tmp_path), "--images", str(images)],  # folder without executables
    ]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("encoder", "decoder"):
        (out / name).write_text("#!/bin/sh\nexit 3\n")
        (out / name).chmod(0o755)
    cases.append(["eval", str(out), "--images", str(images)])  # no images
    from PIL import Image

    Image.fromarray(rand_image(8, 8)).save(images / "x.png")
    cases.append(["eval", str(out), "--images", str(images), "--no-compressai"])  # exit 3
    cases.append(["eval", str(out), "--images", str(images)])  # no manifest for the model
    for argv in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 1, argv
        assert len(err.splitlines()) == 1 and err.startswith("lic2cpp eval: error:"), err


def test_rdoq_summary_interpolates_at_the_plain_psnr(tmp_path: Path) -> None:
    from lic2cpp.evaluate import rate_at_psnr, rdoq_codec

    # Hand-computed: halfway in PSNR between (29, 2.0) and (31, 3.0) -> sqrt(2 * 3) bpp.
    assert rate_at_psnr([(31.0, 3.0), (29.0, 2.0)], 30.0) == pytest.approx(math.sqrt(6.0))
    assert rate_at_psnr([(31.0, 3.0), (29.0, 2.0)], 28.0) is None
    results = [
        ImageResult("a.png", CODEC_LIC, 10, 10, 50, 4.0, 29.0, 0.9, 0.1, 0.2),
        ImageResult("b.png", CODEC_LIC, 10, 10, 50, 4.0, 31.0, 0.9, 0.1, 0.2),
    ]
    for lam, bpp, psnr_db in ((0.001, 2.0, 29.0), (0.002, 3.0, 31.0)):
        for name in ("a.png", "b.png"):
            results.append(ImageResult(name, rdoq_codec(lam), 10, 10, 0, bpp, psnr_db, 0.9,
                                       9.0, 0.2))
    table = format_table(results)
    want = 100 * (1 - math.sqrt(6.0) / 4.0)
    assert f"{want:.2f}% fewer bits than plain rounding" in table
    assert "rdoq=0.001" in table and "rdoq=0.002" in table
    write_csv(results, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["codec"] for r in rows if r["image"] == "AVERAGE"] == [
        CODEC_LIC, "lic2cpp rdoq=0.001", "lic2cpp rdoq=0.002"]
    plot_rd(results, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # RDOQ points on one side of the plain PSNR: said so, no figure made up
    one_side = [r for r in results if r.codec != rdoq_codec(0.001)]
    assert "do not bracket it" in format_table(one_side)
