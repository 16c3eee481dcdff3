"""PNG writers on decoded images (issue 10): time and size of each writer in
benchmarks/png_writers.cpp, summed over decoded Kodak images.

    python3 benchmarks/bench_png.py --images 4 --repeat 5

The images are what the decoder of the test fixture (built as in bench_e2e.py) outputs for
the first N Kodak images -- the smooth, low-rate pictures the decoder really writes. The
libdeflate rows appear when Debian's libdeflate-dev is installed (not a dependency of
lic2cpp). Times are process CPU time (the steadier measure on a shared machine), best of
--repeat; every file is read back with libpng and compared with the pixels.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codec import build  # noqa: E402

from lic2cpp.codegen import png_link_args  # noqa: E402
from lic2cpp.toolchain import compile_program  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, default=Path("/tmp/lic2cpp-bench/e2e-relu"))
    ap.add_argument("--images", type=int, default=4, help="first N Kodak images")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    build(SHARED / "models" / "fp_relu_128_192.pth", SHARED / "data" / "photos", args.build,
          False, ["--max-patches", "300"])
    libs = list(png_link_args())
    if Path("/usr/include/libdeflate.h").is_file():
        libs.append("-ldeflate")
    exe = compile_program([ROOT / "benchmarks" / "png_writers.cpp"], "png-writers", libs=libs)
    totals: dict[str, list[float]] = {}
    pixels = 0
    with tempfile.TemporaryDirectory(prefix="bench-png-") as tmpname:
        tmp = Path(tmpname)
        for image in sorted((SHARED / "data" / "kodak").glob("*.png"))[: args.images]:
            subprocess.run([str(args.build / "encoder"), str(image), str(tmp / "a.bin")],
                           check=True)
            subprocess.run([str(args.build / "decoder"), str(tmp / "a.bin"),
                            str(tmp / "a.ppm")], check=True, stdout=subprocess.DEVNULL)
            pixels += (tmp / "a.ppm").stat().st_size  # ~3 bytes per pixel + a short header
            out = subprocess.run([str(exe), str(tmp / "a.ppm"), str(args.repeat)],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                m = re.match(r"(.+?)\s+cpu\s+([0-9.]+) ms\s+wall\s+([0-9.]+) ms\s+(\d+) bytes",
                             line)
                if not m:
                    sys.exit(f"cannot parse: {line}")
                t = totals.setdefault(m.group(1), [0.0, 0.0, 0.0])
                t[0] += float(m.group(2))
                t[1] += float(m.group(3))
                t[2] += int(m.group(4))
            print(f"{image.name} done", flush=True)
    print(f"\nsum over {args.images} decoded Kodak images ({pixels / 1e6:.1f} MB of RGB):")
    print("| writer | CPU ms | wall ms | bytes | % of RGB |")
    print("|---|---:|---:|---:|---:|")
    for name, (cpu, wall, size) in totals.items():
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {int(size)} | {100 * size / pixels:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
