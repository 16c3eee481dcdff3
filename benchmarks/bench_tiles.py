"""Tiled decoding (issue 12): peak memory and CPU time of `decoder --max-memory` against a
one-piece decode, and that every budget gives the same pixels.

    python benchmarks/bench_tiles.py [--out OUT] [--size 2048] [--budgets 300M,150M,64M,40M]

Builds the shipped default model in OUT (default /tmp/lic2cpp-bench/default) unless it is
there, encodes a smooth synthetic SIZE x SIZE image through lic2cpp.Codec, then runs the
decoder with no budget and with each budget (PPM output, one thread), measuring peak RSS
and user+system CPU time with GNU time, and prints a Markdown table: budget, tiles (from
Codec.plan with the budget the program leaves to the library: approximately), peak RSS,
CPU seconds, CPU time relative to one piece, identical output.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lic2cpp import Codec
from lic2cpp.codec_library import parse_size


def smooth(n: int) -> np.ndarray:
    x = np.arange(n, dtype=np.float32)
    out = np.empty((n, n, 3), np.uint8)
    for y0 in range(0, n, 512):
        y = np.arange(y0, min(n, y0 + 512), dtype=np.float32)[:, None]
        r = 128 + 100 * np.sin(x / 300) * np.cos(y / 410)
        g = 128 + 90 * np.sin((x + y) / 520) + 10 * np.sin(x / 7)
        b = 128 + 80 * np.cos(x / 700 - y / 330)
        out[y0:y0 + len(y)] = np.clip(np.stack(np.broadcast_arrays(r, g, b), -1), 0, 255)
    return out


def measure(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, user + system CPU seconds) of a program, by GNU time."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *cmd], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr.strip()}")
    kib, user, system = proc.stderr.strip().splitlines()[-1].split()
    return int(kib) / 1024, float(user) + float(system)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/lic2cpp-bench/default"))
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--budgets", default="300M,150M,64M,40M")
    args = ap.parse_args()
    if not (args.out / "lib" / "liblic2cpp_codec.so").is_file():
        from lic2cpp.cli import main as cli

        if cli(["build", "-o", str(args.out)]) != 0:
            return 1
    data = Codec(args.out, threads=2).encode(smooth(args.size))
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = Path(tmp) / "a.bin"
        bin_path.write_bytes(data)
        decoder = str(args.out / "decoder")
        rows = []
        ref = None
        base_cpu = 0.0
        for budget in ["none", *args.budgets.split(",")]:
            out = Path(tmp) / f"{budget}.ppm"
            extra = [] if budget == "none" else ["--max-memory", budget]
            rss, cpu = measure([decoder, str(bin_path), str(out), *extra])
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
            ref = ref or digest
            base_cpu = base_cpu or cpu
            if budget == "none":
                tiles = "1 x 1"
            else:
                # the program leaves the library its budget less its own footprint (~12 MiB)
                p = Codec(args.out, max_memory=parse_size(budget) - 12 * 2**20).plan(data)
                tiles = f"{p['tiles_down']} x {p['tiles_across']}"
            rows.append(f"| {budget} | {tiles} | {rss:.1f} | {cpu:.2f} | {cpu / base_cpu:.2f} | "
                        f"{'yes' if digest == ref else 'NO'} |")
    print(f"{args.size} x {args.size}, {len(data)} bytes, default model, one thread\n")
    print("| --max-memory | tiles (approx.) | peak RSS (MiB) | CPU (s) | CPU vs one piece | "
          "same pixels |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
