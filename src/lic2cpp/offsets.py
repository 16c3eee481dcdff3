"""Quantisation offsets: the per-channel value ``o`` the encoder rounds around.

The encoder codes ``q = round(y - o)`` and the decoder reconstructs ``y_hat = q + o``
(float32; docs/entropy-model.md). Three ways to choose ``o`` (``lic2cpp fit --offsets``):

- ``median`` (default): the model's own operating point, the entropy bottleneck's medians
  ``quantiles[:, 0, 1]``, which CompressAI's ``compress``/``decompress`` round around. The
  decoded latent then equals CompressAI's, so the decoded image is the model's;
- ``mean``: the per-channel means of the training latents (lic2cpp's choice before
  issue 9; close to the medians on photos, far from them on unusual images);
- ``rd``: chosen per channel on the training set to minimise ``λ·255²·MSE + bpp`` (the
  training loss's units), MSE measured on images through ``g_s`` -- see :func:`rd_offsets`
  and docs/entropy-model.md#quantisation-offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp.errors import LicError

OFFSET_MODES = ("median", "mean", "rd")
DEFAULT_OFFSETS = "median"


@dataclass
class OffsetChoice:
    """The offsets and how they were chosen (recorded in the build report)."""

    mode: str
    offsets: np.ndarray  # float32 [C]
    lmbda: float | None = None  # rd only
    lambda_source: str | None = None  # "checkpoint" or "--lambda"
    info: dict[str, Any] = field(default_factory=dict)  # rd diagnostics

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.lmbda is not None:
            out.update({"lambda": self.lmbda, "lambda_source": self.lambda_source})
        out.update(self.info)
        return out


def check_mode(mode: str) -> str:
    if mode not in OFFSET_MODES:
        raise LicError(f"unknown offsets '{mode}' (choose from {', '.join(OFFSET_MODES)})")
    return mode


def model_medians(net: Any, channels: int) -> np.ndarray:
    """The entropy bottleneck's medians, float32 [channels]; LicError if there are none."""
    eb = getattr(net, "entropy_bottleneck", None)
    quantiles = getattr(eb, "quantiles", None)
    if quantiles is None or quantiles.dim() != 3 or quantiles.shape[2] != 3:
        raise LicError(f"{type(net).__name__} has no factorized entropy bottleneck, so no "
                       "medians; use --offsets mean")
    if quantiles.shape[0] != channels:
        raise LicError(f"the entropy bottleneck has {quantiles.shape[0]} channels, the latent "
                       f"{channels}: its medians are not the latent's; use --offsets mean")
    medians = quantiles[:, 0, 1].detach().float().cpu().numpy().astype(np.float32)
    if not np.isfinite(medians).all():
        raise LicError("the entropy bottleneck's medians are not finite")
    return medians


def checkpoint_lambda(path: str | Path) -> float | None:
    """λ recorded by `lic2cpp train` (``ckpt["config"]["lmbda"]``), or None."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # load_model already reported unreadable files; no λ here
        return None
    config = obj.get("config") if isinstance(obj, dict) else None
    value = config.get("lmbda") if isinstance(config, dict) else None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    return None


def resolve_lambda(given: float | None, model_path: str | Path | None) -> tuple[float, str]:
    """λ for ``--offsets rd``: ``--lambda`` if given, else the checkpoint's."""
    if given is not None:
        if not given > 0:
            raise LicError(f"--lambda must be positive, got {given}")
        return float(given), "--lambda"
    stored = checkpoint_lambda(model_path) if model_path is not None else None
    if stored is None:
        raise LicError("--offsets rd needs λ: the checkpoint does not record one (it was not "
                       "written by `lic2cpp train`); give --lambda")
    return stored, "checkpoint"


def choose_offsets(mode: str, net: Any, latents: np.ndarray, patches: np.ndarray | None = None,
                   *, lmbda: float | None = None, lambda_source: str | None = None,
                   progress: bool = False) -> OffsetChoice:
    """Offsets for ``mode`` given the training latents (and patches, for ``rd``)."""
    from lic2cpp.entropy import channel_means

    check_mode(mode)
    channels = int(latents.shape[1])
    if mode == "mean":
        return OffsetChoice("mean", channel_means(latents))
    medians = model_medians(net, channels)
    if mode == "median":
        return OffsetChoice("median", medians)
    if lmbda is None or patches is None:
        raise LicError("--offsets rd needs λ and the training patches")
    from lic2cpp.rd_offsets import rd_offsets

    offsets, info = rd_offsets(net, patches, latents, lmbda, medians, progress=progress)
    return OffsetChoice("rd", offsets, lmbda=lmbda, lambda_source=lambda_source, info=info)
