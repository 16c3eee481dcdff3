"""Rate and PSNR of several builds of one model against each other, from `lic2cpp eval --csv`.

Each argument is ``LABEL=FILE``: the lic2cpp rows of FILE (and its ``lic2cpp-int16`` rows, as
``LABEL-int16``) become codec LABEL; the ``compressai`` rows of the first file that has them
are the reference. Prints, per image, the bits of each codec over CompressAI's and its PSNR
difference, then for each codec: total bits ratio, per-image range, how many images need
fewer bits than CompressAI (and than ``--versus LABEL``), the largest |PSNR difference|.

    python benchmarks/compare_eval.py hybrid=h.csv hyper=y.csv fitted=f.csv --versus fitted
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REFERENCE = "compressai"


def read(spec: str, rows: dict[str, dict[str, tuple[int, float]]]) -> None:
    label, _, path = spec.partition("=")
    if not path:
        raise SystemExit(f"expected LABEL=FILE, got {spec!r}")
    with Path(path).open() as f:
        for r in csv.DictReader(f):
            if r["image"] == "AVERAGE":
                continue
            codec = {"lic2cpp": label, "lic2cpp-int16": f"{label}-int16"}.get(r["codec"],
                                                                             r["codec"])
            if codec == REFERENCE and REFERENCE in rows and r["image"] in rows[REFERENCE]:
                continue  # the first file's CompressAI rows are the reference
            rows.setdefault(codec, {})[r["image"]] = (int(r["bytes"]), float(r["psnr"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=FILE")
    ap.add_argument("--versus", default=None, metavar="LABEL",
                    help="also count the images where each codec beats this one")
    args = ap.parse_args()
    rows: dict[str, dict[str, tuple[int, float]]] = {}
    for spec in args.runs:
        read(spec, rows)
    if REFERENCE not in rows:
        raise SystemExit("no compressai rows: run one `lic2cpp eval` without --no-compressai")
    ref = rows[REFERENCE]
    images = sorted(ref)
    codecs = [c for c in rows if c != REFERENCE]
    for c in codecs:
        if set(rows[c]) != set(images):
            raise SystemExit(f"{c}: not the same images as the CompressAI rows")
    print("| image | " + " | ".join(f"{c} bits / CAI | ΔPSNR (dB)" for c in codecs) + " |")
    print("|---" * (1 + 2 * len(codecs)) + "|")
    for im in images:
        cells = [f"{rows[c][im][0] / ref[im][0]:.4f} | {rows[c][im][1] - ref[im][1]:+.4f}"
                 for c in codecs]
        print(f"| {im} | " + " | ".join(cells) + " |")
    total_ref = sum(b for b, _ in ref.values())
    print(f"\nCompressAI compress: {8 * total_ref:,} bits on {len(images)} images")
    for c in codecs:
        ratios = [rows[c][im][0] / ref[im][0] for im in images]
        total = sum(rows[c][im][0] for im in images)
        dpsnr = [rows[c][im][1] - ref[im][1] for im in images]
        line = (f"- {c}: {8 * total:,} bits, {total / total_ref:.4f}x in total, per image "
                f"{min(ratios):.4f}x to {max(ratios):.4f}x, {sum(r < 1 for r in ratios)} of "
                f"{len(images)} images below CompressAI; PSNR difference mean "
                f"{sum(dpsnr) / len(dpsnr):+.4f} dB, largest |.| {max(map(abs, dpsnr)):.4f} dB")
        if args.versus and args.versus != c and args.versus in rows:
            other = rows[args.versus]
            fewer = sum(rows[c][im][0] < other[im][0] for im in images)
            vs_total = sum(other[im][0] for im in images)
            line += (f"; vs {args.versus}: {total / vs_total:.4f}x in total, fewer bits on "
                     f"{fewer} of {len(images)} images")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
