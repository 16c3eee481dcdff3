"""Do a hyperprior codec's bitstreams decode identically everywhere? (docs/hyperprior.md)

For every image of a folder: a bitstream from the encoder with its best kernels and one
with the scalar kernels (LIC_FORCE_SCALAR=1); each is decoded by the decoder with its best
kernels on 1 and 2 threads, with the scalar kernels, and by a copy of the decoder compiled
at -O0. Every decode of a stream must give the same de-quantised latent (``--dump-latent``)
byte for byte: that is what the integer h_s guarantees. The pixels come from the float
``g_s``: identical for the same kernels (any thread count, -O0), while the scalar kernels
round differently from the FMA ones (a level at most; the maximum difference is printed).
Prints one row per stream and exits non-zero if a latent differs or pixels of the same
kernels differ.

    python benchmarks/check_determinism.py OUT/ --images ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lic2cpp.codegen import png_link_args, program_main
from lic2cpp.images import encoder_input, list_images, read_rgb
from lic2cpp.toolchain import compile_program, cpp_dir


def o0_decoder(out: Path) -> Path:
    """The codec's decoder compiled without optimisation (same sources and embedded files:
    the program, its generated half and the C interface's decoding side)."""
    capi = cpp_dir() / "codec" / "capi"
    return compile_program([program_main("decoder"), out / "src" / "lic2cpp_decoder.cpp",
                            capi / "codec.cpp", capi / "decode.cpp"],
                           "decoder-O0", extra_flags=["-O0"], libs=png_link_args())


def run(cmd: list[str], scalar: bool = False) -> None:
    env = dict(os.environ, LIC_FORCE_SCALAR="1") if scalar else None
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("codec", type=Path, help="a built codec folder (lic2cpp build -o OUT)")
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--count", type=int, default=0, help="first N images only (0: all)")
    args = ap.parse_args()
    enc, dec = args.codec / "encoder", args.codec / "decoder"
    dec_o0 = o0_decoder(args.codec)
    images = list_images(args.images)[: args.count or None]
    decoders = {"best/1": ([dec], False, 1), "best/2": ([dec], False, 2),
                "scalar/1": ([dec], True, 1), "-O0/1": ([dec_o0], False, 1)}
    failures = worst = 0
    print(f"{'image':<14} {'stream':<8} {'bytes':>7}  latents equal  pixels equal*  scalar |dpx|")
    print(f"  (* best kernels on 1 and 2 threads and -O0; decoders: {', '.join(decoders)})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for image in images:
            src = encoder_input(image, read_rgb(image), work)
            for stream, scalar in (("best", False), ("scalar", True)):
                binf = work / f"{stream}.bin"
                run([enc, src, binf], scalar=scalar)
                latents, pixels = {}, {}
                for name, (cmd, dec_scalar, threads) in decoders.items():
                    ppm = work / f"{name.replace('/', '_')}.ppm"
                    lat = work / f"{name.replace('/', '_')}.npy"
                    run([*cmd, binf, ppm, "--threads", str(threads), "--dump-latent", lat],
                        scalar=dec_scalar)
                    latents[name], pixels[name] = lat.read_bytes(), read_rgb(ppm)
                same_latent = all(v == latents["best/1"] for v in latents.values())
                same_pixels = all(np.array_equal(pixels[k], pixels["best/1"])
                                  for k in ("best/2", "-O0/1"))
                diff = int(np.abs(pixels["scalar/1"].astype(int) - pixels["best/1"]).max())
                failures += not (same_latent and same_pixels)
                worst = max(worst, diff)
                print(f"{image.name:<14} {stream:<8} {binf.stat().st_size:>7}  "
                      f"{'yes' if same_latent else 'NO':>13}  {'yes' if same_pixels else 'NO':>14}"
                      f"  {diff:>13}")
    print(f"{len(images)} images, {2 * len(images)} streams, {4 * 2 * len(images)} decodes: "
          + ("latents identical" if failures == 0 else f"{failures} streams differ")
          + f"; scalar g_s pixels within {worst} of the best kernels'")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
