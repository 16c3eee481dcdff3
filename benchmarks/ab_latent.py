"""Alternating A/B of the library's first call: the latent of a bitstream, right after
opening the codec, while `g_s` is still being packed on the other threads.

    python3 benchmarks/ab_latent.py --rounds 15 OLD_BUILD NEW_BUILD

Each round opens every build's library afresh (`lic2cpp.Codec(build, threads=N)`) and at
once times `Codec.latent` on the image's bitstream (coded by the first build), with 1 and
2 threads, the builds' order alternating from round to round. Prints the median and best
time of each. The latents must be identical: the script stops if they are not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lic2cpp import Codec

KODIM07 = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim07.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", type=Path, help="build folders (lic2cpp build -o)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--image", type=Path, default=KODIM07)
    args = ap.parse_args()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    data = Codec(args.builds[0]).encode(rgb)
    times: dict[tuple[int, int], list[float]] = {}
    first: np.ndarray | None = None
    for r in range(args.rounds):
        order = list(enumerate(args.builds))
        if r % 2:
            order.reverse()
        for i, build in order:
            for threads in (1, 2):
                codec = Codec(build, threads=threads)
                t = time.perf_counter()
                y = codec.latent(data)
                times.setdefault((i, threads), []).append((time.perf_counter() - t) * 1e3)
                if first is None:
                    first = y
                elif not np.array_equal(first, y):
                    sys.exit(f"{build}: the latent differs from {args.builds[0]}'s")
                del codec
    for (i, threads), ms in sorted(times.items()):
        print(f"{args.builds[i]} {threads} thread(s): median {statistics.median(ms):.1f} ms, "
              f"best {min(ms):.1f} ms")


if __name__ == "__main__":
    main()
