"""Rate cost of bitstream 2.0's bands (issue 10): the ideal code length of the Kodak latents
coded in independent bands of R latent rows against one stream per image.

    python3 benchmarks/bench_bands.py --tables /tmp/lic2cpp-bench/e2e-relu/entropy.lice

Latents: PyTorch's g_a of the test fixture on the 24 Kodak images; tables: those of a build
(bench_e2e.py's by default). Each band loses the upper context on its first row and codes
its own activation flags (EntropyModel.estimate_bits(band_rows=R)); on top of that every
band costs a flush (at most 4 bytes, 2.5 on average) and a 4-byte entry of the sub-stream
table but the first (docs/bitstream.md#payload).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lic2cpp.entropy import EntropyModel
from lic2cpp.images import list_images, read_rgb
from lic2cpp.load import load_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FLUSH_BYTES = 2.5  # mean bytes of a range coder's flush (0..4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "fp_relu_128_192.pth")
    ap.add_argument("--tables", type=Path,
                    default=Path("/tmp/lic2cpp-bench/e2e-relu/entropy.lice"))
    ap.add_argument("--rows", default="4,8,16,32", help="band heights to try")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_model(args.model).eval()
    tables = EntropyModel.load(args.tables)
    latents = []
    for path in list_images(SHARED / "data" / "kodak"):
        x = torch.from_numpy(read_rgb(path)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            latents.append(net.g_a(x).numpy())
    one = sum(tables.estimate_bits(y)["bits_ctx"] for y in latents) / 8
    print(f"one stream per image: {one:.0f} bytes over {len(latents)} images (ideal)")
    for rows in (int(r) for r in args.rows.split(",")):
        ideal = sum(tables.estimate_bits(y, band_rows=rows)["bits_ctx"] for y in latents) / 8
        bands = sum(-(-y.shape[2] // rows) for y in latents)
        extra = bands * FLUSH_BYTES + (bands - len(latents)) * 4
        print(f"bands of {rows:3} rows: {bands:4} bands, ideal +{100 * (ideal - one) / one:.3f}%, "
              f"with flushes and table +{100 * (ideal + extra - one) / one:.3f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
