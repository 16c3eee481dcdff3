"""Alternating A/B of built encoder/decoder programs (issue 10's thread scaling).

    python3 benchmarks/ab_programs.py --rounds 16 --image ../shared/data/kodak/kodim07.png \\
        OLD_BUILD NEW_BUILD
    python3 benchmarks/ab_programs.py --rounds 16 BUILD BUILD@LIC_MALLOC_DEFAULTS=1

Each variant is a build folder (from `lic2cpp build`), optionally with environment
settings after '@' (K=V, comma-separated), so one build can be compared with itself under
another knob. Every round runs each variant's encoder and decoder with 1 and 2 threads,
the variants' order alternating from round to round: on a shared machine whose speed drifts
from minute to minute, only times taken this close together compare. Prints the mean (with
its standard error), median and best wall time of each, and the two-thread speed-ups.

Each round also times benchmarks/host_ceiling.cpp (a compute-bound loop, built here with
g++) on one and two threads: the speed-up two threads give on this host at this time, the
ceiling for the programs' own (on a VM whose two CPUs share a core or a busy host, well
below 2). It is timed a second time with its work taken in pieces from a shared counter:
if that reaches 2 where the even split does not, the threads only ran at unequal speeds
and handing out work on demand would pay; if not, both threads were slowed. Skipped with a
note where it does not build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KODIM07 = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim07.png"
RUNS = ("encoder 1", "encoder 2", "decoder 1", "decoder 2")
CEILING_SOURCE = Path(__file__).resolve().parent / "host_ceiling.cpp"
CEILING_MILLIONS = "50"  # ~90 ms on one core of the benchmark machine


def parse_variant(text: str) -> tuple[str, Path, dict[str, str]]:
    build, _, settings = text.partition("@")
    env = dict(os.environ)
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"bad setting {item!r} in {text!r} (want K=V)")
        env[key] = value
    folder = Path(build)
    if not (folder / "encoder").is_file() or not (folder / "decoder").is_file():
        sys.exit(f"{folder} has no encoder and decoder (build one with `lic2cpp build`)")
    return text, folder, env


def wall_ms(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - start) * 1e3


def build_ceiling(work: Path) -> Path | None:
    exe = work / "host_ceiling"
    proc = subprocess.run(["g++", "-O2", "-march=native", "-pthread", str(CEILING_SOURCE),
                           "-o", str(exe)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"(host ceiling skipped: {CEILING_SOURCE.name} does not build here)")
        return None
    return exe


def ceiling_ms(exe: Path, threads: int) -> float:
    out = subprocess.run([str(exe), str(threads), CEILING_MILLIONS], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[0])


def shared_ceiling(exe: Path, threads: int) -> tuple[float, float]:
    """Wall ms with the work taken from a shared counter, and the share of the pieces the
    busiest thread took (1/threads when all ran at the same speed)."""
    out = subprocess.run([str(exe), str(threads), CEILING_MILLIONS, "shared"], check=True,
                         capture_output=True, text=True).stdout.split()
    pieces = [int(n) for n in out[2:]]
    return float(out[0]), max(pieces) / sum(pieces)


def speedups(one: list[float], two: list[float]) -> str:
    return (f"speed-up of the medians {statistics.median(one) / statistics.median(two):.3f}, "
            f"of the best runs {min(one) / min(two):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", help="BUILD or BUILD@K=V,K=V")
    ap.add_argument("--image", type=Path, default=KODIM07, help="PNG or PPM to encode")
    ap.add_argument("--rounds", type=int, default=16)
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    times: dict[str, dict[str, list[float]]] = {n: {r: [] for r in RUNS} for n, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="lic-ab-") as tmp:
        work = Path(tmp)
        for name, folder, env in variants:  # the bitstream each decoder reads (and a warm-up)
            index = args.variants.index(name)
            subprocess.run([str(folder / "encoder"), str(args.image), str(work / f"{index}.bin")],
                           check=True, stdout=subprocess.DEVNULL, env=env)
        ceiling = build_ceiling(work)
        host: dict[int, list[float]] = {1: [], 2: []}
        shared: list[float] = []
        busiest: list[float] = []
        for r in range(args.rounds):
            if ceiling is not None:
                for t in (1, 2):
                    host[t].append(ceiling_ms(ceiling, t))
                ms, share = shared_ceiling(ceiling, 2)
                shared.append(ms)
                busiest.append(share)
            for name, folder, env in variants if r % 2 == 0 else variants[::-1]:
                index = args.variants.index(name)
                for t in (1, 2):
                    times[name][f"encoder {t}"].append(wall_ms(
                        [str(folder / "encoder"), str(args.image), str(work / "out.bin"),
                         "--threads", str(t)], env))
                    times[name][f"decoder {t}"].append(wall_ms(
                        [str(folder / "decoder"), str(work / f"{index}.bin"),
                         str(work / "out.png"), "--threads", str(t)], env))
    print(f"{args.rounds} rounds on {args.image.name}; wall ms: mean ± standard error "
          "(median, best)")
    for name, _, _ in variants:
        print(name)
        for prog in ("encoder", "decoder"):
            one, two = times[name][f"{prog} 1"], times[name][f"{prog} 2"]
            cells = []
            for label, xs in (("1 thread", one), ("2 threads", two)):
                err = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
                cells.append(f"{label} {statistics.mean(xs):.1f} ± {err:.1f} "
                             f"({statistics.median(xs):.1f}, {min(xs):.1f})")
            print(f"  {prog}: {'; '.join(cells)}; {speedups(one, two)}")
    if host[1]:
        one, two = host[1], host[2]
        print(f"host ceiling ({CEILING_SOURCE.name}, ms): 1 thread {statistics.median(one):.1f} "
              f"(best {min(one):.1f}), 2 threads {statistics.median(two):.1f} "
              f"(best {min(two):.1f}); {speedups(one, two)}")
        print(f"  work from a shared counter: 2 threads {statistics.median(shared):.1f} "
              f"(best {min(shared):.1f}); {speedups(one, shared)}; the busier thread took "
              f"{100 * statistics.median(busiest):.1f}% of the pieces (median)")


if __name__ == "__main__":
    main()
