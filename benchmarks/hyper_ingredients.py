"""Where a hyperprior codec's bits go, ingredient by ingredient (issue 11, docs/hyperprior.md).

For every image, the ideal code length (z + y, escapes with their bypass bits, as the coder
counts them) of the same model coded four ways, each differing from the previous in one
ingredient:

1. CompressAI: its padding (zeros to a multiple of 64, centred), float ``h_s``, the
   Gaussian CDFs (the same integers its range coder uses, read from the model);
2. lic2cpp's padding (edge replication to a multiple of 16), float ``h_s``, Gaussian CDFs;
3. lic2cpp's int16 ``h_s`` (the codec's ``.lich``: numpy reference of the coder), Gaussian
   CDFs: ``--prior hyper``;
4. the same symbols with the hybrid's fitted tables: ``--prior hybrid``.

Also the length of the strings CompressAI's ``compress`` returns, so the last line of the
table gives the range coder's (and stream framing's) overhead on CompressAI's side. The
codec's own file sizes come from ``lic2cpp eval``. OUT must hold a hybrid ``hyper.lich``.

    python benchmarks/hyper_ingredients.py OUT/ --model M.pth --images ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lic2cpp.hyper import KIND_MEAN_SCALE, HyperTables
from lic2cpp.images import list_images, read_rgb
from lic2cpp.load import compressai_package, load_model

STEPS = ("compressai_ideal", "lic_pad_float_hs", "hyper_int16_hs", "hybrid")


def latents(net: Any, x: torch.Tensor, kind: int) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        y = net.g_a(x)
        z = net.h_a(y if kind == KIND_MEAN_SCALE else torch.abs(y))
    return y[0].numpy(), z[0].numpy()


def float_hs(net: Any, tables: HyperTables, qz: np.ndarray, kind: int
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """CompressAI's own float h_s and build_indexes on the decoded z (indexes, means)."""
    z_hat = torch.from_numpy(tables.z_hat(qz))[None]
    with torch.no_grad():
        params = net.h_s(z_hat)
        if kind == KIND_MEAN_SCALE:
            scales, means = params.chunk(2, 1)
        else:
            scales, means = params, None
        index = net.gaussian_conditional.build_indexes(scales)[0].numpy().astype(np.int64)
    return index, None if means is None else means[0].numpy()


def bits(tables: HyperTables, y: np.ndarray, z: np.ndarray, net: Any, kind: int,
         int16: bool) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(z bits, y bits under the Gaussian CDFs, y symbols, scale indexes)."""
    qz = tables.z_symbols(z)
    if int16:
        index, means = tables.hyper_synthesis(qz, y.shape[1], y.shape[2])
    else:
        index, means = float_hs(net, tables, qz, kind)
        index, means = index[:, : y.shape[1], : y.shape[2]], (
            None if means is None else means[:, : y.shape[1], : y.shape[2]])
    qy = tables.y_symbols(y, means)
    fitted = tables.fitted
    tables.fitted = None
    try:
        z_bits, y_bits = tables.code_length(qz, qy, index)
    finally:
        tables.fitted = fitted
    return z_bits, y_bits, qy, index


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("codec", type=Path, help="a hybrid build's folder (holds hyper.lich)")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--count", type=int, default=0, help="first N images only (0: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_model(args.model, args.arch)
    tables = HyperTables.load(args.codec / "hyper.lich")
    if not tables.hybrid:
        raise SystemExit(f"{args.codec}/hyper.lich has no hybrid tables (build --prior hybrid)")
    kind = tables.kind
    compute_padding = compressai_package().ops.compute_padding
    totals = dict.fromkeys((*STEPS, "compressai_bytes", "z"), 0.0)
    pixels = 0
    print(f"{'image':<14} {'CAI bytes':>10} " + " ".join(f"{s:>17}" for s in STEPS)
          + "   (ideal bits; z bits with lic2cpp's padding)")
    for image in list_images(args.images)[: args.count or None]:
        rgb = read_rgb(image)
        h, w = rgb.shape[:2]
        pixels += h * w
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        pad, _ = compute_padding(h, w, min_div=64)
        x64 = F.pad(x, pad, mode="constant", value=0)
        with torch.no_grad():
            cai = net.compress(x64)
        cai_bytes = sum(len(s) for strings in cai["strings"] for s in strings)
        y, z = latents(net, x64, kind)
        zb, yb, _, _ = bits(tables, y, z, net, kind, int16=False)
        row = {"compressai_ideal": zb + yb}
        x16 = torch.from_numpy(np.pad(rgb, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")
                               ).permute(2, 0, 1)[None].float() / 255.0
        y, z = latents(net, x16, kind)
        zb, yb, _, _ = bits(tables, y, z, net, kind, int16=False)
        row["lic_pad_float_hs"] = zb + yb
        zb, yb, qy, index = bits(tables, y, z, net, kind, int16=True)
        row["hyper_int16_hs"] = zb + yb
        row["hybrid"] = zb + tables.code_length(tables.z_symbols(z), qy, index)[1]
        totals["compressai_bytes"] += cai_bytes
        totals["z"] += zb
        for s in STEPS:
            totals[s] += row[s]
        print(f"{image.name:<14} {cai_bytes:>10} " + " ".join(f"{row[s]:>17,.0f}" for s in STEPS),
              flush=True)
    cai_bits = 8 * totals["compressai_bytes"]
    print(f"total: CompressAI compress {cai_bits:,.0f} bits ({cai_bits / pixels:.4f} bpp); "
          f"its ideal {totals['compressai_ideal']:,.0f} (coder and framing "
          f"{100 * (cai_bits / totals['compressai_ideal'] - 1):+.2f}%)")
    prev = totals["compressai_ideal"]
    for s in STEPS[1:]:
        print(f"  {s:<17} {totals[s]:>14,.0f} bits ({totals[s] / pixels:.4f} bpp): "
              f"{100 * (totals[s] / prev - 1):+.2f}% vs the step before, "
              f"{totals[s] / cai_bits:.4f}x CompressAI's compress")
        prev = totals[s]
    print(f"  z (side information, lic2cpp padding): {totals['z']:,.0f} bits "
          f"({100 * totals['z'] / totals['hyper_int16_hs']:.2f}% of hyper)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
