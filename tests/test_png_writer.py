"""The decoder's PNG writer (cpp/codec/io/png_encode.hpp): its files must be standard PNGs
that Pillow and libpng read back as the very pixels written, the same file for any thread
count, at every size (one pixel, one row, one column, several strips, several IDAT chunks).
Driven through tests/cpp/png_tool.cpp, built with ASan+UBSan."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lic2cpp.codegen import png_link_args
from lic2cpp.toolchain import compile_program, cpp_dir


@pytest.fixture(scope="module")
def png_tool() -> Path:
    source = cpp_dir().parent / "tests" / "cpp" / "png_tool.cpp"
    return compile_program([source], "png-tool-asan", sanitize=True, libs=png_link_args())


def image(h: int, w: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":  # incompressible: the deflate stream is as large as the pixels
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((h, w, 3), 77, np.uint8)
    # smooth, like a decoded image
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + yy) % 256, (yy * 2) % 256, (xx ^ yy) % 256], axis=2)
    return (img + rng.integers(0, 3, (h, w, 3))).astype(np.uint8)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, checking each CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        pos += 12 + n
    return out


@pytest.mark.parametrize("h,w,kind", [
    (1, 1, "smooth"), (1, 333, "smooth"), (300, 1, "noise"), (129, 257, "smooth"),
    (256, 64, "flat"), (700, 600, "noise"),
])
def test_png_round_trip(png_tool: Path, tmp_path: Path, h: int, w: int, kind: str) -> None:
    rgb = image(h, w, kind, seed=h * 1000 + w)
    Image.fromarray(rgb).save(tmp_path / "in.ppm")
    files = []
    for threads in (1, 2, 3):
        out = tmp_path / f"t{threads}.png"
        proc = subprocess.run([str(png_tool), str(tmp_path / "in.ppm"), str(out), str(threads)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr  # libpng read the pixels back (in C++)
        info = json.loads(proc.stdout)
        files.append(out.read_bytes())
    assert files[1] == files[0] and files[2] == files[0], "the file depends on the threads"
    data = files[0]
    assert info["bytes"] == len(data)
    with Image.open(tmp_path / "t1.png") as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (w, h)
        assert np.array_equal(np.asarray(im), rgb)
    parts = chunks(data)
    kinds = [k for k, _ in parts]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert set(kinds[1:-1]) == {b"IDAT"} and kinds.count(b"IDAT") == info["idat"]
    assert all(len(body) <= 1 << 20 for k, body in parts if k == b"IDAT")
    if kind == "noise" and h * w * 3 > 1 << 20:
        assert info["idat"] >= 2
    # one zlib stream whose rows all carry the Paeth filter (type 4)
    raw = zlib.decompress(b"".join(body for k, body in parts if k == b"IDAT"))
    assert len(raw) == h * (3 * w + 1)
    assert all(raw[r * (3 * w + 1)] == 4 for r in range(h))


def read_back(png_tool: Path, path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(png_tool), "--read", str(path), str(tmp_path / "back.ppm")],
                          capture_output=True, text=True, timeout=300)


def test_png_reading_matches_pillow(png_tool: Path, tmp_path: Path) -> None:
    # The encoder reads the common PNG (8-bit RGB, no colour-space chunks) on a fast path
    # (libdeflate + its own unfiltering) and everything else through libpng: either way the
    # pixels must be Pillow's. Pillow's writer uses all five filter types and several IDAT
    # chunks; grayscale and palette images take the libpng path.
    from PIL import PngImagePlugin

    rgb = image(300, 257, "smooth", 1)
    noise = image(200, 300, "noise", 2)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("comment", "an ancillary chunk the fast path skips")
    cases = {
        "level0.png": (Image.fromarray(rgb), {"compress_level": 0}),
        "level1.png": (Image.fromarray(rgb), {"compress_level": 1}),
        "level9.png": (Image.fromarray(rgb), {"compress_level": 9}),
        "noise.png": (Image.fromarray(noise), {}),
        "text.png": (Image.fromarray(rgb), {"pnginfo": meta}),
        "gray.png": (Image.fromarray(rgb[:, :, 0]), {}),
        "palette.png": (Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE), {}),
        "one.png": (Image.fromarray(rgb[:1, :1]), {}),
    }
    for name, (im, opts) in cases.items():
        im.save(tmp_path / name, **opts)
        proc = read_back(png_tool, tmp_path / name, tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
        want = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "back.ppm")), want), name


def test_png_reading_refuses_corrupt_files(png_tool: Path, tmp_path: Path) -> None:
    Image.fromarray(image(64, 48, "smooth", 3)).save(tmp_path / "ok.png")
    good = (tmp_path / "ok.png").read_bytes()
    idat = good.index(b"IDAT")
    bad = {
        "truncated.png": good[: len(good) // 2],
        "crc.png": good[: idat + 10] + bytes([good[idat + 10] ^ 0x40]) + good[idat + 11:],
    }
    # a corrupt zlib stream whose chunk CRC is repaired: libdeflate refuses it, libpng then
    # reports it
    (n,) = struct.unpack(">I", good[idat - 4: idat])
    body = bytearray(good[idat + 4: idat + 4 + n])
    body[len(body) // 2] ^= 0xFF
    body[-3] ^= 0x01  # and the Adler-32
    fixed = b"IDAT" + bytes(body)
    bad["zlib.png"] = (good[: idat] + fixed + struct.pack(">I", zlib.crc32(fixed))
                       + good[idat + 8 + n:])
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        proc = read_back(png_tool, tmp_path / name, tmp_path)
        assert proc.returncode == 1, name
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and name in err, (name, err)
        assert "AddressSanitizer" not in err and "runtime error" not in err
