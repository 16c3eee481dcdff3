"""`lic2cpp build --int16 both` on a tiny model: the int16 encoder and decoder give exactly
what the numpy reference of docs/int16.md gives, their bitstreams are interchangeable with
the float programs' of the same model (one fingerprint), a bitstream of another model is
refused, the step is cached, and `lic2cpp eval` puts float and int16 side by side."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_build import PATCH, smooth_image, tiny_net, training_patches

import lic2cpp.build
from lic2cpp import fixedpoint as fx
from lic2cpp.build import BuildOptions, build
from lic2cpp.cli import main
from lic2cpp.entropy import EntropyModel
from lic2cpp.evaluate import float_twin
from lic2cpp.modelformat import read_licm


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("build16")
    torch.save({"model": tiny_net()}, root / "tiny.pth")
    np.save(root / "set.npy", training_patches(0))
    out = root / "out"
    with pytest.MonkeyPatch.context() as m:
        cpp_hash = lic2cpp.build.cpp_sources_hash()  # fixed while the tests run (test_build)
        m.setattr(lic2cpp.build, "cpp_sources_hash", lambda: cpp_hash)
        opts = BuildOptions(model=root / "tiny.pth", training_set=root / "set.npy",
                            out_dir=out, patch_size=PATCH, progress=False, log=lambda _: None,
                            int16="both", calib_patches=4)
        result = build(opts)
        assert result.ran == ["convert", "fit", "int16", "codegen"]
        again = build(opts)
        assert again.ran == []  # every step cached
        float_enc, float_dec = float_twin(out)
        yield {"root": root, "out": out, "opts": opts, "float_enc": float_enc,
               "float_dec": float_dec}


def run(cmd: list) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)


def image(path: Path, h: int, w: int, seed: int) -> Path:
    Image.fromarray(smooth_image(h, w, seed)).save(path)
    return path


def test_report_and_files(built) -> None:
    out = built["out"]
    info = json.loads((out / "int16.json").read_text())
    assert info["mode"] == "both"
    assert info["g_s"]["source"].startswith("calibrated on 4 training patches")
    assert info["g_a"]["source"].startswith("calibrated")
    assert info["g_s"]["expected_psnr_loss_db"] is not None
    report = (out / "report.md").read_text()
    assert "## int16 fixed point" in report and "expected PSNR loss" in report
    for name in ("g_a_int16.licm", "g_s_int16.licm"):
        m = read_licm(out / name)
        assert m.nodes[0].op == "quantize" and m.nodes[-1].op == "dequantize"


def test_programs_equal_the_numpy_reference(built, tmp_path: Path) -> None:
    """int16 encoder: latent = round(g_a16(x) - mean) + mean with g_a16 the reference; int16
    decoder: pixels = to_pixels(g_s16(latent)), byte for byte."""
    out = built["out"]
    ga16, gs16 = read_licm(out / "g_a_int16.licm"), read_licm(out / "g_s_int16.licm")
    means = EntropyModel.load(out / "entropy.lice").offsets
    for h, w in ((37, 50), (16, 16)):
        src = image(tmp_path / f"in{h}.png", h, w, h)
        enc = run([out / "encoder", src, tmp_path / "a.bin", "--dump-latent", tmp_path / "e.npy"])
        assert enc.returncode == 0, enc.stderr
        dec = run([out / "decoder", tmp_path / "a.bin", tmp_path / "o.png", "--dump-latent",
                   tmp_path / "d.npy"])
        assert dec.returncode == 0, dec.stderr
        rgb = np.asarray(Image.open(src).convert("RGB"))
        hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
        padded = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
        y = fx.run_reference(ga16, padded.astype(np.float32) / np.float32(255.0))
        y_hat = (np.rint(y - means) + means).astype(np.float32)
        assert np.array_equal(np.load(tmp_path / "e.npy"), y_hat)
        assert np.array_equal(np.load(tmp_path / "d.npy"), y_hat)
        values = fx.run_values(gs16, y_hat)
        want = fx.to_pixels(values[-2], gs16.nodes[-2].attrs["out_shift"])[:h, :w]
        assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), want)


def test_bitstreams_are_interchangeable(built, tmp_path: Path) -> None:
    out = built["out"]
    src = image(tmp_path / "in.png", 40, 56, 7)
    pairs = {"float": (built["float_enc"], built["float_dec"]),
             "int16": (out / "encoder", out / "decoder")}
    streams = {}
    for name, (enc, _) in pairs.items():
        proc = run([enc, src, tmp_path / f"{name}.bin"])
        assert proc.returncode == 0, proc.stderr
        streams[name] = tmp_path / f"{name}.bin"
    # the same model: one fingerprint, whichever arithmetic made the bitstream
    assert streams["float"].read_bytes()[24:32] == streams["int16"].read_bytes()[24:32]
    for enc_name, stream in streams.items():
        decoded = {}
        for dec_name, (_, dec) in pairs.items():
            proc = run([dec, stream, tmp_path / f"{enc_name}-{dec_name}.png"])
            assert proc.returncode == 0, (enc_name, dec_name, proc.stderr)
            decoded[dec_name] = np.asarray(Image.open(tmp_path / f"{enc_name}-{dec_name}.png"))
        # int16 and float decoders of one bitstream: a few levels apart at most
        diff = np.abs(decoded["float"].astype(int) - decoded["int16"].astype(int))
        assert diff.max() <= 8 and diff.mean() < 1.0


def test_a_bitstream_of_another_model_is_refused(built, tmp_path: Path) -> None:
    """Same container, another fingerprint (checksum repaired): refused as another model's."""
    out = built["out"]
    src = image(tmp_path / "in.png", 20, 20, 3)
    assert run([out / "encoder", src, tmp_path / "a.bin"]).returncode == 0
    data = bytearray((tmp_path / "a.bin").read_bytes())
    data[24] ^= 0x55
    h = 0x811C9DC5
    for byte in bytes(data[:36]) + bytes(data[40:]):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    data[36:40] = struct.pack("<I", h)
    (tmp_path / "b.bin").write_bytes(bytes(data))
    proc = run([out / "decoder", tmp_path / "b.bin", tmp_path / "b.png"])
    assert proc.returncode != 0 and "another model" in proc.stderr, proc.stderr


def test_int16_step_reruns_alone_when_its_options_change(built) -> None:
    opts = built["opts"]
    with pytest.MonkeyPatch.context() as m:
        calls = []
        m.setattr(lic2cpp.codegen, "build_codec",
                  lambda *a, **k: calls.append(k) or (opts.out_dir / "encoder",
                                                      opts.out_dir / "decoder"))
        # same networks (codegen keys on contents: nothing to compile), then other shifts
        assert build(BuildOptions(**{**opts.__dict__, "seed": opts.seed})).ran == []
        changed = BuildOptions(**{**opts.__dict__, "headroom_bits": 4})
        result = build(changed)
        assert result.ran == ["int16", "codegen"]
        assert calls[0]["decoder_net"].name == "g_s_int16.licm"
        assert calls[0]["encoder_net"].name == "g_a_int16.licm"
        # back to the first options for the other tests (and the float build drops it)
        build(opts)


def test_eval_shows_float_and_int16_side_by_side(built, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        image(folder / f"i{i}.png", 48, 64, 20 + i)
    assert main(["eval", str(built["out"]), "--images", str(folder), "--no-compressai"]) == 0
    text = capsys.readouterr().out
    assert "lic2cpp-int16 bpp" in text and "lic2cpp bpp" in text
    assert "lic2cpp-int16 vs lic2cpp (averages)" in text
    assert "largest PSNR loss on one image" in text
