"""Hyperprior models through `lic2cpp build`: the generated encoder and decoder against
CompressAI's own compress/decompress of the same model, the priors, determinism.

Model: tests/data/shp_32_48.pth, a ScaleHyperprior(32, 48) trained briefly on the photos
(tests/data/README.md). Images: crops of the photos (rate comparisons, not evaluation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PHOTOS, ROOT, SHP_CKPT

from lic2cpp.build import BuildOptions, build
from lic2cpp.cli import main
from lic2cpp.images import list_images, psnr, read_rgb, write_rgb

BUILD_PATCHES = dict(max_patches=24, patch_size=128)  # small training set: quick fits


@pytest.fixture(scope="module")
def shp() -> torch.nn.Module:
    return torch.load(SHP_CKPT, weights_only=False)["model"].eval()


@pytest.fixture(scope="module")
def codecs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hyper-codec")
    out = {}
    for prior in ("hyper", "hybrid"):
        training = PHOTOS if prior == "hybrid" else None
        out[prior] = root / prior
        build(BuildOptions(model=SHP_CKPT, training_set=training, out_dir=out[prior],
                           prior=prior, log=lambda _: None, **BUILD_PATCHES))
    return out


def crops() -> list[np.ndarray]:
    paths = list_images(PHOTOS)
    # multiples of 64 (CompressAI pads to 64: then both code the same latent), and one
    # that is not even a multiple of 16
    return [read_rgb(paths[0])[:128, :192], read_rgb(paths[7])[64:256, 32:224],
            read_rgb(paths[13])[:100, :150]]


def compressai_round_trip(net: torch.nn.Module, img: np.ndarray) -> tuple[int, np.ndarray]:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        c = net.compress(x)
        x_hat = net.decompress(c["strings"], c["shape"])["x_hat"]
    px = (x_hat[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return sum(len(s[0]) for s in c["strings"]), px


def round_trip(codec: Path, img: np.ndarray, work: Path, name: str) -> tuple[int, np.ndarray]:
    """(payload bytes, decoded pixels); the stream says version 1.1 and the codec's mode."""
    src, binf, dec = work / f"{name}.png", work / f"{name}.bin", work / f"{name}.dec.png"
    write_rgb(src, img)
    for cmd in ([codec / "encoder", src, binf], [codec / "decoder", binf, dec]):
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert binf.read_bytes()[4:7] == bytes([1, 1, {"hyper": 2, "hybrid": 3}[codec.name]])
    return binf.stat().st_size - 40, read_rgb(dec)


def test_hyper_codec_matches_compressai(codecs: dict[str, Path], shp: torch.nn.Module,
                                        tmp_path: Path) -> None:
    report = (codecs["hyper"] / "report.md").read_text()
    assert "prior used: **hyper**" in report and "no training set" in report
    ours_total = theirs_total = 0
    for k, img in enumerate(crops()):
        ours, px = round_trip(codecs["hyper"], img, tmp_path, f"h{k}")
        # The same latent, the same CDFs (bar the int16 h_s's rare index differences):
        # the same rate, and the same reconstruction (y_hat = round(y) in both).
        if img.shape[0] % 64 == 0 and img.shape[1] % 64 == 0:  # CompressAI needs 64
            theirs, ref = compressai_round_trip(shp, img)
            ours_total += ours
            theirs_total += theirs
            assert abs(psnr(img, px) - psnr(img, ref)) < 0.01
        assert psnr(img, px) > 18
    assert 0.97 * theirs_total <= ours_total <= 1.02 * theirs_total, (ours_total, theirs_total)


def test_hybrid_spends_fewer_bits_for_the_same_pixels(codecs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    stats = json.loads((codecs["hybrid"] / "fit_stats.json").read_text())
    est = stats["estimates"]
    assert est["hybrid"]["bits"] < est["hyper"]["bits"]
    assert est["hybrid"]["bits_z"] == est["hyper"]["bits_z"]
    hyper_bits = hybrid_bits = 0
    for k, img in enumerate(crops()):
        a, pa = round_trip(codecs["hyper"], img, tmp_path, f"a{k}")
        b, pb = round_trip(codecs["hybrid"], img, tmp_path, f"b{k}")
        np.testing.assert_array_equal(pa, pb)  # the same y_hat: only the tables differ
        hyper_bits += a
        hybrid_bits += b
    assert hybrid_bits < hyper_bits


def test_default_prior_is_the_smallest_on_the_training_set(tmp_path: Path) -> None:
    out = tmp_path / "auto"
    build(BuildOptions(model=SHP_CKPT, training_set=PHOTOS, out_dir=out, prior=None,
                       log=lambda _: None, **BUILD_PATCHES))
    stats = json.loads((out / "fit_stats.json").read_text())
    costs = {k: v["bits"] for k, v in stats["estimates"].items()}
    assert set(costs) == {"hyper", "hybrid", "fitted"}
    assert stats["prior"] == min(costs, key=lambda k: costs[k]) and stats["asked"] == "default"
    report = (out / "report.md").read_text()
    assert f"prior used: **{stats['prior']}** (the default" in report
    for label in ("hyper:", "hybrid:", "fitted context tables"):
        assert label in report


def test_decodes_identically_with_any_kernels_threads_and_build(codecs: dict[str, Path],
                                                                tmp_path: Path) -> None:
    # benchmarks/check_determinism.py on two crops: streams of the best and of the scalar
    # encoder, each decoded with the best kernels on 1 and 2 threads, the scalar kernels
    # and a decoder compiled at -O0: the same latent every time.
    folder = tmp_path / "images"
    folder.mkdir()
    for k, img in enumerate(crops()[1:]):
        write_rgb(folder / f"c{k}.png", img)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "check_determinism.py"),
                           str(codecs["hybrid"]), "--images", str(folder)],
                          capture_output=True, text=True, timeout=1200,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 images, 4 streams, 16 decodes: latents identical" in proc.stdout
    # the float g_s's scalar twin rounds differently from FMA: at most a level
    assert proc.stdout.rstrip().endswith(("within 0 of the best kernels'",
                                          "within 1 of the best kernels'"))


def test_bitstream_of_the_other_codec_is_refused(codecs: dict[str, Path],
                                                 tmp_path: Path) -> None:
    src, binf = tmp_path / "x.png", tmp_path / "x.bin"
    write_rgb(src, crops()[0])
    subprocess.run([str(codecs["hyper"] / "encoder"), str(src), str(binf)], check=True,
                   capture_output=True)
    proc = subprocess.run([str(codecs["hybrid"] / "decoder"), str(binf), str(tmp_path / "y.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("decoder: error: bitstream was made by another model "
                                   "(fingerprint mismatch)")
    good = binf.read_bytes()
    # the hyperprior modes have no bands: a 2.0 header on their payload is refused
    v2 = bytearray(good)
    v2[4:6], v2[22:24] = b"\x02\x00", b"\x01\x00"
    v2[36:40] = fnv1a32(bytes(v2[:36]) + bytes(v2[40:])).to_bytes(4, "little")
    (tmp_path / "v2.bin").write_bytes(bytes(v2))
    proc = subprocess.run([str(codecs["hyper"] / "decoder"), str(tmp_path / "v2.bin"),
                           str(tmp_path / "v2.png")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("decoder: error: corrupt bitstream (coding mode 2 in a "
                                   "2.0 stream)")
    # corrupt payloads (checksum repaired, so the coder sees them): a one-line error or
    # some image, never a crash or a sanitizer report
    rng = np.random.default_rng(0)
    for trial in range(20):
        data = bytearray(good)
        for _ in range(1 + trial % 3):
            data[40 + int(rng.integers(len(data) - 40))] ^= int(rng.integers(1, 256))
        data[36:40] = fnv1a32(bytes(data[:36]) + bytes(data[40:])).to_bytes(4, "little")
        bad = tmp_path / "bad.bin"
        bad.write_bytes(bytes(data))
        proc = subprocess.run([str(codecs["hyper"] / "decoder"), str(bad),
                               str(tmp_path / "z.png")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        if proc.returncode:
            assert proc.stderr.startswith("decoder: error:")
            assert len(proc.stderr.strip().splitlines()) == 1


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize(("args", "message"), [
    (["--prior", "hybrid"], "--prior hybrid fits tables: give --training-set"),
    (["--prior", "model"], "is a hyperprior model"),
])
def test_cli_errors(args: list[str], message: str, tmp_path: Path,
                    capsys: pytest.CaptureFixture) -> None:
    rc = main(["build", "--model", str(SHP_CKPT), "-o", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and message in err, err


def test_cli_hyper_on_a_factorized_model_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    from conftest import RELU_CKPT

    rc = main(["build", "--model", str(RELU_CKPT), "--prior", "hyper", "-o",
               str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "is not a hyperprior model" in err, err


def test_int16_build_is_evaluated_beside_its_float_twin(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    # `lic2cpp eval` of an --int16 hyperprior build compiles the float programs of the same
    # model and tables (the .lich, with the h_a it was made for) and puts both side by side;
    # it used to look for entropy.lice and the first two networks only, and failed
    from lic2cpp.evaluate import float_twin

    out = tmp_path / "int16"
    build(BuildOptions(model=SHP_CKPT, training_set=PHOTOS, out_dir=out, prior="hyper",
                       int16="decoder", calib_patches=4, log=lambda _: None, **BUILD_PATCHES))
    twin = float_twin(out)
    assert twin is not None
    folder = tmp_path / "images"
    folder.mkdir()
    src = folder / "c.png"
    write_rgb(src, crops()[1])
    streams, latents, pixels = [], [], []
    for k, (enc, dec) in enumerate(((out / "encoder", out / "decoder"), twin)):
        binf, png, lat = tmp_path / f"{k}.bin", tmp_path / f"{k}.png", tmp_path / f"{k}.npy"
        for cmd in ([enc, src, binf], [dec, binf, png, "--dump-latent", lat]):
            proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0, proc.stderr
        streams.append(binf.read_bytes())
        latents.append(np.load(lat))
        pixels.append(read_rgb(png))
    # both encoders run the float g_a with the same tables; the decoders differ only in g_s
    assert streams[0] == streams[1]
    np.testing.assert_array_equal(latents[0], latents[1])
    img = read_rgb(src)
    assert abs(psnr(img, pixels[0]) - psnr(img, pixels[1])) < 0.5
    assert main(["eval", str(out), "--images", str(folder), "--no-compressai"]) == 0
    text = capsys.readouterr().out
    assert "lic2cpp-int16 vs lic2cpp (averages)" in text


def test_rdoq_is_refused_for_hyperprior_models(codecs: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """RDOQ needs the context tables' exact rate (docs/rdoq.md): a hyperprior codec refuses
    it in one line, in the program, the library and codegen; plain rounding still works."""
    from lic2cpp import Codec
    from lic2cpp.errors import LicError

    src, out = tmp_path / "in.png", tmp_path / "x.bin"
    write_rgb(src, crops()[2])
    for folder in codecs.values():
        proc = subprocess.run([str(folder / "encoder"), str(src), str(out), "--rdoq", "0.001"],
                              capture_output=True, text=True, timeout=300)
        err = proc.stderr.strip()
        assert proc.returncode == 1 and len(err.splitlines()) == 1, err
        assert err.startswith("encoder: error: RDOQ needs the context-table model"), err
        assert not out.exists()
        with pytest.raises(LicError, match="RDOQ needs the context-table model"):
            Codec(folder, rdoq=0.001)
        assert Codec(folder).default_rdoq_lambda == 0
        proc = subprocess.run([str(folder / "encoder"), str(src), str(out), "--rdoq", "0"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        out.unlink()
    folder = codecs["hyper"]
    rc = main(["codegen", str(folder / "g_a.licm"), str(folder / "g_s.licm"),
               str(folder / "hyper.lich"), "--h-a", str(folder / "h_a.licm"), "-o",
               str(tmp_path / "o"), "--rdoq", "0.001"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "a hyperprior model has no RDOQ" in err
