"""The generated encoder/decoder programs: exact latent round trips, robustness, bad input.

Built once per session with ASan+UBSan from a tiny random network written through
lic2cpp.modelformat (4 stride-2 convolutions, like CompressAI's factorized prior).
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lic2cpp.bitstream import as_version1, read_stream
from lic2cpp.codegen import build_codec
from lic2cpp.entropy import EntropyModel, fit_entropy_model
from lic2cpp.modelformat import ModelFile, Node, downsampling_factor, read_licm, write_licm
from lic2cpp.toolchain import compile_program, cpp_dir, source_closure

CHANNELS = 12


def conv(kind: str, cin: int, cout: int, rng: np.random.Generator, gain: float) -> Node:
    attrs = dict(cin=cin, cout=cout, kh=5, kw=5, stride_h=2, stride_w=2, pad_top=2, pad_left=2,
                 pad_bottom=2, pad_right=2)
    if kind == "conv2d":
        shape = (cout, cin, 5, 5)
    else:
        attrs.update(out_pad_h=1, out_pad_w=1)
        shape = (cin, cout, 5, 5)
    w = rng.normal(0, gain / np.sqrt(cin * 25), shape).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    return Node(kind, [0], attrs, {"weight": w, "bias": b})


def chain(nodes: list[Node]) -> list[Node]:
    for i, n in enumerate(nodes):
        n.inputs = [i]
    return nodes


def write_tiny_model(folder: Path, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    widths = [3, 8, 8, 8, CHANNELS]
    ga: list[Node] = []
    for i in range(4):
        ga.append(conv("conv2d", widths[i], widths[i + 1], rng, 2.0 if i < 3 else 40.0))
        if i < 3:
            ga.append(Node("relu", [0]))
    gs: list[Node] = []
    rev = widths[::-1]
    for i in range(4):
        gs.append(conv("conv_transpose2d", rev[i], rev[i + 1], rng, 1.0))
        if i < 3:
            gs.append(Node("relu", [0]))
    paths = folder / "g_a.licm", folder / "g_s.licm"
    write_licm(paths[0], ModelFile("g_a", 3, CHANNELS, chain(ga)))
    write_licm(paths[1], ModelFile("g_s", CHANNELS, 3, chain(gs)))
    return paths


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


class Codec:
    def __init__(self, folder: Path, seed: int, train_latents: np.ndarray | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ga, gs = write_tiny_model(folder, seed)
        self.folder = folder
        self.tables_path = folder / "entropy.lice"
        if train_latents is None:
            # Tables from latents of a few random images through this very encoder would
            # need an encoder first; a spread Laplacian keeps some values out of range.
            rng = np.random.default_rng(seed)
            train_latents = rng.laplace(0, 1.5, (30, CHANNELS, 8, 8)).astype(np.float32)
            train_latents[:, 5] = 0.0
        self.tables = fit_entropy_model(train_latents)
        self.tables.save(self.tables_path)
        self.encoder, self.decoder = build_codec(ga, gs, self.tables_path, folder / "out",
                                                 sanitize=True)


@pytest.fixture(scope="module")
def codec(sanitized_codec: Codec) -> Codec:
    return sanitized_codec  # conftest.py: built once per session, shared with other tests


def random_image(path: Path, w: int, h: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    # smooth-ish content so the latent is not pure noise
    base = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    img.save(path)
    return path


def assert_clean_failure(proc: subprocess.CompletedProcess, *must_not_exist: Path) -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    assert len(err.splitlines()) == 1 and "error:" in err, err
    for p in must_not_exist:
        assert not p.exists(), p
    for p in {q.parent for q in must_not_exist}:
        assert not list(p.glob("*.tmp-lic2cpp")), "temporary file left behind"


def test_decoded_pixels_are_the_synthesis_rounded(codec: Codec, tmp_path: Path) -> None:
    # The decoder's 8-bit pixels are floor(clamp(v, 0, 1) * 255 + 0.5) of its g_s output
    # (docs/bitstream.md), exactly: the same g_s run by lic-run on the decoded latent, rounded
    # here in float32 as the program does.
    from lic2cpp.runtime import run_licm

    w, h = 45, 29
    src = random_image(tmp_path / "in.png", w, h, seed=9)
    assert run([codec.encoder, src, tmp_path / "a.bin"]).returncode == 0
    dec = run([codec.decoder, tmp_path / "a.bin", tmp_path / "out.png", "--dump-latent",
               tmp_path / "y.npy"])
    assert dec.returncode == 0, dec.stderr
    v = run_licm(codec.folder / "g_s.licm", np.load(tmp_path / "y.npy"))[:h, :w]
    want = np.floor(np.clip(v, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    got = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(got, want)
    assert 0 < np.count_nonzero((v < 0) | (v > 1)) < v.size  # both clamped and kept values


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (16, 16), (40, 23)])
def test_latent_round_trip(codec: Codec, tmp_path: Path, size: tuple[int, int]) -> None:
    w, h = size
    src = random_image(tmp_path / "in.png", w, h, seed=w * 100 + h)
    enc = run([codec.encoder, src, tmp_path / "a.bin", "--dump-latent", tmp_path / "enc.npy",
               "--stats"])
    assert enc.returncode == 0, enc.stderr
    stats = json.loads(enc.stdout)
    dec = run([codec.decoder, tmp_path / "a.bin", tmp_path / "out.png", "--dump-latent",
               tmp_path / "dec.npy"])
    assert dec.returncode == 0, dec.stderr
    y_enc, y_dec = np.load(tmp_path / "enc.npy"), np.load(tmp_path / "dec.npy")
    assert y_enc.shape == (-(-h // 16), -(-w // 16), CHANNELS) and y_enc.dtype == np.float32
    assert np.array_equal(y_enc, y_dec)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    # the encoder's ideal length is the Python model's estimate on the same latent
    est = codec.tables.estimate_bits(y_enc.transpose(2, 0, 1)[None], band_rows=16)
    assert stats["ideal_bits"] == pytest.approx(est["bits_ctx"], rel=1e-9, abs=1e-5)
    size_bytes = (tmp_path / "a.bin").stat().st_size
    assert stats["bytes"] == size_bytes == 40 + stats["payload_bytes"]
    assert f"{8 * size_bytes / (w * h):.6f} bpp" in dec.stdout
    # decoding is deterministic, and PPM output holds the same pixels
    dec2 = run([codec.decoder, tmp_path / "a.bin", tmp_path / "out2.ppm"])
    assert dec2.returncode == 0, dec2.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out2.ppm")), out)


def test_bands_threads_and_old_streams(codec: Codec, tmp_path: Path) -> None:
    # Bitstream 2.0: the latent is coded in bands of --band-rows latent rows, one
    # independent sub-stream each, coded and decoded in parallel. The bitstream must not
    # depend on the thread count, the pixels on neither, and the container must be what
    # docs/bitstream.md says (read by the independent Python reader).
    w, h = 40, 100  # latent 7 x 3
    src = random_image(tmp_path / "in.png", w, h, seed=21)
    pixels = None
    for rows in (1, 2, 3, 16):
        streams = set()
        for threads in (1, 2, 3):
            enc = run([codec.encoder, src, tmp_path / "a.bin", "--band-rows", rows, "--threads",
                       threads, "--stats", "--dump-latent", tmp_path / "y.npy"])
            assert enc.returncode == 0, enc.stderr
            streams.add((tmp_path / "a.bin").read_bytes())
        assert len(streams) == 1, f"bitstream depends on the thread count (band rows {rows})"
        data = streams.pop()
        info = read_stream(data)
        stats = json.loads(enc.stdout)
        # the oldest version that can express it: one band is a 1.0 stream
        assert info.version == ((2, 0) if rows < 7 else (1, 0))
        assert (info.width, info.height) == (w, h)
        assert (info.latent_h, info.latent_w, info.channels) == (7, 3, CHANNELS)
        assert info.band_rows == min(rows, 7) and len(info.substreams) == -(-7 // rows)
        assert stats["bands"] == len(info.substreams)
        assert sum(n for _, n in info.substreams) + 4 * (len(info.substreams) - 1) == \
            stats["payload_bytes"]
        y = np.load(tmp_path / "y.npy").transpose(2, 0, 1)[None]
        est = codec.tables.estimate_bits(y, band_rows=rows)
        assert stats["ideal_bits"] == pytest.approx(est["bits_ctx"], rel=1e-9, abs=1e-5)
        for threads in (1, 3):
            dec = run([codec.decoder, tmp_path / "a.bin", tmp_path / "o.ppm", "--threads",
                       threads])
            assert dec.returncode == 0, dec.stderr
            out = (tmp_path / "o.ppm").read_bytes()
            pixels = pixels or out
            assert out == pixels, f"pixels depend on band rows {rows} / threads {threads}"
    # Bands at least as tall as the latent: a 1.0 stream, which still decodes; the same
    # latent as a (legal, never written) one-band 2.0 stream decodes alike, and the Python
    # reader turns it back into the 1.0 stream byte for byte.
    assert run([codec.encoder, src, tmp_path / "one.bin", "--band-rows", 100]).returncode == 0
    v1 = (tmp_path / "one.bin").read_bytes()
    assert read_stream(v1).version == (1, 0)
    v2 = bytearray(v1)
    v2[4:6] = b"\x02\x00"
    v2[22:24] = (7).to_bytes(2, "little")
    (tmp_path / "v2.bin").write_bytes(fix_checksum(v2))
    assert as_version1((tmp_path / "v2.bin").read_bytes()) == v1
    for name in ("one", "v2"):
        dec = run([codec.decoder, tmp_path / f"{name}.bin", tmp_path / f"{name}.ppm"])
        assert dec.returncode == 0, dec.stderr
        assert (tmp_path / f"{name}.ppm").read_bytes() == pixels
    # Corrupt sub-stream tables (checksum repaired): one-line refusals.
    assert run([codec.encoder, src, tmp_path / "b.bin", "--band-rows", 2]).returncode == 0
    good = bytearray((tmp_path / "b.bin").read_bytes())
    for offset, value, message in ((22, b"\0\0", "band height"),
                                   (40, b"\xff\xff\xff\xff", "exceed the payload")):
        bad = bytearray(good)
        bad[offset:offset + len(value)] = value
        (tmp_path / "bad.bin").write_bytes(fix_checksum(bad))
        proc = run([codec.decoder, tmp_path / "bad.bin", tmp_path / "bad.ppm"])
        assert_clean_failure(proc, tmp_path / "bad.ppm")
        assert message in proc.stderr
    proc = run([codec.encoder, src, tmp_path / "c.bin", "--band-rows", 0])
    assert_clean_failure(proc, tmp_path / "c.bin")


def test_ppm_and_grayscale_inputs(codec: Codec, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (21, 19), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    (tmp_path / "g.ppm").write_bytes(b"P6\n# comment\n19 21\n255\n" + rgb.tobytes())
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    for name in ("g.png", "g.ppm", "rgb.png"):
        proc = run([codec.encoder, tmp_path / name, tmp_path / f"{name}.bin"])
        assert proc.returncode == 0, proc.stderr
    # grayscale is converted to RGB: all three give the same bitstream
    ref = (tmp_path / "rgb.png.bin").read_bytes()
    assert (tmp_path / "g.png.bin").read_bytes() == ref
    assert (tmp_path / "g.ppm.bin").read_bytes() == ref
    # A named pipe (no size to read ahead) gives the same as the file, both ways.
    import os
    import threading

    for src, prog, out in ((tmp_path / "rgb.png", codec.encoder, "p.bin"),
                           (tmp_path / "rgb.png.bin", codec.decoder, "p.ppm")):
        fifo = tmp_path / f"fifo-{out}"
        os.mkfifo(fifo)
        feed = threading.Thread(target=lambda f=fifo, s=src: f.write_bytes(s.read_bytes()))
        feed.start()
        proc = run([prog, fifo, tmp_path / out])
        feed.join()
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.bin").read_bytes() == ref
    run([codec.decoder, tmp_path / "rgb.png.bin", tmp_path / "f.ppm"])
    assert (tmp_path / "p.ppm").read_bytes() == (tmp_path / "f.ppm").read_bytes()


def test_bad_images(codec: Codec, tmp_path: Path) -> None:
    out = tmp_path / "o.bin"
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16)).save(tmp_path / "16.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8), "RGBA").save(
        tmp_path / "alpha.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    good = (tmp_path / "ok.png").read_bytes()
    cases = {
        "missing.png": None,
        "text.png": b"hello, not an image\n",
        "empty.ppm": b"",
        "zero.ppm": b"P6\n0 0\n255\n",
        "huge.ppm": b"P6\n100000 100000\n255\n",
        "deep.ppm": b"P6\n2 2\n65535\n" + bytes(24),
        "short.ppm": b"P6\n4 4\n255\n" + bytes(10),
        "ascii.ppm": b"P3\n1 1\n255\n0 0 0\n",
        "cut.png": good[: len(good) // 2],
        "16.png": "keep",
        "alpha.png": "keep",
    }
    for name, content in cases.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        proc = run([codec.encoder, tmp_path / name, out])
        assert_clean_failure(proc, out)
        assert name in proc.stderr, proc.stderr  # the message names the file
    assert "16-bit" in run([codec.encoder, tmp_path / "16.png", out]).stderr
    assert "alpha" in run([codec.encoder, tmp_path / "alpha.png", out]).stderr
    # command-line misuse
    for args in ([], [tmp_path / "ok.png"], [tmp_path / "ok.png", out, "--bogus"]):
        assert_clean_failure(run([codec.encoder, *args]), out)
    assert run([codec.encoder, "--help"]).returncode == 0


def fix_checksum(data: bytearray) -> bytes:
    """Recompute the header checksum (docs/bitstream.md) so corruption reaches the payload."""
    h = 0x811C9DC5
    for b in bytes(data[:36]) + bytes(data[40:]):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    data[36:40] = struct.pack("<I", h)
    return bytes(data)


def test_decoder_fuzzing(codec: Codec, tmp_path: Path) -> None:
    src = random_image(tmp_path / "in.png", 24, 20, seed=7)
    assert run([codec.encoder, src, tmp_path / "a.bin"]).returncode == 0
    data = (tmp_path / "a.bin").read_bytes()
    out = tmp_path / "out.png"
    bad = tmp_path / "bad.bin"
    streams: list[bytes] = [data[:n] for n in range(len(data))]  # every truncation, incl. empty
    streams += [data + b"\0", b"LICX" + data[4:], b"\x89PNG\r\n\x1a\n" + bytes(40)]
    streams.append(fix_checksum(bytearray(data[:4] + b"\x03" + data[5:])))  # future version
    rng = np.random.default_rng(5)
    flipped = []
    for _ in range(40):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
        flipped.append(bytes(d))
    streams += flipped  # all caught by the checksum
    for d in streams:
        bad.write_bytes(d)
        assert_clean_failure(run([codec.decoder, bad, out]), out)
    # With the checksum recomputed, the flips reach the header checks and the range
    # decoder: a clean error, or (payload bits only) another valid latent -- never a crash.
    refused = 0
    for d in flipped[:25]:
        bad.write_bytes(fix_checksum(bytearray(d)))
        proc = run([codec.decoder, bad, out])
        if proc.returncode == 0:
            out.unlink()
            continue
        assert_clean_failure(proc, out)
        refused += 1
    assert refused > 0


def test_reserved_fields_and_minor_version_are_ignored(codec: Codec, tmp_path: Path) -> None:
    # docs/bitstream.md: reserved bytes (offsets 7, 22-23) and a higher minor version are
    # for compatible additions: a decoder of this version decodes such a stream as before.
    src = random_image(tmp_path / "in.png", 20, 18, seed=11)
    assert run([codec.encoder, src, tmp_path / "a.bin"]).returncode == 0
    assert run([codec.decoder, tmp_path / "a.bin", tmp_path / "a.ppm"]).returncode == 0
    data = bytearray((tmp_path / "a.bin").read_bytes())
    data[5], data[7], data[22], data[23] = 9, 0xA5, 0x5A, 0xFF
    (tmp_path / "b.bin").write_bytes(fix_checksum(data))
    assert run([codec.decoder, tmp_path / "b.bin", tmp_path / "b.ppm"]).returncode == 0
    assert (tmp_path / "b.ppm").read_bytes() == (tmp_path / "a.ppm").read_bytes()


def test_other_models_bitstream_is_refused(codec: Codec, tmp_path: Path) -> None:
    src = random_image(tmp_path / "in.png", 16, 16, seed=9)
    assert run([codec.encoder, src, tmp_path / "a.bin"]).returncode == 0
    data = bytearray((tmp_path / "a.bin").read_bytes())
    data[24] ^= 0x5A  # another model's fingerprint, valid checksum
    (tmp_path / "b.bin").write_bytes(fix_checksum(data))
    proc = run([codec.decoder, tmp_path / "b.bin", tmp_path / "out.png"])
    assert_clean_failure(proc, tmp_path / "out.png")
    assert "another model" in proc.stderr
    # tables refitted on other latents change the fingerprint too
    other = EntropyModel.load(codec.tables_path)
    other.channels[0].offset += 0.5
    assert other.fingerprint() != codec.tables.fingerprint()


def test_programs_stand_alone(codec: Codec, tmp_path: Path) -> None:
    # Copied away from the build folder and run with an empty environment: no model file,
    # no Python, no libpng needed (linked statically when its archive exists).
    import shutil

    for exe in (codec.encoder, codec.decoder):
        shutil.copy2(exe, tmp_path / exe.name)
    src = random_image(tmp_path / "in.png", 9, 5, seed=11)
    env: dict[str, str] = {}
    assert run([tmp_path / "encoder", src, tmp_path / "a.bin"], env=env, cwd=tmp_path
               ).returncode == 0
    proc = run([tmp_path / "decoder", tmp_path / "a.bin", tmp_path / "b.ppm"], env=env,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    if Path("/usr/lib/x86_64-linux-gnu/libpng16.a").is_file():
        libs = run(["ldd", tmp_path / "decoder"]).stdout
        assert "libpng" not in libs and "libz" not in libs and "libdeflate" not in libs


def test_codec_halves_compile_without_libpng(codec: Codec, tmp_path: Path) -> None:
    # The codec core, the entropy coder and the encoder/decoder halves as a library: a
    # <png.h> that refuses to compile sits first on the include path, and nothing of
    # libpng is on the link line. The bitstream and pixels must equal the programs'.
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "png.h").write_text('#error "the codec core must not include libpng"\n')
    src = cpp_dir().parent / "tests" / "cpp" / "codec_core.cpp"
    exe = compile_program([src], "codec-core-asan", sanitize=True, include_dirs=[poison])
    pngs = [p for p in source_closure([src]) if "#include <png.h>" in p.read_text()]
    assert pngs == [], pngs
    # ... while the image file I/O does include it (so the poison above is meaningful)
    io = cpp_dir() / "codec" / "io" / "image_file.hpp"
    assert "#include <png.h>" in io.read_text()

    w, h = 37, 21
    png = random_image(tmp_path / "in.png", w, h, seed=5)
    rgb = np.asarray(Image.open(png)).astype(np.float32)
    np.save(tmp_path / "in.npy", rgb)
    multiple = downsampling_factor(read_licm(codec.folder / "g_a.licm"))
    proc = run([exe, codec.folder / "g_a.licm", codec.folder / "g_s.licm", codec.tables_path,
                multiple, tmp_path / "in.npy", tmp_path / "core.bin", tmp_path / "core.npy"])
    assert proc.returncode == 0, proc.stderr
    assert run([codec.encoder, png, tmp_path / "prog.bin"]).returncode == 0
    assert (tmp_path / "core.bin").read_bytes() == (tmp_path / "prog.bin").read_bytes()
    assert run([codec.decoder, tmp_path / "prog.bin", tmp_path / "prog.png"]).returncode == 0
    decoded = np.load(tmp_path / "core.npy")
    assert decoded.shape == (h, w, 3)
    assert np.array_equal(decoded.astype(np.uint8), np.asarray(Image.open(tmp_path / "prog.png")))
