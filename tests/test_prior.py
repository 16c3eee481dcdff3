"""`--prior model`: the model's own entropy-bottleneck CDFs as lic2cpp tables.

Truths: CompressAI's buffers (`_quantized_cdf`, `_offset`, `_cdf_length`, medians), the
code length recomputed here straight from them with CompressAI's symbol convention, and
CompressAI's own `compress` of the same images.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PHOTOS, RELU_CKPT

from lic2cpp.build import BuildOptions, build
from lic2cpp.entropy import EntropyModel
from lic2cpp.errors import LicError
from lic2cpp.images import list_images, psnr, read_rgb, write_rgb
from lic2cpp.prior import SymbolTable, model_prior, narrowed


def compressai_bits(net: torch.nn.Module, y: np.ndarray) -> float:
    """Ideal code length of latents under CompressAI's tables, from its buffers alone:
    symbol = round(y - median) - offset, the overflow symbol for values outside the
    table plus the bypass bits CompressAI's coder would not count (so compare in-range)."""
    eb = net.entropy_bottleneck
    cdf = eb._quantized_cdf.numpy().astype(np.int64)
    lengths = eb._cdf_length.numpy()
    offsets = eb._offset.numpy()
    medians = eb.quantiles[:, 0, 1].detach().numpy()
    total = 0.0
    for c in range(y.shape[1]):
        s = np.round(y[:, c] - medians[c]).astype(np.int64) - offsets[c]
        n = lengths[c] - 2
        assert ((s >= 0) & (s < n)).all(), "test latents are expected inside the tables"
        f = cdf[c, s + 1] - cdf[c, s]
        total += float(-np.log2(f / 65536.0).sum())
    return total


def photo_crops(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    images = [read_rgb(p) for p in list_images(PHOTOS)[:len(sizes)]]
    return [img[:h, :w].copy() for img, (h, w) in zip(images, sizes, strict=True)]


def g_a(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        return net.g_a(x).numpy()


def test_tables_are_the_bottleneck_cdfs(relu_net: torch.nn.Module) -> None:
    tables = model_prior(relu_net)
    eb = relu_net.entropy_bottleneck
    assert tables.num_channels == eb._quantized_cdf.shape[0]
    np.testing.assert_array_equal(tables.offsets, eb.quantiles[:, 0, 1].detach().numpy())
    for c, ch in enumerate(tables.channels):
        n = int(eb._cdf_length[c])
        want = np.diff(eb._quantized_cdf[c, :n].numpy())  # in-range symbols, then overflow
        assert ch.lo == int(eb._offset[c]) and ch.nsym == n - 2
        np.testing.assert_array_equal(ch.plain, want)
        assert (ch.freqs == want[None, :]).all()  # every context: the same table
        assert ch.flag_freq == 0 and ch.mpv == ch.lo + int(np.argmax(want[:-1]))
    np.testing.assert_array_equal(tables.order, np.arange(tables.num_channels))
    # a file with flagless channels is .lice 1.1 and reads back identically
    data = tables.to_bytes()
    assert data[4:8] == bytes([1, 0, 1, 0])
    again = EntropyModel.from_bytes(data)
    assert again.to_bytes() == data


def test_code_length_is_compressai_s(relu_net: torch.nn.Module) -> None:
    tables = model_prior(relu_net)
    for img in photo_crops([(64, 64), (128, 192)]):
        y = g_a(relu_net, img)
        est = tables.estimate_bits(y)
        assert est["bits_ctx"] == pytest.approx(compressai_bits(relu_net, y), rel=1e-12)
        assert est["bits_plain"] == pytest.approx(est["bits_ctx"], rel=1e-12)


def test_long_tables_are_narrowed_exactly() -> None:
    freqs = np.full(301, 1, dtype=np.uint32)
    freqs[150] = 65536 - 300
    t = SymbolTable(lo=-150, freqs=freqs)
    n = narrowed(t, 150, 255)
    assert n.nsym == 255 and n.lo == -150 + 150 - 127
    assert int(n.freqs.sum()) == 65536 and n.freqs[-1] == 1 + (300 - 255)
    np.testing.assert_array_equal(n.freqs[:-1], freqs[23:278])
    assert narrowed(t, 0, 255).lo == -150  # clamped at the table's start


def test_refuses_hyperprior_and_tableless_models(relu_net: torch.nn.Module) -> None:
    from compressai.models import MeanScaleHyperprior

    with pytest.raises(LicError, match="hyperprior"):
        model_prior(MeanScaleHyperprior(8, 12))
    with pytest.raises(LicError, match="no entropy bottleneck"):
        model_prior(torch.nn.Module())


@pytest.fixture(scope="module")
def model_prior_codec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prior") / "out"
    build(BuildOptions(model=RELU_CKPT, training_set=None, out_dir=out, prior="model",
                       log=lambda _: None))
    return out


def test_codec_rate_matches_compressai_compress(model_prior_codec: Path, tmp_path: Path,
                                                relu_net: torch.nn.Module) -> None:
    out = model_prior_codec
    assert "prior: **model**" in (out / "report.md").read_text()
    for i, img in enumerate(photo_crops([(128, 128), (192, 128), (256, 320)])):
        src, binf, dec = tmp_path / f"{i}.png", tmp_path / f"{i}.bin", tmp_path / f"{i}.png.out.png"
        write_rgb(src, img)
        subprocess.run([out / "encoder", src, binf], check=True, capture_output=True)
        subprocess.run([out / "decoder", binf, dec], check=True, capture_output=True)
        payload = binf.stat().st_size - 40
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            c = relu_net.compress(x)
            ref = relu_net.decompress(c["strings"], c["shape"])["x_hat"]
        theirs = sum(len(s) for s in c["strings"][0])
        # same probabilities, a range coder without rANS's 4-byte state flush
        assert 0.97 * theirs <= payload <= 1.005 * theirs, (payload, theirs)
        ref_px = (ref[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        ours = read_rgb(dec)
        assert abs(psnr(img, ours) - psnr(img, ref_px)) < 0.01
        assert math.isfinite(psnr(img, ours))


def test_build_cli_prior_model_needs_no_training_set(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    from lic2cpp.cli import main

    rc = main(["build", "--model", str(RELU_CKPT), "--prior", "model", "--entropy",
               str(tmp_path / "x.lice"), "-o", str(tmp_path / "o")])
    assert rc != 0
    assert "--entropy does not apply" in capsys.readouterr().err
