"""Images: which files count as images, reading and writing them, PSNR, and round trips
through the built ``encoder``/``decoder`` programs. Every other module goes through here.

One reading policy everywhere (training sets, training, evaluation, the demo, benchmarks):
:func:`read_rgb` returns 8-bit RGB. Grayscale and palette images are expanded to RGB (as
the C++ encoder does); an alpha channel is dropped; 16-bit samples keep their high byte
(what Pillow does for 16-bit RGB PNG and PPM, applied to 16-bit grayscale too).

The C++ encoder is stricter (docs/bitstream.md#images): it reads 8-bit PNG and PPM only
and refuses 16-bit samples and alpha. :func:`round_trip` therefore hands it the file
itself only when it is an 8-bit RGB PNG, and otherwise a PPM of :func:`read_rgb`'s pixels,
so that the encoder always codes exactly the reference the metrics compare against.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lic2cpp.errors import LicError

# Files read as images (by suffix, any case). The C++ programs read PNG and PPM only.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff",
                  ".webp")
# Refuse images whose decoded size would be absurd (Pillow's own bomb check is a warning).
MAX_IMAGE_PIXELS = 1 << 28
# Pillow modes holding 16-bit (or wider integer) grayscale samples.
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_RGB_COLOR_TYPE = 2
PROGRAM_TIMEOUT_S = 3600


# --- files -------------------------------------------------------------------------------

def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path, what: str = "image folder") -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (possibly none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LicError(f"{what}: {folder} is not a folder")
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def image_size(path: str | Path) -> tuple[int, int]:
    """Width and height, from the header only."""
    try:
        with Image.open(path) as im:
            return im.width, im.height
    except FileNotFoundError as exc:
        raise LicError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise LicError(f"cannot read image {path}: {exc}") from exc


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as 8-bit RGB, shape (H, W, 3), with the policy of the module docstring."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise LicError(f"{path}: image too large ({im.width}x{im.height})")
            if im.mode in WIDE_GRAY_MODES:
                wide = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
                return np.repeat((wide >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise LicError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise LicError(f"cannot read image {path}: {exc}") from exc


def write_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 array; the format follows the suffix (PNG, PPM, ...)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LicError(f"write_rgb expects an (H, W, 3) uint8 array, got {rgb.dtype} "
                       f"{rgb.shape}")
    Image.fromarray(rgb).save(path)
    return Path(path)


def is_8bit_rgb_png(path: str | Path) -> bool:
    """True for a PNG of 8-bit RGB samples without transparency: a file the encoder reads
    exactly as :func:`read_rgb` does. (The header is checked: Pillow shows 16-bit RGB as
    8-bit.)"""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return False
    if head[24] != 8 or head[25] != PNG_RGB_COLOR_TYPE:
        return False
    with Image.open(path) as im:
        return "transparency" not in im.info


# --- metrics -----------------------------------------------------------------------------

def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (all channels together, peak 255); inf if equal."""
    if reference.shape != decoded.shape:
        raise LicError(f"shape mismatch: {reference.shape} vs {decoded.shape}")
    mse = float(np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def bpp(num_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of a ``num_bytes`` bitstream for a ``width`` × ``height`` image."""
    return 8.0 * num_bytes / (width * height)


# --- the built programs ------------------------------------------------------------------

def run_program(cmd: list[str], what: str) -> float:
    """Run one of the codec programs; its wall time in seconds; LicError on failure."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise LicError(f"{what}: program not found: {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LicError(f"{what}: timed out") from exc
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip() or "(no message)").splitlines()[-1]
        raise LicError(f"{what} failed (exit {proc.returncode}): {msg}")
    return seconds


def encoder_input(image: Path, rgb: np.ndarray, work: Path) -> Path:
    """The file to give the encoder: ``image`` itself if it reads it as ``rgb``, else a PPM
    of ``rgb`` in ``work``."""
    if is_8bit_rgb_png(image):
        return image
    return write_rgb(work / (image.stem + ".input.ppm"), rgb)


@dataclass
class CodedImage:
    """One image through ``encoder`` then ``decoder``."""

    reference: np.ndarray  # what the encoder was given (read_rgb of the image)
    decoded: np.ndarray
    bitstream: Path
    bytes: int
    encode_s: float  # process wall time (start-up and file I/O included)
    decode_s: float

    @property
    def width(self) -> int:
        return int(self.reference.shape[1])

    @property
    def height(self) -> int:
        return int(self.reference.shape[0])

    @property
    def bpp(self) -> float:
        return bpp(self.bytes, self.width, self.height)

    @property
    def psnr(self) -> float:
        return psnr(self.reference, self.decoded)


def round_trip(encoder: Path, decoder: Path, image: Path, work: Path, *,
               reference: np.ndarray | None = None, decoded_suffix: str = ".png",
               keep_decoded: bool = True, dump_latent: Path | None = None,
               encoder_args: Sequence[str] = ()) -> CodedImage:
    """Encode ``image`` to ``work/STEM.bin`` and decode it to ``work/STEM.decoded.SUFFIX``.

    ``reference`` is ``read_rgb(image)`` if the caller has it already; ``keep_decoded=False``
    deletes the decoded file (a large folder of images must not fill ``work``);
    ``dump_latent`` is passed to the decoder's ``--dump-latent``; ``encoder_args`` are added
    to the encoder's command line (e.g. ``["--rdoq", "0.001"]``).
    """
    rgb = read_rgb(image) if reference is None else reference
    bits = work / (image.stem + ".bin")
    out = work / (image.stem + ".decoded" + decoded_suffix)
    src = encoder_input(image, rgb, work)
    enc_s = run_program([str(encoder), str(src), str(bits), *encoder_args],
                        f"encoder on {image.name}")
    cmd = [str(decoder), str(bits), str(out)]
    if dump_latent is not None:
        cmd += ["--dump-latent", str(dump_latent)]
    dec_s = run_program(cmd, f"decoder on {image.name}")
    decoded = read_rgb(out)
    if not keep_decoded:
        out.unlink()
    if decoded.shape != rgb.shape:
        raise LicError(f"decoder gave a {decoded.shape[1]}x{decoded.shape[0]} image for "
                       f"{image.name} ({rgb.shape[1]}x{rgb.shape[0]})")
    return CodedImage(rgb, decoded, bits, bits.stat().st_size, enc_s, dec_s)
