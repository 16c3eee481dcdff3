"""RDOQ against plain rounding, through the generated encoder and the unchanged decoder.

For every image: the plain encoding (``encoder --rdoq 0``) and RDOQ at each λ
(``encoder --rdoq λ``), each decoded by ``decoder``; prints per image the rate change,
the PSNR change and the encoder's time (wall and CPU), then the averages per λ and the
headline figure: the rate RDOQ needs at the PSNR of plain rounding, interpolated (log rate
linear in PSNR) between the two RDOQ operating points that bracket it, on the averages
over the images.

    lic2cpp build --model ../shared/models/fp_relu_128_192.pth \\
        --training-set ../shared/data/photos -o /tmp/relu
    python benchmarks/bench_rdoq.py /tmp/relu --images ../shared/data/kodak \\
        --lambdas 0.0004,0.0006,0.0008,0.001 --threads 2

Times are those of the encoder process (image I/O, g_a and the search); CPU time is the
process's user + system time (on a shared machine the wall time includes waiting for a
core). This is a measurement, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lic2cpp.evaluate import rate_at_psnr
from lic2cpp.images import encoder_input, list_images, psnr, read_rgb


@dataclass
class Run:
    bpp: float
    psnr: float
    wall_s: float
    cpu_s: float
    stats: dict


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def encode_decode(out: Path, src: Path, rgb: np.ndarray, work: Path, lam: float,
                  threads: int, sweeps: int | None) -> Run:
    bits, dec = work / "x.bin", work / "x.ppm"
    cmd = [str(out / "encoder"), str(src), str(bits), "--rdoq", repr(lam), "--threads",
           str(threads), "--stats"]
    if sweeps is not None:
        cmd += ["--rdoq-sweeps", str(sweeps)]
    cpu0, t0 = child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    subprocess.run([str(out / "decoder"), str(bits), str(dec)], capture_output=True, check=True)
    decoded = read_rgb(dec)
    h, w = rgb.shape[:2]
    return Run(8.0 * bits.stat().st_size / (w * h), psnr(rgb, decoded), wall, cpu, stats)



def write_json(path: Path, images: list[Path], plain: list[Run],
               rdoq: dict[float, list[Run]]) -> None:
    rows = [{"image": image.name, "lambda": lam, "bpp": r.bpp, "psnr": r.psnr,
             "wall_s": r.wall_s, "cpu_s": r.cpu_s, "stats": r.stats}
            for lam, runs in [(0.0, plain), *rdoq.items()]
            for image, r in zip(images, runs)]  # noqa: B905 (runs may be shorter)
    path.write_text(json.dumps(rows, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder written by `lic2cpp build`")
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--lambdas", default="0.0004,0.0006,0.0008,0.001",
                    help="comma-separated RDOQ λ values (at least 2 to interpolate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweeps", type=int, default=None, help="encoder --rdoq-sweeps")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--only", default=None, metavar="NAME,...",
                    help="only these images (file names, e.g. kodim01.png,kodim13.png)")
    ap.add_argument("--json", type=Path, default=None, help="write the per-image figures")
    args = ap.parse_args()
    lams = [float(v) for v in args.lambdas.split(",")]
    images = list_images(args.images)[:args.limit]
    if args.only:
        names = set(args.only.split(","))
        images = [p for p in images if p.name in names]
    plain: list[Run] = []
    rdoq: dict[float, list[Run]] = {lam: [] for lam in lams}
    print(f"{'image':<12} {'plain bpp':>9} {'PSNR':>7} | " +
          " | ".join(f"λ={lam:g}: {'Δbits':>7} {'ΔPSNR':>7} {'wall s':>6} {'cpu s':>6}"
                     for lam in lams), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-rdoq-") as tmp:
        work = Path(tmp)
        for image in images:
            rgb = read_rgb(image)
            src = encoder_input(image, rgb, work)
            p = encode_decode(args.out, src, rgb, work, 0.0, args.threads, None)
            plain.append(p)
            cells = []
            for lam in lams:
                r = encode_decode(args.out, src, rgb, work, lam, args.threads, args.sweeps)
                rdoq[lam].append(r)
                cells.append(f"λ={lam:g}: {100 * (r.bpp / p.bpp - 1):+6.2f}% "
                             f"{r.psnr - p.psnr:+7.3f} {r.wall_s:6.1f} {r.cpu_s:6.1f}")
            print(f"{image.name:<12} {p.bpp:9.4f} {p.psnr:7.3f} | " + " | ".join(cells),
                  flush=True)
            if args.json is not None:  # after every image: a stopped run keeps what it did
                write_json(args.json, images, plain, rdoq)
    bpp0 = float(np.mean([r.bpp for r in plain]))
    psnr0 = float(np.mean([r.psnr for r in plain]))
    print(f"\n{len(images)} images; plain rounding: {bpp0:.4f} bpp, {psnr0:.3f} dB, "
          f"encoder {np.mean([r.wall_s for r in plain]):.2f} s")
    points = []
    for lam in lams:
        runs = rdoq[lam]
        b = float(np.mean([r.bpp for r in runs]))
        q = float(np.mean([r.psnr for r in runs]))
        points.append((q, b))
        print(f"RDOQ λ={lam:g}: {b:.4f} bpp ({100 * (b / bpp0 - 1):+.2f}%), {q:.3f} dB "
              f"({q - psnr0:+.3f}); encoder wall {np.mean([r.wall_s for r in runs]):.1f} s "
              f"(max {max(r.wall_s for r in runs):.1f}), CPU "
              f"{np.mean([r.cpu_s for r in runs]):.1f} s per image; "
              f"{np.mean([r.stats['rdoq_passes'] for r in runs]):.0f} g_s passes")
    r_eq = rate_at_psnr(points, psnr0)
    if r_eq is None:
        print("the RDOQ points do not bracket the PSNR of plain rounding: widen --lambdas")
        return 1
    print(f"at the PSNR of plain rounding ({psnr0:.3f} dB): {r_eq:.4f} bpp, "
          f"{100 * (1 - r_eq / bpp0):.2f}% fewer bits than plain rounding")
    enc_s = [r.stats["encode_s"] for runs in rdoq.values() for r in runs]
    print(f"RDOQ encode time ({args.threads} threads, the encoder's own encode_s): mean "
          f"{np.mean(enc_s):.1f} s, max {max(enc_s):.1f} s per image "
          f"({max(enc_s) / 60:.2f}x the 60 s limit of issue 9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
