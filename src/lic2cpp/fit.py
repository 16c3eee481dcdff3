"""`lic2cpp fit`: the entropy model of a network's latents, fitted on a training set.

Runs the model's analysis transform ``g_a`` (in PyTorch) over every training patch, chooses
the quantisation offsets (:mod:`lic2cpp.offsets`: the model's medians by default) and hands
the latents to :func:`lic2cpp.entropy.fit_entropy_model`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lic2cpp.datasets import load_training_set, looks_like_evaluation_set, progress_enabled
from lic2cpp.entropy import fit_entropy_model
from lic2cpp.errors import LicError
from lic2cpp.load import add_weights_only_arg, load_model
from lic2cpp.offsets import (
    DEFAULT_OFFSETS,
    OFFSET_MODES,
    check_mode,
    choose_offsets,
    resolve_lambda,
)

DEFAULT_BATCH = 8


@dataclass
class FitResult:
    """What a fit produced, kept for the build report."""

    entropy_model: Any  # lic2cpp.entropy.EntropyModel
    latents: np.ndarray  # float32 [N, C, h, w]
    summary: dict[str, Any]  # model summary, see summarise_model
    offsets: dict[str, Any]  # how the offsets were chosen, see OffsetChoice.summary


def summarise_model(net: Any) -> dict[str, Any]:
    """Architecture name, N, M and parameter count of a CompressAI model."""
    return {
        "arch": type(net).__name__,
        "N": getattr(net, "N", None),
        "M": getattr(net, "M", None),
        "params": int(sum(p.numel() for p in net.parameters())),
        "params_g_a": int(sum(p.numel() for p in net.g_a.parameters())),
        "params_g_s": int(sum(p.numel() for p in net.g_s.parameters())),
        "downsampling": analysis_downsampling(net),
    }


def analysis_downsampling(net: Any) -> int:
    """g_a's downsampling factor: the product of its convolutions' strides (a hyperprior
    model's ``downsampling_factor`` also counts h_a's)."""
    factor = 1
    for m in net.g_a.modules():
        if isinstance(m, torch.nn.Conv2d):
            factor *= int(m.stride[0])
    return factor


def compute_latents(net: Any, patches: np.ndarray, batch_size: int = DEFAULT_BATCH,
                    progress: bool | None = None) -> np.ndarray:
    """``g_a`` over uint8 NHWC patches, in batches; float32 latents [N, C, h, w]."""
    if patches.ndim != 4 or patches.shape[-1] != 3 or patches.dtype != np.uint8:
        raise LicError(f"patches must be uint8 (N, H, W, 3), got {patches.dtype} "
                       f"{tuple(patches.shape)}")
    if progress is None:
        progress = progress_enabled()
    chunks = []
    starts = range(0, len(patches), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="g_a over training patches", unit="batch",
                          disable=not progress):
            batch = np.array(patches[start:start + batch_size])  # copy: reads mmap pages here
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
            chunks.append(net.g_a(x).float().numpy())
    return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)


def check_training_path(path: Path) -> None:
    if looks_like_evaluation_set(path):
        raise LicError(
            f"{path} looks like the Kodak evaluation set; entropy statistics must be fitted "
            "on training data only (rename the folder if this really is training data)"
        )


def fit_latents(net: Any, training_set: str | Path, *, max_patches: int | None = None,
                seed: int = 0, patch_size: int = 256, batch_size: int = DEFAULT_BATCH,
                offsets: str = DEFAULT_OFFSETS, lmbda: float | None = None,
                lambda_source: str | None = None, progress: bool | None = None) -> FitResult:
    """Load the training set, run ``g_a`` on it, choose the offsets, fit the entropy model.

    ``lmbda`` is needed for ``offsets="rd"`` only (see :func:`lic2cpp.offsets.resolve_lambda`).
    """
    check_mode(offsets)
    check_training_path(Path(training_set))
    if offsets == "rd" and lmbda is None:
        raise LicError("--offsets rd needs λ (--lambda)")
    patches = load_training_set(training_set, patch_size=patch_size,
                                max_patches=max_patches, seed=seed)
    latents = compute_latents(net, patches, batch_size=batch_size, progress=progress)
    show = progress_enabled() if progress is None else progress
    choice = choose_offsets(offsets, net, latents, patches, lmbda=lmbda,
                            lambda_source=lambda_source, progress=show)
    model = fit_entropy_model(latents, choice.offsets, progress=show)
    return FitResult(entropy_model=model, latents=latents, summary=summarise_model(net),
                     offsets=choice.summary())


def fit_to_file(model_path: str | Path, training_set: str | Path, out_path: str | Path, *,
                arch: str | None = None, weights_only: bool = False,
                max_patches: int | None = None, seed: int = 0,
                patch_size: int = 256, batch_size: int = DEFAULT_BATCH,
                offsets: str = DEFAULT_OFFSETS, lmbda: float | None = None,
                progress: bool | None = None) -> FitResult:
    """Load the model, fit, and save the entropy model to ``out_path``."""
    check_mode(offsets)
    check_training_path(Path(training_set))  # before the (slow) model load
    net = load_model(model_path, arch, weights_only=weights_only)
    source = None
    if offsets == "rd":
        lmbda, source = resolve_lambda(lmbda, model_path)
    result = fit_latents(net, training_set, max_patches=max_patches, seed=seed,
                         patch_size=patch_size, batch_size=batch_size, offsets=offsets,
                         lmbda=lmbda, lambda_source=source, progress=progress)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result.entropy_model.save(out_path)
    return result


def describe_offsets(summary: dict[str, Any]) -> str:
    """One line for the offsets a fit used (CLI output and build report)."""
    mode = summary.get("mode")
    if mode == "median":
        return "median (the model's entropy-bottleneck medians, as CompressAI's codec)"
    if mode == "mean":
        return "mean (the training latents' per-channel means)"
    if mode == "given":
        same = ("equal to the model's medians" if summary.get("equal_medians")
                else "not the model's medians")
        return f"from the given tables ({same})"
    if mode == "rd":
        return (f"rd (per channel, minimising λ·255²·MSE + bpp on the training set; "
                f"λ = {summary.get('lambda')} from {summary.get('lambda_source')})")
    return str(mode)


def offsets_option(args: argparse.Namespace) -> str:
    """--offsets (default median); --lambda only goes with rd."""
    mode = args.offsets or DEFAULT_OFFSETS
    if args.lmbda is not None and mode != "rd":
        raise LicError("--lambda is only used with --offsets rd")
    return mode


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `fit` and `build`."""
    parser.add_argument("--arch", default=None,
                        help="CompressAI architecture name when the checkpoint is a state_dict "
                             "(e.g. bmshj2018-factorized-relu)")
    parser.add_argument("--max-patches", type=int, default=None, metavar="N",
                        help="use at most N training patches (a seeded random subset)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for patch placement and the subset (default 0)")
    parser.add_argument("--patch-size", type=int, default=256,
                        help="patch size in pixels (default 256, the upstream layout)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"patches per g_a batch (default {DEFAULT_BATCH})")
    add_weights_only_arg(parser)
    parser.add_argument("--offsets", choices=OFFSET_MODES, default=None,
                        help="quantisation offsets q = round(y - offset): 'median' (default) "
                             "the model's entropy-bottleneck medians, as CompressAI's codec; "
                             "'mean' the training latents' channel means; 'rd' chosen per "
                             "channel on the training set to minimise λ·255²·MSE + bpp")
    parser.add_argument("--lambda", dest="lmbda", type=float, default=None, metavar="λ",
                        help="rate-distortion trade-off for --offsets rd (default: the λ "
                             "recorded by `lic2cpp train` in the checkpoint)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit the entropy model of a model's latents on a training set",
        description="Run the model's g_a over the training patches and fit the entropy "
                    "model (quantisation offsets, context CDFs, coding order). The training set "
                    "is a .npy or raw uint8 N×256×256×3 file, or a folder of images.",
    )
    p.add_argument("--model", required=True, help="CompressAI checkpoint (.pth)")
    p.add_argument("--training-set", required=True, metavar="PATH",
                   help=".npy / raw N×256×256×3 uint8 file, or a folder of images")
    p.add_argument("-o", "--output", required=True, help="entropy model file to write")
    add_training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = fit_to_file(args.model, args.training_set, args.output, arch=args.arch,
                         weights_only=args.weights_only, max_patches=args.max_patches,
                         seed=args.seed, patch_size=args.patch_size, batch_size=args.batch_size,
                         offsets=offsets_option(args), lmbda=args.lmbda)
    n, c, h, w = result.latents.shape
    print(f"fitted on {n} patches, latent {c}x{h}x{w} per patch; wrote {args.output}")
    print(f"quantisation offsets: {describe_offsets(result.offsets)}")
    est = result.entropy_model.estimate_bits(result.latents)
    pixels = n * args.patch_size * args.patch_size
    ctx, plain = est["bits_ctx"] / pixels, est["bits_plain"] / pixels
    saving = 100.0 * (1.0 - ctx / plain) if plain else 0.0
    print(f"ideal code length on these patches: {ctx:.4f} bpp with contexts, {plain:.4f} bpp "
          f"with per-channel CDFs only (contexts save {saving:.2f}%)")
    return 0
