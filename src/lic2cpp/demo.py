"""`lic2cpp demo`: the shipped default model, built into a codec and tried on a few images.

Works on a fresh machine with no download: the default model and its entropy tables (fitted
on the training photos, see docs/default-model.md) ship inside the package, and when no
Kodak images are around the demo generates its own test images.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp.errors import LicError

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_MODEL = "default_model.pth"
DEFAULT_ENTROPY = "default_entropy.lice"
IMAGE_SUFFIXES = {".png", ".ppm"}  # what the encoder reads directly
OTHER_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}  # converted to PPM first
# The checkout layout the tests and docs use: ../shared/data/{kodak,photos} from the root.
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_model_path() -> Path:
    """The default model shipped in the package (a ``{"model": net}`` checkpoint)."""
    path = DATA_DIR / DEFAULT_MODEL
    if not path.is_file():
        raise LicError(f"the default model is missing from the package ({path})")
    return path


def default_entropy_path() -> Path:
    """Entropy tables fitted for the default model on the training photos (``.lice``)."""
    path = DATA_DIR / DEFAULT_ENTROPY
    if not path.is_file():
        raise LicError(f"the default model's entropy tables are missing ({path})")
    return path


def shared_data(name: str) -> Path | None:
    """``../shared/data/NAME`` next to the working folder or the checkout, if present."""
    for base in (Path.cwd(), REPO_ROOT):
        folder = (base.parent / "shared" / "data" / name).resolve()
        if folder.is_dir():
            return folder
    return None


# ----------------------------------------------------------------------------- images


def generated_image(seed: int, width: int = 256, height: int = 192) -> np.ndarray:
    """A deterministic test picture: smooth gradients, discs, stripes and fine texture.

    Photos are not needed to show the codec works; these mix the flat areas, edges and
    texture a codec is judged on.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3))
    for c in range(3):  # a tilted colour gradient
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 80 * np.tanh((a * xx + b * yy) / 150 + rng.uniform(-1, 1))
    for _ in range(6):  # soft-edged discs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 60)
        mask = 1 / (1 + np.exp((np.hypot(xx - cx, yy - cy) - r) / 1.5))
        img = img * (1 - mask[..., None]) + rng.uniform(0, 255, 3) * mask[..., None]
    period, angle = rng.uniform(6, 20), rng.uniform(0, math.pi)  # a striped band
    band = (np.abs(yy - height / 2) < height / 8)[..., None]
    stripes = 40 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    img = img + band * stripes[..., None]
    img += rng.normal(0, 4, img.shape)  # sensor-like noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_generated_images(folder: Path, count: int = 3) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"generated-{i + 1}.png"
        Image.fromarray(generated_image(seed=i + 1)).save(path)
        paths.append(path)
    return paths


def pick_images(images_dir: Path | None, count: int, work: Path) -> tuple[list[Path], str]:
    """The images to round-trip and a word saying where they came from."""
    if images_dir is not None:
        if not images_dir.is_dir():
            raise LicError(f"--images: {images_dir} is not a folder")
        found = sorted(p for p in images_dir.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES | OTHER_SUFFIXES)
        if not found:
            raise LicError(f"--images: no images (PNG, PPM, JPEG, ...) in {images_dir}")
        return found[:count], str(images_dir)
    kodak = shared_data("kodak")
    if kodak is not None:
        found = sorted(kodak.glob("*.png"))
        if found:
            return found[:count], f"Kodak ({kodak})"
    return write_generated_images(work / "images", min(count, 3)), "generated"


# ----------------------------------------------------------------------------- codec


def build_default_codec(out_dir: Path, training_set: Path | None,
                        log: Any = print) -> tuple[Path, Path]:
    """Encoder and decoder of the default model in ``out_dir``.

    With a training set, the full cached ``lic2cpp build`` (convert, fit, codegen);
    without one, the shipped entropy tables skip the fit.
    """
    if training_set is not None:
        from lic2cpp.build import BuildOptions, build

        result = build(BuildOptions(model=default_model_path(), training_set=training_set,
                                    out_dir=out_dir, log=log))
        return result.encoder, result.decoder
    from lic2cpp.codegen import build_codec
    from lic2cpp.convert import convert_model
    from lic2cpp.load import load_model

    out_dir.mkdir(parents=True, exist_ok=True)
    log("converting the default model's transforms")
    ga, gs = convert_model(load_model(default_model_path()), out_dir)
    log("generating and compiling the encoder and decoder (shipped entropy tables)")
    enc, dec = build_codec(ga, gs, default_entropy_path(), out_dir)
    return Path(enc), Path(dec)


@dataclass
class RoundTrip:
    name: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    seconds: float


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise LicError(f"cannot read image {path}: {exc}") from exc


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run_exe(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "(no message)").splitlines()
        raise LicError(f"{Path(cmd[0]).name} failed on {Path(cmd[1]).name}: {lines[-1]}")


def round_trip(encoder: Path, decoder: Path, image: Path, work: Path) -> RoundTrip:
    rgb = read_rgb(image)
    src = image
    if image.suffix.lower() not in IMAGE_SUFFIXES:  # the encoder reads PNG and PPM
        from PIL import Image

        src = work / (image.stem + ".ppm")
        Image.fromarray(rgb).save(src)
    bits = work / (image.stem + ".bin")
    out = work / (image.stem + ".decoded.png")
    start = time.perf_counter()
    run_exe([str(encoder), str(src), str(bits)])
    run_exe([str(decoder), str(bits), str(out)])
    seconds = time.perf_counter() - start
    decoded = read_rgb(out)
    if decoded.shape != rgb.shape:
        raise LicError(f"decoded {image.name} has shape {decoded.shape}, expected {rgb.shape}")
    h, w = rgb.shape[:2]
    size = bits.stat().st_size
    return RoundTrip(image.name, w, h, size, size * 8 / (w * h), psnr(rgb, decoded), seconds)


def format_results(results: list[RoundTrip]) -> str:
    lines = [f"{'image':<20} {'size':>9} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'time s':>7}"]
    for r in results:
        lines.append(f"{r.name:<20} {f'{r.width}x{r.height}':>9} {r.bytes:>8} {r.bpp:>7.4f} "
                     f"{r.psnr:>8.2f} {r.seconds:>7.2f}")
    if results:
        bpp = sum(r.bpp for r in results) / len(results)
        ps = sum(r.psnr for r in results) / len(results)
        lines.append(f"{'average':<20} {'':>9} {'':>8} {bpp:>7.4f} {ps:>8.2f}")
    return "\n".join(lines)


def demo(out_dir: Path, images_dir: Path | None = None, count: int = 4,
         training_set: Path | None = None, log: Any = print) -> list[RoundTrip]:
    encoder, decoder = build_default_codec(out_dir, training_set, log=log)
    images, origin = pick_images(images_dir, count, out_dir)
    log(f"round-tripping {len(images)} image(s): {origin}")
    work = out_dir / "roundtrip"
    work.mkdir(parents=True, exist_ok=True)
    return [round_trip(encoder, decoder, im, work) for im in images]


# ----------------------------------------------------------------------------- CLI


def run(args: argparse.Namespace) -> int:
    if args.count <= 0:
        raise LicError("--count must be positive")
    training_set = args.training_set
    if training_set is None and not args.shipped_tables:
        training_set = shared_data("photos")
    results = demo(Path(args.output), args.images, args.count, training_set)
    print(format_results(results))
    print(f"encoder: {Path(args.output) / 'encoder'}   decoder: {Path(args.output) / 'decoder'}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="build the default model's encoder/decoder and round-trip a few images",
        description="Build OUT/encoder and OUT/decoder from the model shipped with lic2cpp, "
                    "then encode and decode a few images (Kodak from ../shared/data/kodak "
                    "when present, otherwise generated ones) and print bpp and PSNR.",
    )
    p.add_argument("-o", "--output", default="lic2cpp-demo", metavar="OUT",
                   help="output folder for the executables and decoded images")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="round-trip the images of DIR instead (PNG/PPM; JPEG, BMP, TIFF and "
                        "WebP are converted to PPM first)")
    p.add_argument("--count", type=int, default=4, help="at most this many images")
    p.add_argument("--training-set", type=Path, default=None, metavar="PATH",
                   help="refit the entropy tables on PATH (default: ../shared/data/photos "
                        "when present, else the tables shipped with the model)")
    p.add_argument("--shipped-tables", action="store_true",
                   help="use the shipped entropy tables even when photos are present")
    p.set_defaults(func=run)
