"""The codec end to end on Kodak (issues 3 and 9): fidelity, rate against CompressAI, range
coder overhead, determinism, refusal of another model's bitstream, build and coding times,
for each choice of quantisation offsets (--offsets median|mean|rd).

    python benchmarks/bench_codec.py --model ../shared/models/fp_relu_128_192.pth \
        --training-set ../shared/data/photos --images ../shared/data/kodak --fresh

Builds OUT (default /tmp/lic2cpp-bench/relu) with `lic2cpp build` (timed; --fresh starts
from an empty folder and an empty compiler cache so the time is the full build), then for
every image:
  (a) the C++ decoder's output vs PyTorch's g_s on the decoder's own de-quantised latent
      (--dump-latent): max |difference| in 8-bit values and the PSNR difference;
  (b) bpp and PSNR of lic2cpp vs CompressAI's compress/decompress of the same model;
  (c) the range coder's payload vs the ideal code length under the same tables
      (encoder --stats);
  (d) decoded output byte-identical across repeated runs; a bitstream of another model
      (built from --other-model) refused by this decoder;
  (e) encode/decode times (single thread, process wall time);
  (f) against CompressAI's decompress of the same model: the latent agreement with
      CompressAI's rounded latent round(y - median) + median, the worst per-image PSNR
      difference, the total and the worst per-image rate ratio.
Prints everything; --markdown FILE also writes the tables as Markdown, --json FILE the
per-image figures. --sweep-lambda L,... (with --offsets rd) also builds the codec at other
λ and codes every image with it (executables only), and --versus RUN.json (another run's
--json, e.g. the median default) prints the bits this run's codec needs at that run's PSNR:
log(bpp) interpolated linearly in PSNR between this run's operating points (its own point
and the sweep's; a single point is compared as it is).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lic2cpp.entropy import EntropyModel
from lic2cpp.evaluate import eval_compressai, eval_lic2cpp
from lic2cpp.hyper import is_hyperprior
from lic2cpp.images import list_images, psnr, read_rgb
from lic2cpp.load import load_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def build(model: Path, training_set: Path, out: Path, fresh: bool, extra: list[str]
          ) -> float:
    env = dict(os.environ)
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
        env["LIC2CPP_CACHE"] = tempfile.mkdtemp(prefix="lic2cpp-bench-cache-")
    cmd = [sys.executable, "-m", "lic2cpp", "build", "--model", str(model),
           "--training-set", str(training_set), "-o", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def gs_reference(net: torch.nn.Module, latent_hwc: np.ndarray, h: int, w: int) -> np.ndarray:
    """PyTorch g_s on the decoder's latent, cropped and rounded as the decoder does."""
    with torch.no_grad():
        y = torch.from_numpy(latent_hwc).permute(2, 0, 1)[None].float()
        x = net.g_s(y)[0, :, :h, :w].clamp(0, 1)
    return np.floor(x.permute(1, 2, 0).numpy().astype(np.float64) * 255 + 0.5).astype(np.uint8)


def encoder_stats(encoder: Path, image: Path, tmp: Path) -> dict:
    proc = subprocess.run([str(encoder), str(image), str(tmp / "stats.bin"), "--stats"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "fp_relu_128_192.pth")
    ap.add_argument("--training-set", type=Path, default=SHARED / "data" / "photos")
    ap.add_argument("--images", type=Path, default=SHARED / "data" / "kodak")
    ap.add_argument("--out", type=Path, default=Path("/tmp/lic2cpp-bench/relu"))
    ap.add_argument("--other-model", type=Path,
                    default=SHARED / "models" / "fp_gdn_128_192.pth",
                    help="model whose bitstream the decoder must refuse")
    ap.add_argument("--other-out", type=Path, default=Path("/tmp/lic2cpp-bench/other"))
    ap.add_argument("--fresh", action="store_true", help="time a build from scratch")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--repeats", type=int, default=3, help="decodes per image for (d)")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--offsets", choices=("median", "mean", "rd"), default="median",
                    help="quantisation offsets of the codec measured (lic2cpp build --offsets)")
    ap.add_argument("--lambda", dest="lmbda", type=float, default=None,
                    help="λ for --offsets rd (default: the checkpoint's)")
    ap.add_argument("--sweep-lambda", default=None, metavar="L,...",
                    help="with --offsets rd: also measure the codec built at these λ")
    ap.add_argument("--json", type=Path, default=None, help="write the per-image figures")
    ap.add_argument("--fast", action="store_true",
                    help="rate, PSNR and latents against CompressAI only: skip (a), (c), (d) "
                         "and the other model")
    ap.add_argument("--versus", type=Path, default=None, metavar="RUN.json",
                    help="another run's --json: bits at its PSNR (see above)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the executables run single-threaded too
    if args.sweep_lambda and args.offsets != "rd":
        ap.error("--sweep-lambda needs --offsets rd")
    offsets_args = ["--offsets", args.offsets]
    if args.lmbda is not None:
        offsets_args += ["--lambda", str(args.lmbda)]

    if is_hyperprior(load_model(args.model)):  # its y has no medians, its codec no .lice
        raise SystemExit(f"{args.model} is a hyperprior model: measure it with `lic2cpp eval` "
                         "and benchmarks/hyper_ingredients.py (docs/hyperprior.md)")
    build_s = build(args.model, args.training_set, args.out, args.fresh, offsets_args)
    if not args.fast:  # the other model only needs to exist: a small subset keeps it quick
        build(args.other_model, args.training_set, args.other_out, False,
              ["--max-patches", "64"])
    encoder, decoder = args.out / "encoder", args.out / "decoder"
    net = load_model(args.model)
    offsets = EntropyModel.load(args.out / "entropy.lice").offsets
    medians = net.entropy_bottleneck.quantiles[:, 0, 1].detach().numpy()
    images = list_images(args.images)[: args.limit]

    rows = []
    with tempfile.TemporaryDirectory(prefix="lic2cpp-bench-") as tmpname:
        tmp = Path(tmpname)
        # one untimed run each, so that page cache and allocator warm-up are not measured
        eval_lic2cpp(encoder, decoder, images[0], read_rgb(images[0]), tmp)
        eval_compressai(net, images[0], read_rgb(images[0]))
        for image in images:
            rgb = read_rgb(image)
            h, w = rgb.shape[:2]
            lat_path = tmp / "latent.npy"
            lic, decoded = eval_lic2cpp(encoder, decoder, image, rgb, tmp, lat_path)
            torch_res, _ = eval_compressai(net, image, rgb)
            # latent agreement: C++ g_a + quantisation vs PyTorch's round(y - o) + o with
            # the codec's offsets, and vs CompressAI's round(y - median) + median;
            # the encoder pads by edge replication to a multiple of 16
            padded = np.pad(rgb, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")
            with torch.no_grad():
                x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
                y = net.g_a(x)[0].permute(1, 2, 0).numpy()
            y_hat = np.rint(y - offsets) + offsets
            lat_diff = int(np.sum(np.abs(np.load(lat_path) - y_hat) > 1e-3))
            y_median = np.rint(y - medians) + medians
            lat_vs_median = int(np.sum(np.load(lat_path) != y_median))
            if args.fast:
                rows.append({"image": image.name, "lic": lic, "torch": torch_res,
                             "latent_mismatch": lat_diff, "latent_vs_median": lat_vs_median,
                             "latent_size": int(y_hat.size)})
                print(f"{image.name}: lic2cpp {lic.bpp:.4f} bpp {lic.psnr:.3f} dB | "
                      f"CompressAI {torch_res.bpp:.4f} bpp {torch_res.psnr:.3f} dB", flush=True)
                continue
            ref = gs_reference(net, np.load(lat_path), h, w)
            diff = np.abs(decoded.astype(int) - ref.astype(int))
            stats = encoder_stats(encoder, image, tmp)
            # (d) determinism
            outputs = set()
            for k in range(args.repeats):
                out = tmp / f"rep{k}.png"
                subprocess.run([str(decoder), str(tmp / (image.stem + ".bin")), str(out)],
                               check=True, capture_output=True)
                outputs.add(out.read_bytes())
            rows.append({
                "image": image.name, "lic": lic, "torch": torch_res,
                "max_diff": int(diff.max()), "pixels_off": int((diff > 0).sum()),
                "psnr_gs": psnr(rgb, ref), "stats": stats, "latent_mismatch": lat_diff,
                "latent_vs_median": lat_vs_median,
                "latent_size": int(y_hat.size),
                "deterministic": len(outputs) == 1,
            })
            r = rows[-1]
            print(f"{image.name}: lic2cpp {lic.bpp:.4f} bpp {lic.psnr:.3f} dB | CompressAI "
                  f"{torch_res.bpp:.4f} bpp {torch_res.psnr:.3f} dB | max diff vs g_s "
                  f"{r['max_diff']} | coder {stats['coder_overhead_pct']:+.4f}% | enc "
                  f"{lic.encode_s:.2f} s dec {lic.decode_s:.2f} s", flush=True)

        if not args.fast:  # (d) another model's bitstream
            other_bin = tmp / "other.bin"
            subprocess.run([str(args.other_out / "encoder"), str(images[0]), str(other_bin)],
                           check=True, capture_output=True)
            refused = subprocess.run([str(decoder), str(other_bin), str(tmp / "other.png")],
                                     capture_output=True, text=True)
            other_msg = refused.stderr.strip()
            other_ok = refused.returncode != 0 and not (tmp / "other.png").exists()

    if args.fast:
        report = summarise_fast(rows, build_s)
    else:
        report = summarise(rows, build_s, other_ok, other_msg, refused.returncode)
    report += "\n" + versus_compressai(rows, args.offsets)
    points = [operating_point(rows, f"{args.offsets} (λ = build's)")]
    if args.sweep_lambda:
        for lam in [float(v) for v in args.sweep_lambda.split(",")]:
            out = args.out.with_name(f"{args.out.name}-lambda{lam:g}")
            build(args.model, args.training_set, out, False, ["--offsets", "rd", "--lambda",
                                                              str(lam)])
            points.append(sweep_point(out, images, f"rd, λ = {lam:g}"))
    report += "\n" + "\n".join(
        f"- operating point {p['label']}: {p['bpp']:.4f} bpp (total bits / pixels), "
        f"{p['psnr']:.3f} dB (mean PSNR)" for p in points)
    if args.versus:
        report += "\n" + versus_run(points, json.loads(args.versus.read_text()))
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(json.dumps({
            "offsets": args.offsets, "points": points,
            "images": [{"image": r["image"], "bytes": r["lic"].bytes,
                        "pixels": r["lic"].width * r["lic"].height, "psnr": r["lic"].psnr,
                        "compressai_bytes": r["torch"].bytes,
                        "compressai_psnr": r["torch"].psnr} for r in rows]}, indent=1) + "\n")
    return 0


def summarise_fast(rows: list[dict], build_s: float) -> str:
    """--fast: per image, this codec's and CompressAI's rate and PSNR."""
    lines = ["| image | lic2cpp bpp | PSNR | CompressAI bpp | PSNR | bits ratio | PSNR diff |",
             "|---" * 7 + "|"]
    for r in rows:
        lic, tor = r["lic"], r["torch"]
        lines.append(f"| {r['image']} | {lic.bpp:.4f} | {lic.psnr:.3f} | {tor.bpp:.4f} "
                     f"| {tor.psnr:.3f} | {lic.bytes / tor.bytes:.4f} "
                     f"| {lic.psnr - tor.psnr:+.4f} |")
    lines += ["", f"- images: {len(rows)}; build {build_s:.1f} s",
              f"- latents: C++ de-quantised latent vs PyTorch round(g_a(x) - offset) + offset "
              f"(the codec's offsets): {sum(r['latent_mismatch'] for r in rows)} of "
              f"{sum(r['latent_size'] for r in rows)} elements differ"]
    return "\n".join(lines)


def operating_point(rows: list[dict], label: str) -> dict:
    """Total bits over total pixels and the mean PSNR of a run."""
    bits = sum(8 * r["lic"].bytes for r in rows)
    pixels = sum(r["lic"].width * r["lic"].height for r in rows)
    return {"label": label, "bpp": bits / pixels,
            "psnr": float(np.mean([r["lic"].psnr for r in rows]))}


def sweep_point(out: Path, images: list[Path], label: str) -> dict:
    """The codec in OUT on every image (executables only): its operating point."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="lic2cpp-sweep-") as tmpname:
        for image in images:
            rgb = read_rgb(image)
            lic, _ = eval_lic2cpp(out / "encoder", out / "decoder", image, rgb, Path(tmpname))
            rows.append({"lic": lic})
    return operating_point(rows, label)


def bpp_at_psnr(points: list[dict], target: float) -> tuple[float, str]:
    """log(bpp) linear in PSNR between the two points that bracket ``target`` (or the two
    nearest, extrapolating); a single point is returned as it is."""
    pts = sorted(points, key=lambda p: p["psnr"])
    if len(pts) == 1:
        return pts[0]["bpp"], "single point, not interpolated"
    lo = max([p for p in pts if p["psnr"] <= target], key=lambda p: p["psnr"], default=pts[0])
    hi = min([p for p in pts if p["psnr"] > target], key=lambda p: p["psnr"], default=pts[-1])
    if lo is hi:
        lo, hi = (pts[0], pts[1]) if target < pts[0]["psnr"] else (pts[-2], pts[-1])
    t = (target - lo["psnr"]) / (hi["psnr"] - lo["psnr"])
    inside = lo["psnr"] <= target <= hi["psnr"]
    bpp = math.exp(math.log(lo["bpp"]) + t * (math.log(hi["bpp"]) - math.log(lo["bpp"])))
    return bpp, "interpolated" if inside else "extrapolated"


def versus_run(points: list[dict], other: dict) -> str:
    ref = other["points"][0]
    bpp, how = bpp_at_psnr(points, ref["psnr"])
    return (f"- versus {other['offsets']} ({ref['bpp']:.4f} bpp, {ref['psnr']:.3f} dB): this "
            f"codec needs {bpp:.4f} bpp at {ref['psnr']:.3f} dB ({how}): "
            f"{100 * (bpp / ref['bpp'] - 1):+.2f}% bits at equal PSNR")


def versus_compressai(rows: list[dict], offsets: str) -> str:
    """(f): this codec against CompressAI's compress/decompress of the same model."""
    lic_bits = sum(r["lic"].bytes for r in rows)
    tor_bits = sum(r["torch"].bytes for r in rows)
    ratios = [r["lic"].bytes / r["torch"].bytes for r in rows]
    worst = max(rows, key=lambda r: abs(r["lic"].psnr - r["torch"].psnr))
    same = sum(r["latent_size"] - r["latent_vs_median"] for r in rows)
    size = sum(r["latent_size"] for r in rows)
    return "\n".join([
        f"- (f) offsets {offsets}: latent equal to CompressAI's round(y - median) + median "
        f"in {same} of {size} elements ({100 * same / size:.4f}%); worst per-image PSNR "
        f"difference to CompressAI's decompress {worst['lic'].psnr - worst['torch'].psnr:+.4f} "
        f"dB ({worst['image']}); bits {lic_bits * 8} vs {tor_bits * 8}: "
        f"{lic_bits / tor_bits:.4f}x in total, per image from {min(ratios):.4f}x to "
        f"{max(ratios):.4f}x ({sum(x < 1 for x in ratios)} of {len(ratios)} images below "
        "CompressAI)",
    ])


def summarise(rows: list[dict], build_s: float, other_ok: bool, other_msg: str,
              other_rc: int) -> str:
    def mean(key: str, sub: str | None = None) -> float:
        vals = [getattr(r[key], sub) if sub else r[key] for r in rows]
        return float(np.mean(vals))

    lines = ["| image | lic2cpp bpp | PSNR | MS-SSIM | CompressAI bpp | PSNR | MS-SSIM "
             "| rate saving | max diff vs g_s | PSNR diff vs g_s (dB) | coder overhead "
             "| enc s | dec s | CompressAI enc s | dec s |",
             "|---" * 15 + "|"]
    for r in rows:
        lic, tor = r["lic"], r["torch"]
        dpsnr = abs(lic.psnr - r["psnr_gs"])
        lines.append(
            f"| {r['image']} | {lic.bpp:.4f} | {lic.psnr:.3f} | {lic.ms_ssim:.4f} "
            f"| {tor.bpp:.4f} | {tor.psnr:.3f} | {tor.ms_ssim:.4f} "
            f"| {100 * (1 - lic.bpp / tor.bpp):.2f}% | {r['max_diff']} | {dpsnr:.4f} "
            f"| {r['stats']['coder_overhead_pct']:.4f}% | {lic.encode_s:.3f} "
            f"| {lic.decode_s:.3f} | {tor.encode_s:.3f} | {tor.decode_s:.3f} |")
    lic_bpp, tor_bpp = mean("lic", "bpp"), mean("torch", "bpp")
    ideal = sum(r["stats"]["ideal_bits"] for r in rows)
    payload = sum(r["stats"]["payload_bits"] for r in rows)
    plain = sum(r["stats"]["ideal_bits_plain"] for r in rows)
    header = float(np.mean([r["stats"]["header_bytes"] for r in rows]))
    pixels = sum(r["lic"].width * r["lic"].height for r in rows)
    max_dpsnr = max(abs(r["lic"].psnr - r["psnr_gs"]) for r in rows)
    lines += [
        f"| **average** | {lic_bpp:.4f} | {mean('lic', 'psnr'):.3f} "
        f"| {mean('lic', 'ms_ssim'):.4f} | {tor_bpp:.4f} | {mean('torch', 'psnr'):.3f} "
        f"| {mean('torch', 'ms_ssim'):.4f} | {100 * (1 - lic_bpp / tor_bpp):.2f}% "
        f"| {max(r['max_diff'] for r in rows)} (max) | {max_dpsnr:.4f} (max) "
        f"| {100 * (payload - ideal) / ideal:.4f}% (total) "
        f"| {mean('lic', 'encode_s'):.3f} | {mean('lic', 'decode_s'):.3f} "
        f"| {mean('torch', 'encode_s'):.3f} | {mean('torch', 'decode_s'):.3f} |",
        "",
        f"- images: {len(rows)}",
        f"- (a) fidelity: max |C++ - PyTorch g_s| = {max(r['max_diff'] for r in rows)} "
        f"(8-bit), samples differing: "
        f"{sum(r['pixels_off'] for r in rows)} of {3 * pixels}; "
        f"max PSNR difference {max_dpsnr:.5f} dB; "
        f"pass: {all(r['max_diff'] <= 1 for r in rows) and max_dpsnr <= 0.01}",
        f"- latents: C++ de-quantised latent vs PyTorch round(g_a(x) - offset) + offset (the "
        f"codec's offsets): "
        f"{sum(r['latent_mismatch'] for r in rows)} of "
        f"{sum(r['latent_size'] for r in rows)} elements differ",
        f"- (b) rate: lic2cpp {lic_bpp:.4f} bpp vs CompressAI {tor_bpp:.4f} bpp: "
        f"{100 * (1 - lic_bpp / tor_bpp):.2f}% fewer bits; PSNR lic2cpp "
        f"{mean('lic', 'psnr'):.3f} dB vs CompressAI {mean('torch', 'psnr'):.3f} dB",
        f"- entropy tables on Kodak (ideal code length): with contexts "
        f"{ideal / pixels:.4f} bpp, per-channel CDFs only {plain / pixels:.4f} bpp "
        f"(contexts save {100 * (1 - ideal / plain):.2f}%); header {header:.0f} bytes",
        f"- (c) range coder: payload {payload / 8:.0f} bytes vs ideal {ideal / 8:.0f} bytes: "
        f"{100 * (payload - ideal) / ideal:+.4f}%; worst image "
        f"{max(r['stats']['coder_overhead_pct'] for r in rows):+.4f}%",
        f"- (d) decoded output byte-identical across repeats on every image: "
        f"{all(r['deterministic'] for r in rows)}; other model's bitstream refused: "
        f"{other_ok} (exit {other_rc}: {other_msg})",
        f"- (e) build time: {build_s:.1f} s; encode {mean('lic', 'encode_s'):.3f} s, decode "
        f"{mean('lic', 'decode_s'):.3f} s per image on average (single thread, process wall "
        f"time); CompressAI (PyTorch, 1 thread) compress {mean('torch', 'encode_s'):.3f} s, "
        f"decompress {mean('torch', 'decode_s'):.3f} s",
    ]
    if any(math.isnan(r["lic"].ms_ssim) for r in rows):
        lines.append("- MS-SSIM is NaN for images with a side of 160 pixels or less")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
