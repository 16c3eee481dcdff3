"""`lic2cpp demo`: the shipped default model, built into a codec and tried on a few images.

Works on a fresh machine with no download: the default model and its entropy tables (fitted
on the training photos, see docs/default-model.md) ship inside the package, and when no
Kodak images are around the demo generates its own test images.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp import images
from lic2cpp.assets import default_entropy_path, default_model_path
from lic2cpp.build import BuildOptions, build
from lic2cpp.errors import LicError
from lic2cpp.images import list_images, write_rgb
from lic2cpp.toolchain import cache_dir

# The checkout layout the tests and docs use: ../shared/data/{kodak,photos} from the root.
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_output_dir() -> Path:
    """Where the demo writes unless told: the user's lic2cpp cache, outside any checkout
    (a second run reuses the build there)."""
    return cache_dir() / "demo"


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
    folder.mkdir(parents=True, exist_ok=True)
    return [write_rgb(folder / f"generated-{i + 1}.png", generated_image(seed=i + 1))
            for i in range(count)]


def pick_images(images_dir: Path | None, count: int, work: Path) -> tuple[list[Path], str]:
    """The images to round-trip and a word saying where they came from."""
    if images_dir is not None:
        found = list_images(images_dir, "--images")
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
                        log: Callable[[str], None] = print, int16: bool = False
                        ) -> tuple[Path, Path]:
    """Encoder and decoder of the default model in ``out_dir``, through ``lic2cpp build``:
    tables fitted on ``training_set``, or the shipped tables when it is None; with
    ``int16`` the decoder runs in 16-bit fixed point (docs/int16.md)."""
    entropy = None if training_set is not None else default_entropy_path()
    result = build(BuildOptions(model=default_model_path(), training_set=training_set,
                                entropy=entropy, out_dir=out_dir, log=log,
                                int16="decoder" if int16 else None))
    return result.encoder, result.decoder


@dataclass
class RoundTrip:
    name: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    seconds: float


def round_trip(encoder: Path, decoder: Path, image: Path, work: Path) -> RoundTrip:
    """One image through the codec; the decoded PNG is kept in ``work``."""
    coded = images.round_trip(encoder, decoder, image, work)
    return RoundTrip(image.name, coded.width, coded.height, coded.bytes, coded.bpp,
                     coded.psnr, coded.encode_s + coded.decode_s)


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
         training_set: Path | None = None, log: Callable[[str], None] = print,
         int16: bool = False) -> list[RoundTrip]:
    encoder, decoder = build_default_codec(out_dir, training_set, log=log, int16=int16)
    picked, origin = pick_images(images_dir, count, out_dir)
    log(f"round-tripping {len(picked)} image(s): {origin}")
    work = out_dir / "roundtrip"
    work.mkdir(parents=True, exist_ok=True)
    return [round_trip(encoder, decoder, im, work) for im in picked]


# ----------------------------------------------------------------------------- CLI


def run(args: argparse.Namespace) -> int:
    if args.count <= 0:
        raise LicError("--count must be positive")
    training_set = args.training_set
    if training_set is None and not args.shipped_tables:
        training_set = shared_data("photos")
    out_dir = Path(args.output) if args.output else default_output_dir()
    print(f"output folder: {out_dir}")
    results = demo(out_dir, args.images, args.count, training_set, int16=args.int16)
    print(format_results(results))
    print(f"encoder: {out_dir / 'encoder'}   decoder: {out_dir / 'decoder'}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="build the default model's encoder/decoder and round-trip a few images",
        description="Build OUT/encoder and OUT/decoder from the model shipped with lic2cpp, "
                    "then encode and decode a few images (Kodak from ../shared/data/kodak "
                    "when present, otherwise generated ones) and print bpp and PSNR.",
    )
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="output folder for the executables and decoded images (default: "
                        "demo/ in the lic2cpp cache, ~/.cache/lic2cpp/demo; printed)")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="round-trip the images of DIR instead (PNG, PPM, JPEG, BMP, TIFF, "
                        "WebP; what the encoder does not read is given to it as PPM)")
    p.add_argument("--count", type=int, default=4, help="at most this many images")
    p.add_argument("--training-set", type=Path, default=None, metavar="PATH",
                   help="refit the entropy tables on PATH (default: ../shared/data/photos "
                        "when present, else the tables shipped with the model)")
    p.add_argument("--shipped-tables", action="store_true",
                   help="use the shipped entropy tables even when photos are present")
    p.add_argument("--int16", action="store_true",
                   help="decode in 16-bit fixed point (docs/int16.md) with the model's "
                        "trained quantizers")
    p.set_defaults(func=run)
