"""Quantization-aware training for an int16 fixed-point decoder (`lic2cpp train --int16`).

The synthesis transform ``g_s`` is what a fixed-point decoder runs, so it is what we make
int16-representable (the upstream convention: CompressAI's ``sadl_codec`` quantizes the
decoder). Every tensor gets a power-of-two scale: a value ``v`` is stored as the integer
``q = clip(round(v * 2**shift), -32768, 32767)``, and means ``q / 2**shift``.

- Parameters (each weight and bias of ``g_s``): the shift is the largest one at which the
  tensor's current largest magnitude still fits in int16 (capped at ``MAX_SHIFT``),
  re-chosen from the live values at every step.
- Activations (the latent entering ``g_s`` and the output of every convolution): the shift
  is chosen from a running maximum of the observed magnitudes.

In the forward pass each of these tensors goes through quantize -> clip -> dequantize with
a straight-through gradient, so the network learns to live on the grid. The model itself
stays a plain CompressAI module (the quantized forward is computed functionally here), so
checkpoints pickle and convert exactly like float ones.

The final checkpoint carries (see docs/training.md):
- ``quant_layer``: ``list[int]``, one shift per tensor of ``g_s.named_parameters()``, in
  that order (``0.weight, 0.bias, 2.weight, ...``) — upstream's field. The saved weights
  are exactly ``int16 / 2**shift``.
- ``quant_act``: ``list[int]``, the shift of the latent entering ``g_s`` followed by the
  shift of each convolution's output, in network order.
- ``cdf``, ``cdflen``, ``cdfoff``: the entropy bottleneck's ``_quantized_cdf``,
  ``_cdf_length`` and ``_offset`` (int32 tensors), after ``update(force=True)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from lic2cpp.errors import LicError

if TYPE_CHECKING:
    from compressai.models import CompressionModel

INT16_MIN, INT16_MAX = -32768, 32767
# Shifts beyond this buy no precision a float32 reference could check, and keep products
# of an int16 activation and an int16 weight far from int32 overflow in a runtime.
MAX_SHIFT = 24
MIN_SHIFT = -8
# Running maximum of activation magnitudes: decays slowly so a rare large batch still
# widens the range for a while, but one outlier does not pin it forever.
RANGE_DECAY = 0.999


def shift_for(max_abs: float, max_shift: int = MAX_SHIFT) -> int:
    """Largest power-of-two shift at which ``max_abs`` still fits in int16."""
    if not math.isfinite(max_abs):
        raise LicError("int16 quantization: a tensor holds non-finite values")
    if max_abs <= 0:
        return max_shift
    shift = math.floor(math.log2(INT16_MAX / max_abs))
    return int(min(max(shift, MIN_SHIFT), max_shift))


def fake_quant(x: torch.Tensor, shift: int) -> torch.Tensor:
    """quantize -> clip to int16 -> dequantize, with a straight-through gradient."""
    return x + (snap(x, shift) - x).detach()


def snap(x: torch.Tensor, shift: int) -> torch.Tensor:
    """quantize -> clip -> dequantize without autograd: exactly ``int16 / 2**shift``."""
    scale = 2.0**shift
    return torch.clamp(torch.round(x.detach() * scale), INT16_MIN, INT16_MAX) / scale


def to_int16(x: torch.Tensor, shift: int) -> torch.Tensor:
    """The integers a fixed-point runtime stores (no clipping: callers check the range)."""
    return torch.round(x.detach().double() * 2.0**shift)


def decoder_layers(net: CompressionModel) -> list[nn.Module]:
    """The layers of ``g_s``, checked to be what the quantized forward supports."""
    g_s = getattr(net, "g_s", None)
    if not isinstance(g_s, nn.Sequential):
        raise LicError("--int16 needs a model whose g_s is an nn.Sequential")
    layers = list(g_s)
    for layer in layers:
        if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU, nn.LeakyReLU)):
            raise LicError(
                f"--int16 supports convolutions and (leaky) ReLU in g_s, not {type(layer).__name__}"
            )
    return layers


class QatController:
    """Owns the activation ranges and computes the fake-quantized decoder forward."""

    def __init__(self, net: CompressionModel, start_step: int = 0) -> None:
        self.layers = decoder_layers(net)
        self.net = net
        self.start_step = start_step
        self.active = start_step <= 0
        n_conv = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in self.layers)
        # ranges[0]: latent entering g_s; ranges[k]: output of the k-th convolution.
        self.ranges: list[float] = [0.0] * (n_conv + 1)

    # -- state ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"ranges": list(self.ranges), "active": self.active}

    def load_state(self, state: dict[str, Any]) -> None:
        if len(state["ranges"]) != len(self.ranges):
            raise LicError("checkpoint's int16 ranges do not match the model")
        self.ranges = [float(r) for r in state["ranges"]]
        self.active = bool(state["active"])

    def before_step(self, step: int) -> None:
        self.active = step >= self.start_step

    # -- shifts -----------------------------------------------------------------------
    def param_shifts(self) -> list[int]:
        """One shift per tensor of ``g_s.named_parameters()``, in that order."""
        params = self.net.g_s.named_parameters()
        return [shift_for(float(p.detach().abs().max())) for _, p in params]

    def act_shifts(self) -> list[int]:
        return [shift_for(r) for r in self.ranges]

    def _observe(self, index: int, x: torch.Tensor) -> int:
        """Update the running range of activation ``index`` (training only); its shift."""
        if self.net.training:
            cur = float(x.detach().abs().max())
            self.ranges[index] = max(cur, self.ranges[index] * RANGE_DECAY)
        return shift_for(self.ranges[index]) if self.ranges[index] > 0 else 0

    # -- forward ----------------------------------------------------------------------
    def synthesize(self, y_hat: torch.Tensor) -> torch.Tensor:
        """``g_s(y_hat)`` with every parameter and activation on its int16 grid."""
        x = fake_quant(y_hat, self._observe(0, y_hat))
        act = 0
        for layer in self.layers:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                w = fake_quant(layer.weight, shift_for(float(layer.weight.detach().abs().max())))
                b = layer.bias
                if b is not None:
                    b = fake_quant(b, shift_for(float(b.detach().abs().max())))
                if isinstance(layer, nn.Conv2d):
                    x = layer._conv_forward(x, w, b)
                else:  # a transposed convolution's padding is never a string ('same')
                    padding = cast(tuple[int, int], layer.padding)
                    x = F.conv_transpose2d(x, w, b, layer.stride, padding, layer.output_padding,
                                           layer.groups, layer.dilation)
                act += 1
                x = fake_quant(x, self._observe(act, x))
            elif isinstance(layer, nn.LeakyReLU):
                # (leaky) ReLU of a grid value: leaky's product leaves the grid, requantize.
                x = F.leaky_relu(x, layer.negative_slope)
                x = fake_quant(x, shift_for(self.ranges[act]) if self.ranges[act] > 0 else 0)
            else:
                x = F.relu(x)  # ReLU keeps grid values on the grid
        return x

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """The model's forward (same outputs as CompressAI's) with the quantized decoder."""
        if not self.active:
            return self.net(x)
        y = self.net.g_a(x)
        y_hat, y_likelihoods = self.net.entropy_bottleneck(y)
        return {"x_hat": self.synthesize(y_hat), "likelihoods": {"y": y_likelihoods}}

    # -- export -----------------------------------------------------------------------
    @torch.no_grad()
    def export_fields(self, net: CompressionModel) -> dict[str, Any]:
        """Snap ``g_s``'s parameters onto their grid and return the checkpoint fields.

        Call after ``update(force=True)`` (the CDFs must be current).
        """
        shifts = self.param_shifts()
        for (_, p), s in zip(net.g_s.named_parameters(), shifts, strict=True):
            p.copy_(snap(p, s))
        eb = net.entropy_bottleneck
        return {
            "quant_layer": shifts,
            "quant_act": self.act_shifts(),
            "cdf": eb._quantized_cdf.clone(),
            "cdflen": eb._cdf_length.clone(),
            "cdfoff": eb._offset.clone(),
        }


def check_int16(net: CompressionModel, quant_layer: list[int]) -> list[str]:
    """Names of ``g_s`` tensors NOT exactly ``int16 / 2**shift`` (empty when all are)."""
    bad = []
    params = list(net.g_s.named_parameters())
    if len(params) != len(quant_layer):
        return [f"quant_layer has {len(quant_layer)} shifts for {len(params)} tensors"]
    for (name, p), s in zip(params, quant_layer, strict=True):
        q = to_int16(p, s)
        exact = torch.equal(q, p.detach().double() * 2.0**s)
        if not exact or q.min() < INT16_MIN or q.max() > INT16_MAX:
            bad.append(name)
    return bad
