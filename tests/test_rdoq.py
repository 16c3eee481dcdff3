"""RDOQ (cpp/codec/rdoq/, encoder --rdoq): the exact rate model, streams the unchanged decoder
decodes exactly, D + λR never above plain rounding (checked with PyTorch's g_s and Python's
code length), the same bitstream for any thread count, the baked-in default λ, bad options.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_codec_coder import run_json, smooth_latents, tool

from lic2cpp.entropy import fit_entropy_model


def test_rate_model_is_the_coders(tmp_path: Path) -> None:
    # Escapes both ways, a dead channel coming alive, channels entirely at mpv (flags), and
    # steps that cross every activity threshold: every single-latent delta must equal the
    # real coder's change in ideal length, and bits() its length.
    model = fit_entropy_model(smooth_latents(40, 6, 12, 12, 0))
    model.save(tmp_path / "e.lice")
    y = smooth_latents(1, 6, 9, 7, 1)[0]
    y[2, 4, 4] = 300.0
    y[3, 0, 0] = -5000.0
    y[1] = model.channels[1].offset + model.channels[1].mpv  # entirely mpv
    y[1, 3, 3] += 1.0  # ...but one value: the flag changes when it moves back
    y[4] = model.channels[4].offset + model.channels[4].mpv
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    # one band, and bands of 2 and 4 rows (bitstream 2.0: flags per band, no upper
    # neighbour across a band's top edge; channel 1's lone non-mpv value is in one band)
    for rows in (None, 2, 4):
        extra = [] if rows is None else [str(rows)]
        out = run_json([str(tool("rate_tool")), str(tmp_path / "e.lice"),
                        str(tmp_path / "y.npy"), *extra])
        assert out["bits"] == pytest.approx(out["coded_bits"], rel=1e-12)
        want = model.estimate_bits(y[None], band_rows=rows)["bits_ctx"]
        assert out["bits"] == pytest.approx(want, rel=1e-9)
        for step in ("-1", "+1", "+3"):
            assert out[f"max_err_{step}"] < 1e-9, (rows, out)


# --------------------------------------------------------------------------- the programs

LAMBDA = 0.002


class RdoqCodec:
    """The tiny random codec of test_codec_programs (same files, so its ASan build comes from
    the compiler cache when that module ran first), plus an encoder with RDOQ at LAMBDA
    baked in (`build --rdoq`)."""

    def __init__(self, folder: Path) -> None:
        from test_codec_programs import Codec

        from lic2cpp.codegen import build_codec

        base = Codec(folder, seed=0)
        self.tables = base.tables
        self.gs = folder / "g_s.licm"
        self.encoder, self.decoder = base.encoder, base.decoder
        self.encoder_baked, _ = build_codec(folder / "g_a.licm", self.gs, base.tables_path,
                                            folder / "baked", sanitize=True,
                                            rdoq_lambda=LAMBDA)


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> RdoqCodec:
    return RdoqCodec(tmp_path_factory.mktemp("rdoq"))


def run(cmd: list) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)


def encode(encoder: Path, image: Path, out: Path, *args: str) -> dict:
    proc = run([encoder, image, out, "--stats", *args])
    assert proc.returncode == 0, proc.stderr
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def objective(codec: RdoqCodec, rgb: np.ndarray, bitstream: Path, work: Path, lam: float,
              gs_licm: Path) -> tuple[float, float, float]:
    """(J, bits, SSE) of a bitstream, independently of the encoder: the decoder's latent,
    Python's code length for it, PyTorch-free float g_s through lic-run on that latent."""
    from lic2cpp.runtime import run_licm

    dump = work / "y.npy"
    proc = run([codec.decoder, bitstream, work / "d.ppm", "--dump-latent", dump])
    assert proc.returncode == 0, proc.stderr
    y_hat = np.load(dump)
    bits = codec.tables.estimate_bits(y_hat.transpose(2, 0, 1)[None])["bits_ctx"]
    x_hat = run_licm(gs_licm, y_hat)
    h, w = rgb.shape[:2]
    d = np.clip(x_hat[:h, :w].astype(np.float64), 0, 1) - rgb / 255.0
    sse = float((d * d).sum())
    return bits + lam * 255.0 ** 2 / 3.0 * sse, bits, sse


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (64, 48), (90, 70)])
def test_rdoq_streams_decode_and_never_lose(codec: RdoqCodec, tmp_path: Path,
                                            size: tuple[int, int]) -> None:
    from test_codec_programs import random_image

    from lic2cpp.images import read_rgb

    image = random_image(tmp_path / "in.png", *size, seed=size[0])
    rgb = read_rgb(image)
    for lam in (LAMBDA, 0.0002):
        plain, rdoq = tmp_path / "p.bin", tmp_path / "r.bin"
        sp = encode(codec.encoder, image, plain, "--rdoq", "0")
        sr = encode(codec.encoder, image, rdoq, "--rdoq", str(lam), "--dump-latent",
                    tmp_path / "enc.npy")
        # the unchanged decoder decodes the encoder's very latent
        proc = run([codec.decoder, rdoq, tmp_path / "d.png", "--dump-latent", tmp_path / "dec.npy"])
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(np.load(tmp_path / "enc.npy"), np.load(tmp_path / "dec.npy"))
        j_plain, bits_plain, _ = objective(codec, rgb, plain, tmp_path, lam, codec.gs)
        j_rdoq, bits, sse = objective(codec, rgb, rdoq, tmp_path, lam, codec.gs)
        assert j_rdoq <= j_plain * (1 + 1e-9), (size, lam, j_plain, j_rdoq)
        # the encoder's own account agrees with the independent one (printed to 6 decimals)
        assert sr["rdoq_bits_plain"] == pytest.approx(bits_plain, rel=1e-9, abs=1e-6)
        assert sr["ideal_bits"] == pytest.approx(bits, rel=1e-9, abs=1e-6)
        assert sr["rdoq_sse"] == pytest.approx(sse, rel=1e-4, abs=1e-9)
        assert sp["rdoq_passes"] == 0 and sr["rdoq_passes"] > 0
        if sr["rdoq_changed"]:
            assert j_rdoq < j_plain


def test_rdoq_is_deterministic_across_threads(codec: RdoqCodec, tmp_path: Path) -> None:
    from test_codec_programs import random_image

    image = random_image(tmp_path / "in.png", 90, 70, seed=5)
    outs = []
    for threads in (1, 2, 3, 1):
        out = tmp_path / f"t{len(outs)}.bin"
        stats = encode(codec.encoder, image, out, "--rdoq", str(LAMBDA), "--threads",
                       str(threads))
        outs.append(out.read_bytes())
    assert stats["rdoq_changed"] > 0
    assert all(o == outs[0] for o in outs)


def test_rdoq_codes_the_chosen_latent_in_bands(codec: RdoqCodec, tmp_path: Path) -> None:
    """With --band-rows, RDOQ optimises the rate of the bands the latent is coded in and the
    chosen latent is coded in those bands (bitstream 2.0): the decoder reads back the very
    same latent, the encoder's bits are Python's banded code length, and D + λR under that
    rate is never above plain rounding's."""
    from test_codec_programs import random_image

    from lic2cpp.images import read_rgb

    image = random_image(tmp_path / "in.png", 90, 70, seed=8)
    rgb = read_rgb(image)
    for rows in (1, 2):
        plain, out = tmp_path / f"p{rows}.bin", tmp_path / f"b{rows}.bin"
        sp = encode(codec.encoder, image, plain, "--rdoq", "0", "--band-rows", str(rows),
                    "--dump-latent", tmp_path / "plain.npy")
        st = encode(codec.encoder, image, out, "--rdoq", str(LAMBDA), "--band-rows", str(rows),
                    "--dump-latent", tmp_path / "enc.npy")
        chosen = np.load(tmp_path / "enc.npy")
        assert st["bands"] == sp["bands"] == -(-chosen.shape[0] // rows) > 1
        assert st["rdoq_changed"] > 0
        dec = tmp_path / "dec.npy"
        proc = run([codec.decoder, out, tmp_path / "d.png", "--dump-latent", dec])
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(np.load(dec), chosen)

        def bits(y_hat: np.ndarray, rows: int = rows) -> float:
            return codec.tables.estimate_bits(y_hat.transpose(2, 0, 1)[None],
                                              band_rows=rows)["bits_ctx"]

        assert st["ideal_bits"] == pytest.approx(bits(chosen), rel=1e-9, abs=1e-6)
        assert st["rdoq_bits_plain"] == pytest.approx(bits(np.load(tmp_path / "plain.npy")),
                                                      rel=1e-9, abs=1e-6)
        assert sp["ideal_bits"] == pytest.approx(st["rdoq_bits_plain"], rel=1e-9, abs=1e-6)
        w = LAMBDA * 255.0 ** 2 / 3.0
        _, _, sse_plain = objective(codec, rgb, plain, tmp_path, LAMBDA, codec.gs)
        _, _, sse = objective(codec, rgb, out, tmp_path, LAMBDA, codec.gs)
        assert st["ideal_bits"] + w * sse < sp["ideal_bits"] + w * sse_plain


def test_baked_in_lambda(codec: RdoqCodec, tmp_path: Path) -> None:
    from test_codec_programs import random_image

    image = random_image(tmp_path / "in.png", 64, 48, seed=6)
    baked = encode(codec.encoder_baked, image, tmp_path / "b.bin")
    assert baked["rdoq_lambda"] == LAMBDA and baked["rdoq_passes"] > 0
    encode(codec.encoder, image, tmp_path / "r.bin", "--rdoq", str(LAMBDA))
    assert (tmp_path / "b.bin").read_bytes() == (tmp_path / "r.bin").read_bytes()
    encode(codec.encoder_baked, image, tmp_path / "b0.bin", "--rdoq", "0")
    encode(codec.encoder, image, tmp_path / "p.bin")
    assert (tmp_path / "b0.bin").read_bytes() == (tmp_path / "p.bin").read_bytes()
    help_text = run([codec.encoder_baked, "--help"]).stdout
    assert f"default {LAMBDA:g}" in help_text


@pytest.mark.parametrize("args,message", [
    (["--rdoq", "-1"], "--rdoq needs a finite lambda"),
    (["--rdoq", "abc"], "--rdoq needs a finite lambda"),
    (["--rdoq", "nan"], "--rdoq needs a finite lambda"),
    (["--rdoq", "inf"], "--rdoq needs a finite lambda"),
    (["--rdoq-sweeps", "-3"], "--rdoq-sweeps needs a number"),
])
def test_bad_rdoq_options(codec: RdoqCodec, tmp_path: Path, args: list[str],
                          message: str) -> None:
    from test_codec_programs import random_image

    image = random_image(tmp_path / "in.png", 20, 20, seed=7)
    proc = run([codec.encoder, image, tmp_path / "x.bin", *args])
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("encoder: error:") and message in err
    assert not (tmp_path / "x.bin").exists()
