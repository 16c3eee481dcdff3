"""The default model through lic2cpp's C++ codec against Pillow JPEG on the Kodak images.

For every image: the codec's bpp and PSNR, and JPEG with the quality chosen (binary search)
so its bpp lands on the codec's bpp (within 5% when any quality can), plus a few fixed JPEG
qualities. Prints a per-image table and the averages, writes a CSV and a rate-distortion
plot (PNG).

    python benchmarks/bench_jpeg.py [--kodak ../shared/data/kodak] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lic2cpp.build import BuildOptions, build
from lic2cpp.demo import build_default_codec, round_trip
from lic2cpp.images import psnr, read_rgb

ROOT = Path(__file__).resolve().parents[1]
FIXED_QUALITIES = (1, 3, 5, 10, 20, 30, 50, 75)
TOLERANCE = 0.05


def jpeg(rgb: np.ndarray, quality: int) -> tuple[float, float]:
    """bpp and PSNR of Pillow JPEG at ``quality`` (default 4:2:0 subsampling)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    h, w = rgb.shape[:2]
    return len(buf.getvalue()) * 8 / (w * h), psnr(rgb, decoded)


def jpeg_at_rate(rgb: np.ndarray, target_bpp: float) -> tuple[int, float, float]:
    """The quality whose bpp is closest to ``target_bpp`` (bpp grows with quality)."""
    lo, hi = 1, 100
    while lo < hi:  # smallest quality with bpp >= target
        mid = (lo + hi) // 2
        if jpeg(rgb, mid)[0] >= target_bpp:
            hi = mid
        else:
            lo = mid + 1
    best = min({max(lo - 1, 1), lo}, key=lambda q: abs(jpeg(rgb, q)[0] - target_bpp))
    return (best, *jpeg(rgb, best))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--build-dir", type=Path, default=None,
                    help="reuse/keep the codec build here (default: a temporary folder)")
    ap.add_argument("--training-set", type=Path,
                    default=ROOT.parent / "shared" / "data" / "photos",
                    help="entropy tables are fitted here (never on Kodak)")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--model", type=Path, default=None,
                    help="benchmark this checkpoint instead of the shipped default model")
    args = ap.parse_args(argv)

    images = sorted(args.kodak.glob("*.png"))[: args.count]
    if not images:
        print(f"no Kodak images in {args.kodak}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = args.build_dir or Path(tmp) / "build"
        start = time.perf_counter()
        ts = args.training_set if args.training_set.is_dir() else None
        if args.model is None:
            encoder, decoder = build_default_codec(build_dir, ts, log=lambda s: None)
        else:
            if ts is None:
                print("--model needs --training-set to fit its entropy tables", file=sys.stderr)
                return 1
            res = build(BuildOptions(model=args.model, training_set=ts, out_dir=build_dir,
                                     log=lambda s: None))
            encoder, decoder = res.encoder, res.decoder
        print(f"built the default codec in {time.perf_counter() - start:.1f} s "
              f"({'fitted on ' + str(ts) if ts else 'shipped entropy tables'})")
        work = Path(tmp) / "work"
        work.mkdir()
        rows = []
        for path in images:
            rgb = read_rgb(path)
            rt = round_trip(encoder, decoder, path, work)
            q, jb, jp = jpeg_at_rate(rgb, rt.bpp)
            row = {"image": path.name, "lic_bpp": rt.bpp, "lic_psnr": rt.psnr,
                   "jpeg_quality": q, "jpeg_bpp": jb, "jpeg_psnr": jp,
                   "jpeg_within_5pct": abs(jb - rt.bpp) <= TOLERANCE * rt.bpp}
            for fq in FIXED_QUALITIES:
                row[f"q{fq}_bpp"], row[f"q{fq}_psnr"] = jpeg(rgb, fq)
            rows.append(row)
            print(f"{path.name:<14} lic2cpp {rt.bpp:.4f} bpp {rt.psnr:6.2f} dB | JPEG q{q:<3} "
                  f"{jb:.4f} bpp {jp:6.2f} dB {'' if row['jpeg_within_5pct'] else '(off >5%)'}",
                  flush=True)

    def avg(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    n_in = sum(r["jpeg_within_5pct"] for r in rows)
    print(f"\naverage over {len(rows)} images")
    print(f"  lic2cpp default model: {avg('lic_bpp'):.4f} bpp  {avg('lic_psnr'):.2f} dB")
    print(f"  JPEG at matched rate:  {avg('jpeg_bpp'):.4f} bpp  {avg('jpeg_psnr'):.2f} dB "
          f"({n_in}/{len(rows)} images within 5% of the codec's bpp)")
    print(f"  PSNR gain over JPEG at matched rate: {avg('lic_psnr') - avg('jpeg_psnr'):+.2f} dB")
    for fq in FIXED_QUALITIES:
        print(f"  JPEG quality {fq:<3}:      {avg(f'q{fq}_bpp'):.4f} bpp  "
              f"{avg(f'q{fq}_psnr'):.2f} dB")

    csv_path = args.out / "bench_jpeg.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "bench_jpeg.png")
    print(f"wrote {csv_path} and {args.out / 'bench_jpeg.png'}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter([r["jpeg_bpp"] for r in rows], [r["jpeg_psnr"] for r in rows], s=10,
               color="tab:orange", alpha=0.4, label="JPEG at matched rate (per image)")
    ax.scatter([r["lic_bpp"] for r in rows], [r["lic_psnr"] for r in rows], s=10,
               color="tab:blue", alpha=0.4, label="lic2cpp default model (per image)")
    jb = [float(np.mean([r[f"q{q}_bpp"] for r in rows])) for q in FIXED_QUALITIES]
    jp = [float(np.mean([r[f"q{q}_psnr"] for r in rows])) for q in FIXED_QUALITIES]
    ax.plot(jb, jp, "o-", color="tab:orange", label="JPEG, fixed quality (average)")
    for q, x, y in zip(FIXED_QUALITIES, jb, jp, strict=True):
        ax.annotate(f"q{q}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.plot([np.mean([r["lic_bpp"] for r in rows])], [np.mean([r["lic_psnr"] for r in rows])],
            "*", markersize=14, color="tab:blue", label="lic2cpp (average)")
    ax.plot([np.mean([r["jpeg_bpp"] for r in rows])], [np.mean([r["jpeg_psnr"] for r in rows])],
            "*", markersize=14, color="tab:orange", label="JPEG at matched rate (average)")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title(f"Kodak ({len(rows)} images): lic2cpp C++ codec vs Pillow JPEG")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
