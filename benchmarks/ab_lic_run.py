"""Alternating A/B of `lic-run` binaries (one network, one input, paired rounds).

    python3 benchmarks/ab_lic_run.py --rounds 10 --model BUILD/g_a.licm \\
        --input ../shared/data/kodak/kodim07.png OLD_LIC_RUN NEW_LIC_RUN

A `lic-run` of some commit: `g++ -O2 -DNDEBUG -std=c++17 -Icpp cpp/tools/lic_run.cpp -o
lic-run -lpthread` in that commit's tree. The input is a .npy tensor (H, W, C) or an image
(RGB scaled to [0, 1], what g_a takes). Every round runs each binary once (`--repeat 3`,
its best time), in alternating order: on a shared machine whose speed drifts from minute to
minute, only times taken this close together compare. Prints each binary's median and best
time and the median and mean (± standard error) of its per-round ratio to the first
binary's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def as_npy(path: Path, folder: Path) -> Path:
    if path.suffix == ".npy":
        return path
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    out = folder / "input.npy"
    np.save(out, rgb)
    return out


def best_ms(exe: Path, model: Path, inp: Path, out: Path, threads: int) -> float:
    proc = subprocess.run([str(exe), str(model), str(inp), str(out), "--threads", str(threads),
                           "--repeat", "3"], capture_output=True, text=True)
    m = re.search(r"best ([0-9.]+) ms", proc.stderr)
    if proc.returncode != 0 or not m:
        sys.exit(f"{exe} failed: {proc.stderr.strip()}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+", type=Path, help="lic-run binaries, the first the base")
    ap.add_argument("--model", type=Path, required=True, help="a .licm network")
    ap.add_argument("--input", type=Path, required=True, help=".npy tensor or image")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inp = as_npy(args.input, Path(tmp))
        out = Path(tmp) / "out.npy"
        times: dict[Path, list[float]] = {b: [] for b in args.binaries}
        for r in range(args.rounds):
            order = args.binaries if r % 2 == 0 else args.binaries[::-1]
            for exe in order:
                times[exe].append(best_ms(exe, args.model, inp, out, args.threads))
    base = times[args.binaries[0]]
    for exe, ms in times.items():
        ratios = [b / a for a, b in zip(base, ms, strict=True)]
        err = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else 0.0
        print(f"{exe}: median {statistics.median(ms):.1f} ms, best {min(ms):.1f} ms; ratio to "
              f"the first: median {statistics.median(ratios):.3f}, mean "
              f"{statistics.mean(ratios):.3f} ± {err:.3f}")


if __name__ == "__main__":
    main()
