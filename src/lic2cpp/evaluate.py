"""`lic2cpp eval`: rate, quality and speed of OUT/encoder + OUT/decoder on a folder of images,
side by side with the same model through CompressAI's own ``compress``/``decompress``.

For a build with ``--int16`` (docs/int16.md) the build's programs are reported as
``lic2cpp-int16``, beside ``lic2cpp`` — the float encoder and decoder of the same model,
compiled into ``OUT/float/`` (cached) — so fixed point and float are compared on the same
images: rate change, PSNR change, largest per-image PSNR loss.

Metrics, identical for both codecs, on the 8-bit RGB outputs:
- bpp: 8 × (bitstream bytes) / (width × height); for lic2cpp the ``.bin`` file size, for
  CompressAI the total length of the strings ``compress`` returns;
- PSNR over the three channels, peak 255;
- MS-SSIM (pytorch_msssim, data range 255); undefined (NaN) for images whose smaller side
  is 160 pixels or less, where its five scales do not fit;
- encode and decode wall time: for lic2cpp the executables' run time (process start and
  image file I/O included), for CompressAI the ``compress``/``decompress`` calls.

``--rdoq L1,L2,...`` adds the build's encoder with RDOQ at each λ (codec ``lic2cpp rdoq=λ``;
the build's plain rows are then ``--rdoq 0``), and the rate RDOQ needs at the PSNR of plain
rounding, interpolated between the RDOQ points that bracket it (docs/rdoq.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _ms_ssim
from tqdm import tqdm

from lic2cpp.datasets import progress_enabled
from lic2cpp.errors import LicError
from lic2cpp.images import IMAGE_SUFFIXES, bpp, list_images, psnr, read_rgb, round_trip
from lic2cpp.load import add_weights_only_arg, compressai_package, load_model

CODEC_LIC = "lic2cpp"
CODEC_INT16 = "lic2cpp-int16"
CODEC_TORCH = "compressai"
CODECS = (CODEC_INT16, CODEC_LIC, CODEC_TORCH)  # table order
RDOQ_PREFIX = "lic2cpp rdoq="
MSSSIM_MIN_SIDE = 161  # pytorch_msssim's 4 downsamplings with an 11-tap window
COMPRESSAI_PAD = 64  # CompressAI's eval pads to a multiple of 2**6


@dataclass
class ImageResult:
    image: str
    codec: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float
    decode_s: float


# --- metrics -----------------------------------------------------------------------------

def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM of two uint8 (H, W, 3) images, data range 255; NaN if too small."""
    if reference.shape != decoded.shape:
        raise LicError(f"shape mismatch: {reference.shape} vs {decoded.shape}")
    if min(reference.shape[:2]) < MSSSIM_MIN_SIDE:
        return math.nan

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(_ms_ssim(tensor(reference), tensor(decoded), data_range=255))


def to_uint8(x: Any) -> np.ndarray:
    """A [0, 1] float tensor (1, 3, H, W) -> uint8 (H, W, 3), rounded as image writers do."""
    arr = x.detach().clamp(0, 1).mul(255).round()
    return arr[0].permute(1, 2, 0).numpy().astype(np.uint8)


# --- lic2cpp executables -----------------------------------------------------------------

def rdoq_codec(lam: float) -> str:
    return f"{RDOQ_PREFIX}{lam:g}"


def eval_lic2cpp(encoder: Path, decoder: Path, image_path: Path, rgb: np.ndarray,
                 tmp: Path, dump_latent: Path | None = None, *,
                 encoder_args: Sequence[str] = ()) -> tuple[ImageResult, np.ndarray]:
    """Encode and decode one image with the executables; the result and the decoded image."""
    coded = round_trip(encoder, decoder, image_path, tmp, reference=rgb, decoded_suffix=".ppm",
                       keep_decoded=False, dump_latent=dump_latent, encoder_args=encoder_args)
    result = ImageResult(image_path.name, CODEC_LIC, coded.width, coded.height, coded.bytes,
                         coded.bpp, coded.psnr, ms_ssim(rgb, coded.decoded), coded.encode_s,
                         coded.decode_s)
    return result, coded.decoded


# --- CompressAI --------------------------------------------------------------------------

def eval_compressai(net: Any, image_path: Path, rgb: np.ndarray
                    ) -> tuple[ImageResult, np.ndarray]:
    """The same model through CompressAI's compress/decompress, padded as its eval does."""
    compute_padding = compressai_package().ops.compute_padding
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255.0)
    pad, unpad = compute_padding(h, w, min_div=COMPRESSAI_PAD)
    with torch.no_grad():
        x_padded = F.pad(x, pad, mode="constant", value=0)
        start = time.perf_counter()
        enc = net.compress(x_padded)
        enc_s = time.perf_counter() - start
        size = sum(len(s) for strings in enc["strings"] for s in strings)
        start = time.perf_counter()
        dec = net.decompress(enc["strings"], enc["shape"])
        dec_s = time.perf_counter() - start
    decoded = to_uint8(F.pad(dec["x_hat"], unpad))
    result = ImageResult(image_path.name, CODEC_TORCH, w, h, size, bpp(size, w, h),
                         psnr(rgb, decoded), ms_ssim(rgb, decoded), enc_s, dec_s)
    return result, decoded


# --- the whole evaluation ----------------------------------------------------------------

def codec_paths(out_dir: Path) -> tuple[Path, Path]:
    if not out_dir.is_dir():
        raise LicError(f"build folder not found: {out_dir}")
    encoder, decoder = out_dir / "encoder", out_dir / "decoder"
    for exe in (encoder, decoder):
        if not exe.is_file():
            raise LicError(f"{exe} not found (run `lic2cpp build -o {out_dir}` first)")
    return encoder, decoder


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def float_twin(out_dir: Path) -> tuple[Path, Path] | None:
    """For an ``--int16`` build: the float encoder and decoder of the same model, compiled
    into ``OUT/float/`` from the build's float networks and tables (None otherwise)."""
    from lic2cpp import codegen

    manifest = read_manifest(out_dir)
    if not manifest or "int16" not in manifest.get("steps", {}):
        return None
    try:
        # g_a, g_s, then a hyperprior model's h_a, h_s
        ga_name, gs_name, *_ = list(manifest["steps"]["convert"]["outputs"])
        tables = [name for name in manifest["steps"]["fit"]["outputs"]
                  if name.endswith((".lice", ".lich"))]
    except (KeyError, TypeError, ValueError):
        raise LicError(f"{out_dir}/manifest.json does not name the float networks") from None
    if len(tables) != 1:
        raise LicError(f"{out_dir}/manifest.json does not name the entropy tables")
    # hyperprior tables (.lich) are built with the h_a they were made for (as the build does)
    h_a = out_dir / "h_a.licm" if tables[0].endswith(".lich") else None
    return codegen.build_codec(out_dir / ga_name, out_dir / gs_name, out_dir / tables[0],
                               out_dir / "float", h_a=h_a)


def model_from_manifest(out_dir: Path) -> tuple[Path, str | None] | None:
    path = out_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        return Path(manifest["model"]), manifest.get("arch")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate(out_dir: Path, images: list[Path], net: Any | None = None,
             threads: int = 1, progress: bool | None = None,
             rdoq: Sequence[float] = ()) -> list[ImageResult]:
    """Every image through lic2cpp (and through ``net`` with CompressAI, if given); an
    ``--int16`` build also through its float twin; with ``rdoq``, the build's encoder also
    with RDOQ at each λ, run with ``threads`` threads."""
    encoder, decoder = codec_paths(out_dir)
    if not images:
        raise LicError("no images to evaluate")
    for lam in rdoq:
        if not (lam > 0 and math.isfinite(lam)):
            raise LicError(f"--rdoq: each λ must be a finite number > 0, got {lam:g}")
    twin = float_twin(out_dir)
    programs = [(CODEC_INT16 if twin else CODEC_LIC, encoder, decoder)]
    if twin is not None:
        programs.append((CODEC_LIC, *twin))
    if net is not None:
        torch.set_num_threads(threads)
        with torch.no_grad():  # first calls are slow (allocations, kernels): keep them untimed
            net.compress(torch.zeros(1, 3, COMPRESSAI_PAD, COMPRESSAI_PAD))
    results = []
    show = progress_enabled() if progress is None else progress
    with tempfile.TemporaryDirectory(prefix="lic2cpp-eval-") as tmp:
        for image_path in tqdm(images, desc="evaluating", unit="image", disable=not show):
            rgb = read_rgb(image_path)
            plain = ["--rdoq", "0"] if rdoq else []  # plain rounding, whatever the default
            for codec, enc, dec in programs:
                result = eval_lic2cpp(enc, dec, image_path, rgb, Path(tmp),
                                      encoder_args=plain)[0]
                result.codec = codec
                results.append(result)
            for lam in rdoq:
                args = ["--rdoq", repr(float(lam)), "--threads", str(threads)]
                result = eval_lic2cpp(encoder, decoder, image_path, rgb, Path(tmp),
                                      encoder_args=args)[0]
                result.codec = rdoq_codec(lam)
                results.append(result)
            if net is not None:
                results.append(eval_compressai(net, image_path, rgb)[0])
    return results


def averages(results: list[ImageResult], codec: str) -> dict[str, float]:
    rows = [r for r in results if r.codec == codec]
    keys = ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s")
    return {k: float(np.mean([getattr(r, k) for r in rows])) for k in keys} if rows else {}


def codecs_of(results: list[ImageResult]) -> list[str]:
    """The codecs in the results: the fixed ones in table order, then RDOQ runs by λ."""
    present = set(r.codec for r in results)
    rdoq = sorted((c for c in present if c.startswith(RDOQ_PREFIX)),
                  key=lambda c: float(c.removeprefix(RDOQ_PREFIX)))
    return [c for c in CODECS if c in present] + rdoq


def rdoq_codecs(results: list[ImageResult]) -> list[str]:
    return [c for c in codecs_of(results) if c.startswith(RDOQ_PREFIX)]


def plain_codec(results: list[ImageResult]) -> str:
    """The build's own programs (RDOQ runs them): int16 for an --int16 build."""
    return CODEC_INT16 if any(r.codec == CODEC_INT16 for r in results) else CODEC_LIC


def rate_at_psnr(points: list[tuple[float, float]], target: float) -> float | None:
    """The rate at PSNR ``target`` on the curve through ``points`` (psnr, bpp): log(rate)
    linear in PSNR between the two points that bracket it; None when none do."""
    pts = sorted(points)
    for (p0, r0), (p1, r1) in zip(pts, pts[1:], strict=False):
        if p0 <= target <= p1 and p1 > p0:
            t = (target - p0) / (p1 - p0)
            return math.exp((1 - t) * math.log(r0) + t * math.log(r1))
    return None


def rdoq_summary(results: list[ImageResult]) -> list[str]:
    """Lines comparing the RDOQ runs with plain rounding (on the averages over the images)."""
    rdoq = rdoq_codecs(results)
    base = averages(results, plain_codec(results))
    if not rdoq or not base:
        return []
    lines = []
    points = []
    for codec in rdoq:
        a = averages(results, codec)
        points.append((a["psnr"], a["bpp"]))
        lines.append(f"{codec}: {a['bpp']:.4f} bpp ({100 * (a['bpp'] / base['bpp'] - 1):+.2f}%),"
                     f" PSNR {a['psnr'] - base['psnr']:+.3f} dB, encode {a['encode_s']:.1f} s")
    r_eq = rate_at_psnr(points, base["psnr"])
    if r_eq is None:
        lines.append("RDOQ at the PSNR of plain rounding: the λ values do not bracket it "
                     "(add a smaller or a larger λ)")
    else:
        lines.append(f"RDOQ at the PSNR of plain rounding ({base['psnr']:.3f} dB): "
                     f"{r_eq:.4f} bpp, {100 * (1 - r_eq / base['bpp']):.2f}% fewer bits "
                     f"than plain rounding ({base['bpp']:.4f} bpp)")
    return lines


def write_csv(results: list[ImageResult], path: Path) -> None:
    fields = list(asdict(results[0]))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            writer.writerow(asdict(r))
        for codec in codecs_of(results):
            avg = averages(results, codec)
            if avg:
                writer.writerow({"image": "AVERAGE", "codec": codec, **avg})


def format_table(results: list[ImageResult]) -> str:
    codecs = [c for c in CODECS if any(r.codec == c for r in results)]
    head = f"{'image':<16}" + "".join(
        f" | {c + ' bpp':>15} {'PSNR':>6} {'MS-SSIM':>7} {'enc s':>6} {'dec s':>6}"
        for c in codecs)
    lines = [head, "-" * len(head)]
    names = list(dict.fromkeys(r.image for r in results))

    def cells(vals: dict[str, float]) -> str:
        return (f" | {vals['bpp']:>15.4f} {vals['psnr']:>6.2f} {vals['ms_ssim']:>7.4f} "
                f"{vals['encode_s']:>6.3f} {vals['decode_s']:>6.3f}")

    for name in names:
        row = f"{name:<16}"
        for c in codecs:
            r = next(r for r in results if r.image == name and r.codec == c)
            row += cells(asdict(r))
        lines.append(row)
    lines.append("-" * len(head))
    lines.append(f"{'average':<16}" + "".join(cells(averages(results, c)) for c in codecs))
    for first, second in ((CODEC_LIC, CODEC_TORCH), (CODEC_INT16, CODEC_LIC)):
        if first in codecs and second in codecs:
            lines.append(compare_line(results, first, second))
    rdoq = rdoq_codecs(results)
    if rdoq:
        base = plain_codec(results)
        lines += ["", f"{'image':<16} | {'plain bpp':>9} {'PSNR':>6}" + "".join(
            f" | {c.removeprefix('lic2cpp '):>16} {'PSNR':>6} {'enc s':>6}" for c in rdoq)]
        for name in names:
            plain = next(r for r in results if r.image == name and r.codec == base)
            row = f"{name:<16} | {plain.bpp:>9.4f} {plain.psnr:>6.2f}"
            for c in rdoq:
                r = next(r for r in results if r.image == name and r.codec == c)
                row += f" | {r.bpp:>16.4f} {r.psnr:>6.2f} {r.encode_s:>6.1f}"
            lines.append(row)
        lines += rdoq_summary(results)
    return "\n".join(lines)


def compare_line(results: list[ImageResult], first: str, second: str) -> str:
    """Rate and PSNR of ``first`` against ``second`` on averages (and, int16 vs float, the
    largest PSNR loss on one image)."""
    a, b = averages(results, first), averages(results, second)
    saving = 100.0 * (1.0 - a["bpp"] / b["bpp"]) if b["bpp"] else math.nan
    rate = f"{abs(saving):.2f}% {'fewer' if saving >= 0 else 'more'} bits"
    line = f"{first} vs {second} (averages): {rate}, PSNR {a['psnr'] - b['psnr']:+.3f} dB"
    if first == CODEC_INT16:
        by = {(r.image, r.codec): r.psnr for r in results}
        worst = max(by[(im, second)] - by[(im, first)]
                    for im in dict.fromkeys(r.image for r in results))
        line += f", largest PSNR loss on one image {worst:.3f} dB"
    return line


def plot_rd(results: list[ImageResult], path: Path) -> None:
    """Per-image points and averages of each codec; with RDOQ runs, the RDOQ curve (its
    averages at each λ, joined) beside plain rounding's point."""
    # matplotlib is imported here, on use: ~0.5 s of start-up that only --plot needs.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rdoq = rdoq_codecs(results)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for codec, marker, color in ((CODEC_LIC, "o", "C0"), (CODEC_TORCH, "x", "C1"),
                                 (CODEC_INT16, "s", "C2")):
        rows = [r for r in results if r.codec == codec]
        if not rows:
            continue
        name = f"{codec} plain rounding" if rdoq and codec == plain_codec(results) else codec
        ax.scatter([r.bpp for r in rows], [r.psnr for r in rows], marker=marker, color=color,
                   alpha=0.6, label=f"{name} (per image)")
        avg = averages(results, codec)
        ax.scatter([avg["bpp"]], [avg["psnr"]], marker="*", s=250, color=color,
                   edgecolors="black", label=f"{name} (average)", zorder=3)
    if rdoq:
        rows = [r for r in results if r.codec in rdoq]
        ax.scatter([r.bpp for r in rows], [r.psnr for r in rows], marker=".", color="C3",
                   alpha=0.4, label="RDOQ (per image and λ)")
        pts = [averages(results, c) for c in rdoq]
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], "-D", color="C3",
                markeredgecolor="black", label="RDOQ (average per λ)", zorder=3)
        for c, p in zip(rdoq, pts, strict=True):
            ax.annotate(f"λ={c.removeprefix(RDOQ_PREFIX)}", (p["bpp"], p["psnr"]),
                        textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title("rate–distortion")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure OUT/encoder + OUT/decoder on images, beside CompressAI",
        description="Encode and decode every image in --images with OUT/encoder and "
                    "OUT/decoder; report bpp, PSNR, MS-SSIM and times per image and on "
                    "average, side by side with the same model through CompressAI's "
                    "compress/decompress.",
    )
    p.add_argument("out", metavar="OUT", help="folder written by `lic2cpp build`")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder of images (PNG, JPEG, PPM, ...)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the results as CSV")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="draw the rate-distortion points (PNG)")
    p.add_argument("--model", default=None,
                   help="model for the CompressAI side (default: the one in OUT/manifest.json)")
    p.add_argument("--arch", default=None, help="architecture, if --model is a state_dict")
    add_weights_only_arg(p)
    p.add_argument("--no-compressai", action="store_true",
                   help="skip the CompressAI comparison")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch threads for the CompressAI side, and the encoder's threads "
                        "for --rdoq (default 1)")
    p.add_argument("--rdoq", default=None, metavar="L1,L2,...",
                   help="also encode with RDOQ at each λ (training-loss units, "
                        "λ·255²·MSE + bpp) and compare with plain rounding at equal PSNR")
    p.set_defaults(func=run)


def parse_lambdas(text: str) -> list[float]:
    try:
        lams = [float(v) for v in text.split(",")]
    except ValueError:
        raise LicError(f"--rdoq needs comma-separated numbers, got {text!r}") from None
    for lam in lams:
        if not (lam > 0 and math.isfinite(lam)):
            raise LicError(f"--rdoq: each λ must be a finite number > 0, got {lam:g}")
    return lams


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    lams = parse_lambdas(args.rdoq) if args.rdoq else []  # fail early
    codec_paths(out_dir)  # fail early, before loading a model
    images = list_images(args.images, "--images")
    if not images:
        raise LicError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {args.images}")
    net = None
    if not args.no_compressai:
        model, arch = (Path(args.model), args.arch) if args.model else (None, None)
        if model is None:
            recorded = model_from_manifest(out_dir)
            if recorded is None:
                raise LicError(f"{out_dir} has no manifest naming its model; pass --model "
                               "or --no-compressai")
            model, arch = recorded
        if not model.is_file():
            raise LicError(f"model file not found: {model}")
        net = load_model(model, arch, weights_only=args.weights_only)
    results = evaluate(out_dir, images, net, threads=args.threads, rdoq=lams)
    print(format_table(results))
    if args.csv:
        write_csv(results, Path(args.csv))
        print(f"wrote {args.csv}")
    if args.plot:
        plot_rd(results, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0
