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


# The Huffman-only deflate coder (cpp/codec/io/deflate_huffman.hpp) on its own.

def code_lengths(png_tool: Path, limit: int, freq: list[int]) -> list[int]:
    proc = subprocess.run([str(png_tool), "--code-lengths", str(limit), *map(str, freq)],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def huffman_cost(freq: list[int]) -> tuple[int, int]:
    """Cost (sum of weight x length) and depth of an unconstrained Huffman code, by the
    textbook heap construction: each merge adds the merged weight once."""
    import heapq

    heap = [(f, 0) for f in freq if f]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        (a, da), (b, db) = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, (a + b, max(da, db) + 1))
    return cost, heap[0][1]


def best_limited_cost(freq: list[int], limit: int) -> int:
    """Cheapest complete code with lengths <= limit, by trying every non-decreasing length
    sequence for the weights sorted in decreasing order (fine for a dozen symbols)."""
    from fractions import Fraction
    from itertools import combinations_with_replacement

    w = sorted((f for f in freq if f), reverse=True)
    best = None
    for lens in combinations_with_replacement(range(1, limit + 1), len(w)):
        if sum(Fraction(1, 2 ** n) for n in lens) == 1:
            cost = sum(f * n for f, n in zip(w, lens, strict=True))
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


def kraft(lens: list[int]) -> float:
    return sum(2.0 ** -n for n in lens if n)


def test_code_lengths_unconstrained_are_huffman(png_tool: Path) -> None:
    rng = np.random.default_rng(5)
    freq = [int(f) for f in rng.integers(30, 5000, 257)]
    freq[3] = 0  # an unused symbol gets no code
    cost, depth = huffman_cost(freq)
    assert depth < 15  # the limit does not bind: the code must be a Huffman code
    lens = code_lengths(png_tool, 15, freq)
    assert lens[3] == 0 and all(n > 0 for f, n in zip(freq, lens, strict=True) if f)
    assert kraft(lens) == 1.0
    assert sum(f * n for f, n in zip(freq, lens, strict=True)) == cost


@pytest.mark.parametrize("n,limit", [(8, 4), (12, 5), (10, 7)])
def test_code_lengths_limited_are_optimal(png_tool: Path, n: int, limit: int) -> None:
    fib = [1, 1]
    while len(fib) < n:
        fib.append(fib[-1] + fib[-2])  # Fibonacci weights: a Huffman code n-1 bits deep
    lens = code_lengths(png_tool, limit, fib)
    assert max(lens) <= limit < n - 1 and kraft(lens) == 1.0
    assert sum(f * k for f, k in zip(fib, lens, strict=True)) == best_limited_cost(fib, limit)


def test_code_lengths_deflate_limit(png_tool: Path) -> None:
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    lens = code_lengths(png_tool, 15, fib + [0] * 217)
    assert max(lens) == 15 and kraft(lens) == 1.0
    assert code_lengths(png_tool, 15, [0, 7, 0]) == [0, 1, 0]
    assert code_lengths(png_tool, 7, [0, 0]) == [0, 0]


@pytest.mark.parametrize("kind", ["empty", "one", "skewed", "random", "long"])
def test_huffman_only_deflate_round_trip(png_tool: Path, tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(11)
    data = {
        "empty": b"",
        "one": b"\x05",
        # Paeth-residual-like: mostly small values, a Fibonacci-like tail to the rare ones
        "skewed": np.minimum(rng.geometric(0.45, 200_000), 255).astype(np.uint8).tobytes(),
        "random": rng.integers(0, 256, 150_000, dtype=np.uint8).tobytes(),  # stored blocks
        "long": bytes(300_000),  # one symbol: a 1-bit code
    }[kind]
    (tmp_path / "in").write_bytes(data)
    subprocess.run([str(png_tool), "--deflate", str(tmp_path / "in"), str(tmp_path / "out")],
                   check=True, timeout=60)
    out = (tmp_path / "out").read_bytes()
    assert zlib.decompress(out, wbits=-15) == data
    btype = (out[0] >> 1) & 3
    # stored where that is smaller (noise, a header would outweigh a byte or two)
    assert btype == (0 if kind in ("empty", "one", "random") else 2)
    if kind == "skewed":  # within a few bytes of the entropy-coded size
        counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
        p = counts[counts > 0] / len(data)
        assert len(out) < 1.01 * float(-(counts[counts > 0] * np.log2(p)).sum() / 8) + 200
