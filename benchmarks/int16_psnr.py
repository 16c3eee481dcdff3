"""PSNR of the int16 fixed-point g_s (numpy reference, docs/int16.md) against the float g_s.

Both decoders get the same latents (the codec's ``y_hat = round(y - offset) + offset``, with
the entropy bottleneck's medians as offsets, the codec's default, or with ``--offsets mean``
the calibration patches' means); the float output is PyTorch's g_s, the int16 one
the exact reference arithmetic of ``lic2cpp.fixedpoint``. Pixels follow the decoder's rule.
Evaluation only: the quantizers never see the evaluation images.

    python benchmarks/int16_psnr.py --model src/lic2cpp/data/default_model.pth \\
        --training-set ../shared/data/photos --images ../shared/data/kodak --count 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lic2cpp import fixedpoint as fx
from lic2cpp.convert import convert_model
from lic2cpp.images import list_images, read_rgb
from lic2cpp.int16 import calibration_set, codec_latents, int16_synthesis
from lic2cpp.load import load_model
from lic2cpp.modelformat import read_licm
from lic2cpp.offsets import model_medians


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--quantizers", default=None, help="pickle with a 'quantizers' dict")
    p.add_argument("--calibrate", action="store_true",
                   help="ignore the checkpoint's quantizers and calibrate")
    p.add_argument("--training-set", required=True)
    p.add_argument("--calib-patches", type=int, default=16)
    p.add_argument("--images", required=True)
    p.add_argument("--count", type=int, default=4, help="first N images of --images")
    p.add_argument("--offsets", choices=("median", "mean"), default="median",
                   help="what the latents are rounded around: the entropy bottleneck's "
                        "medians (the codec's default, docs/entropy-model.md) or the "
                        "calibration patches' means")
    args = p.parse_args()
    torch.set_num_threads(1)

    net = load_model(args.model)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        _, gs_path = convert_model(net, Path(tmp))
        float_gs = read_licm(gs_path)
    offsets = (model_medians(net, float_gs.in_channels)
               if args.offsets == "median" else None)
    calib = calibration_set(net, args.training_set, args.calib_patches, offsets=offsets)
    model, report = int16_synthesis(
        net, float_gs, checkpoint=None if args.calibrate else args.model,
        quantizers_file=args.quantizers, calib=calib)
    shift = [n for n in model.nodes if n.op != "dequantize"][-1].attrs["out_shift"]
    print(report.summary())
    print(f"conversion {time.time() - t0:.1f} s; layers (node: weight shift, lowered, "
          "output shift, SNR vs float layer):")
    for r in report.nodes:
        if r.weight_shift is not None:
            print(f"  {r.node} {r.op}: w {r.weight_shift} (-{r.lowered_bits}), out "
                  f"{r.out_shift}, {r.error_db:.1f} dB" if r.error_db is not None else
                  f"  {r.node} {r.op}: w {r.weight_shift} (-{r.lowered_bits}), out {r.out_shift}")
    losses = []
    print(f"{'image':<14}{'float dB':>10}{'int16 dB':>10}{'loss dB':>10}{'max |dpx|':>10}"
          f"{'int16 vs float dB':>19}")
    for path in list_images(args.images)[:args.count]:
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        m = 16  # the codec pads to a multiple of the downsampling factor by edge replication
        padded = np.pad(rgb, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
        y_hat = codec_latents(net, padded[None], calib.latent_mean)
        with torch.no_grad():
            x = torch.from_numpy(y_hat).permute(0, 3, 1, 2)
            out = net.g_s(x)[0].permute(1, 2, 0).numpy()
        float_px = np.floor(np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)[:h, :w]
        q = fx.run_values(model, y_hat[0])[-2]
        int_px = fx.to_pixels(q, shift)[:h, :w]
        pf, pi = psnr(rgb, float_px), psnr(rgb, int_px)
        losses.append(pf - pi)
        diff = int(np.abs(float_px.astype(int) - int_px.astype(int)).max())
        print(f"{path.name:<14}{pf:>10.4f}{pi:>10.4f}{pf - pi:>10.4f}{diff:>10}"
              f"{psnr(float_px, int_px):>19.2f}")
    print(f"mean PSNR loss int16 vs float: {np.mean(losses):.4f} dB "
          f"(worst image {np.max(losses):.4f} dB) over {len(losses)} images")


if __name__ == "__main__":
    main()
