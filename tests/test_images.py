"""lic2cpp.images: the one reading policy (checked against Pillow and by hand), writing,
PSNR and bpp by hand, and round trips through stand-in encoder/decoder programs."""

from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lic2cpp.errors import LicError
from lic2cpp.images import (
    bpp,
    encoder_input,
    image_size,
    is_8bit_rgb_png,
    list_images,
    psnr,
    read_rgb,
    round_trip,
    write_rgb,
)


def rand_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png16_rgb(path: Path, samples: np.ndarray) -> Path:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = samples.shape
    raw = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


# --- reading -----------------------------------------------------------------------------

def test_read_rgb_modes(tmp_path: Path) -> None:
    rgb = rand_rgb(7, 5, seed=9)
    gray = rgb[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png"), np.stack([gray] * 3, -1))
    rgba = np.concatenate([rgb, np.full((7, 5, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgb)  # alpha dropped
    g16 = (gray.astype(np.uint16) * 257).astype(np.uint16)  # 8-bit values scaled to 16 bits
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g16.png")[:, :, 1], gray)
    with pytest.raises(LicError, match="not found"):
        read_rgb(tmp_path / "none.png")


def test_16_bit_keeps_the_high_byte_gray_and_rgb_alike(tmp_path: Path) -> None:
    samples = np.array([[[0x1280, 0x34FF, 0xFFFF], [0x0000, 0x00FF, 0x7F7F]]], np.uint16)
    expected = (samples >> 8).astype(np.uint8)  # by hand: 0x12, 0x34, 0xFF / 0, 0, 0x7F
    np.testing.assert_array_equal(read_rgb(png16_rgb(tmp_path / "c16.png", samples)), expected)
    Image.fromarray(samples[:, :, 1].copy()).save(tmp_path / "g16.png")  # 0x34FF, 0x00FF
    np.testing.assert_array_equal(read_rgb(tmp_path / "g16.png")[0, :, 0], [0x34, 0x00])


def test_read_rgb_equals_pillow_for_8_bit_formats(tmp_path: Path) -> None:
    rgb = rand_rgb(9, 11, seed=2)
    for name in ("x.png", "x.ppm", "x.bmp", "x.tif", "x.webp", "x.jpg"):
        Image.fromarray(rgb).save(tmp_path / name)
        with Image.open(tmp_path / name) as im:
            want = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(read_rgb(tmp_path / name), want)
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")  # palette: expanded
    with Image.open(tmp_path / "pal.png") as im:
        np.testing.assert_array_equal(read_rgb(tmp_path / "pal.png"), np.asarray(im.convert("RGB")))


def test_broken_and_size(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(LicError, match="cannot read image .*broken.png"):
        read_rgb(tmp_path / "broken.png")
    with pytest.raises(LicError, match="cannot read image"):
        image_size(tmp_path / "broken.png")
    write_rgb(tmp_path / "s.png", rand_rgb(3, 8))
    assert image_size(tmp_path / "s.png") == (8, 3)


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.ppm", "d.webp", "e.tiff"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()  # a folder is not an image
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.ppm", "d.webp",
                                                       "e.tiff"]
    with pytest.raises(LicError, match="--images: .* is not a folder"):
        list_images(tmp_path / "missing", "--images")


def test_write_rgb(tmp_path: Path) -> None:
    rgb = rand_rgb(4, 6, seed=4)
    for name in ("w.png", "w.ppm"):
        write_rgb(tmp_path / name, rgb)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), rgb)
    assert (tmp_path / "w.ppm").read_bytes() == b"P6\n6 4\n255\n" + rgb.tobytes()
    with pytest.raises(LicError, match="uint8"):
        write_rgb(tmp_path / "bad.png", rgb.astype(np.float32))


# --- what the encoder reads as is --------------------------------------------------------

def test_only_8_bit_rgb_png_goes_to_the_encoder_as_is(tmp_path: Path) -> None:
    rgb = rand_rgb(6, 6, seed=5)
    write_rgb(tmp_path / "rgb.png", rgb)
    assert is_8bit_rgb_png(tmp_path / "rgb.png")
    Image.fromarray(rgb[:, :, 0], "L").save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).save(tmp_path / "trns.png", transparency=(0, 0, 0))
    png16_rgb(tmp_path / "c16.png", rgb.astype(np.uint16) * 257)
    write_rgb(tmp_path / "rgb.ppm", rgb)
    write_rgb(tmp_path / "rgb.jpg", rgb)
    for name in ("gray.png", "rgba.png", "trns.png", "c16.png", "rgb.ppm", "rgb.jpg"):
        assert not is_8bit_rgb_png(tmp_path / name), name
    assert encoder_input(tmp_path / "rgb.png", rgb, tmp_path) == tmp_path / "rgb.png"
    ref = read_rgb(tmp_path / "c16.png")
    given = encoder_input(tmp_path / "c16.png", ref, tmp_path)
    assert given == tmp_path / "c16.input.ppm"
    assert given.read_bytes() == b"P6\n6 6\n255\n" + ref.tobytes()


# --- metrics -----------------------------------------------------------------------------

def test_psnr_by_hand() -> None:
    a = np.full((4, 6, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # one error of 10 over 72 samples: MSE = 100 / 72
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 72 / 100), abs=1e-12)
    c = a + 1  # every sample off by 1: MSE = 1
    assert psnr(a, c) == pytest.approx(20 * math.log10(255), abs=1e-12)
    assert psnr(a, a) == math.inf
    # values that overflow uint8 arithmetic must not wrap
    assert psnr(np.zeros_like(a), np.full_like(a, 255)) == pytest.approx(0.0, abs=1e-12)
    z = np.zeros((2, 2, 3), np.uint8)
    y = z.copy()
    y[0, 0, 0] = 10  # MSE = 100 / 12
    assert psnr(z, y) == pytest.approx(10 * math.log10(255**2 * 12 / 100))
    with pytest.raises(LicError, match="shape mismatch"):
        psnr(a, z)


def test_bpp() -> None:
    assert bpp(1000, 100, 80) == pytest.approx(1.0)
    assert bpp(3, 2, 2) == pytest.approx(6.0)


# --- round trips (stand-in programs: the real codec's are in test_demo and test_build) ---

def stand_in(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\nimport sys, shutil\nfrom PIL import Image\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture()
def programs(tmp_path: Path) -> tuple[Path, Path]:
    """'encoder' copies its input file as the bitstream; 'decoder' writes it as an image."""
    enc = stand_in(tmp_path / "encoder", "shutil.copyfile(sys.argv[1], sys.argv[2])")
    dec = stand_in(tmp_path / "decoder", "Image.open(sys.argv[1]).convert('RGB')"
                                         ".save(sys.argv[2])")
    return enc, dec


def test_round_trip(tmp_path: Path, programs: tuple[Path, Path]) -> None:
    enc, dec = programs
    work = tmp_path / "work"
    work.mkdir()
    rgb = rand_rgb(5, 7, seed=6)
    write_rgb(tmp_path / "x.png", rgb)
    coded = round_trip(enc, dec, tmp_path / "x.png", work)
    assert coded.bitstream == work / "x.bin"
    assert coded.bitstream.read_bytes() == (tmp_path / "x.png").read_bytes()  # given as is
    assert coded.bytes == (tmp_path / "x.png").stat().st_size
    assert (coded.width, coded.height) == (7, 5)
    assert coded.bpp == pytest.approx(coded.bytes * 8 / 35)
    np.testing.assert_array_equal(coded.decoded, rgb)
    assert coded.psnr == math.inf and (work / "x.decoded.png").is_file()

    rgba = np.dstack([rgb, np.full((5, 7, 1), 9, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "y.png")
    coded = round_trip(enc, dec, tmp_path / "y.png", work, decoded_suffix=".ppm",
                       keep_decoded=False)
    assert coded.bitstream.read_bytes()[:2] == b"P6"  # the encoder was given a PPM
    np.testing.assert_array_equal(coded.decoded, rgb)
    assert not (work / "y.decoded.ppm").exists()


def test_round_trip_errors(tmp_path: Path, programs: tuple[Path, Path]) -> None:
    enc, dec = programs
    write_rgb(tmp_path / "x.png", rand_rgb(4, 4))
    failing = stand_in(tmp_path / "failing", "print('bad input', file=sys.stderr); sys.exit(3)")
    with pytest.raises(LicError, match=r"encoder on x.png failed \(exit 3\): bad input"):
        round_trip(failing, dec, tmp_path / "x.png", tmp_path)
    with pytest.raises(LicError, match="program not found"):
        round_trip(enc, tmp_path / "nope", tmp_path / "x.png", tmp_path)
    cropping = stand_in(tmp_path / "cropping", "Image.open(sys.argv[1]).crop((0, 0, 2, 2))"
                                               ".convert('RGB').save(sys.argv[2])")
    with pytest.raises(LicError, match="decoder gave a 2x2 image for x.png"):
        round_trip(enc, cropping, tmp_path / "x.png", tmp_path)
