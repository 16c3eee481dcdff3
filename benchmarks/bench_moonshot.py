"""Issue 10's moonshot on a shared machine: `g_s` against this CPU's direct-convolution limit,
measured at the same moment.

    python3 benchmarks/bench_moonshot.py --build DIR --rounds 10

The moonshot asks for a single-thread `g_s` below what a direct convolution can reach on
this CPU (320 ms for `fp_relu_128_192` on a Kodak image, on the issue's machine). On a VM
whose speed drifts with its neighbours' load, a fixed figure in ms says little, so each
round here times, within a second:

- benchmarks/host_ceiling.cpp on one thread (independent 8-wide multiply-add chains, no
  memory traffic): the multiply-adds per second this core does right now at best;
- `g_s` alone on one thread (`lic-run --repeat`, no file I/O, no model loading), on the
  rounded latent of each image (from `g_a` in the same runtime).

The direct-convolution limit of the moment is the direct form's multiply-adds (counted from
DIR/g_s.onnx, every Conv and ConvTranspose at the image's size) at that rate. Below 1, the
ratio `g_s` / limit means `g_s` did its work in less time than the direct form's
multiply-adds alone take at this core's peak: no direct convolution can match it.
Both sides are the best of 3 runs of the round, wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_programs import CEILING_MILLIONS, build_ceiling, ceiling_ms  # noqa: E402
from bench_transforms import time_lic  # noqa: E402

from lic2cpp.images import read_rgb  # noqa: E402

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
# host_ceiling.cpp: ten 8-lane chains, one multiply-add each per iteration
CEILING_MACS = float(CEILING_MILLIONS) * 1e6 * 10 * 8


def direct_macs(onnx_path: Path, height: int, width: int) -> int:
    """Multiply-adds of every Conv and ConvTranspose in direct form, for a (height, width)
    input (the sizes come from ONNX's shape inference)."""
    import onnx

    model = onnx.load(str(onnx_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = height, width
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        w = weights[node.input[1]]  # Conv: (out, in/g, kh, kw); ConvTranspose: (in, out/g, kh, kw)
        taps = w[1] * w[2] * w[3]
        if node.op_type == "Conv":
            n, c, h, wd = shapes[node.output[0]]
        else:
            n, c, h, wd = shapes[node.input[0]]  # each input value meets every tap once
        if min(n, c, h, wd) <= 0:
            sys.exit(f"{onnx_path.name}: no static shape for {node.name or node.op_type}")
        total += n * c * h * wd * taps
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, required=True,
                    help="a `lic2cpp build` folder (g_a.licm, g_s.licm, g_s.onnx)")
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim07", "kodim15"])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    for name in ("g_a.licm", "g_s.licm", "g_s.onnx"):
        if not (args.build / name).is_file():
            sys.exit(f"{args.build / name} not found: give a `lic2cpp build` folder")
    from lic2cpp.runtime import lic_run_path

    exe = lic_run_path()
    with tempfile.TemporaryDirectory(prefix="lic-moon-") as tmp:
        work = Path(tmp)
        ceiling = build_ceiling(work)
        if ceiling is None:
            sys.exit("host_ceiling.cpp does not build here: no peak to compare with")
        print(f"{args.rounds} rounds; g_s and the host's peak: best of 3 wall ms each round")
        for stem in args.images:
            rgb = read_rgb(KODAK / f"{stem}.png").astype(np.float32) / 255.0
            if rgb.shape[0] % 16 or rgb.shape[1] % 16:
                sys.exit(f"{stem}: the benchmark takes images whose sides are multiples of 16")
            _, y = time_lic(exe, args.build / "g_a.licm", rgb, 1, work)
            y = np.rint(y)
            macs = direct_macs(args.build / "g_s.onnx", y.shape[0], y.shape[1])
            ratios, gs_ms, limits = [], [], []
            for _ in range(args.rounds):
                peak = CEILING_MACS / (min(ceiling_ms(ceiling, 1) for _ in range(3)) / 1000)
                (wall, _cpu), _ = time_lic(exe, args.build / "g_s.licm", y, 3, work)
                limit = macs / peak * 1000
                gs_ms.append(wall)
                limits.append(limit)
                ratios.append(wall / limit)
            print(f"{stem}: direct form {macs / 1e9:.2f} G multiply-adds; g_s median "
                  f"{statistics.median(gs_ms):.1f} ms (best {min(gs_ms):.1f}); direct limit "
                  f"at the moment's peak median {statistics.median(limits):.1f} ms (best "
                  f"{min(limits):.1f}); g_s / limit median {statistics.median(ratios):.3f}, "
                  f"worst {max(ratios):.3f}, best {min(ratios):.3f}")


if __name__ == "__main__":
    main()
