"""Export a model's analysis (g_a) and synthesis (g_s) transforms to ONNX.

Both graphs take one NCHW float32 input named ``input`` (batch 1, fixed channels, dynamic
height and width) and give one output named ``output``.

CompressAI's GDN keeps its parameters re-parametrised (``NonNegativeParametrizer``: a
lower bound and a square around stored values). The exported copy replaces each GDN by
:class:`EffectiveGDN`, which holds the effective beta and gamma as constants, so the graph
shows GDN as the plain pattern ``Mul(x, x) -> Conv 1x1 (gamma, beta) -> Sqrt -> Div``
(forward) or ``... -> Sqrt -> Mul`` (inverse) that ``lic2cpp convert`` recognises.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lic2cpp.errors import LicError
from lic2cpp.load import (
    TRANSFORMS,
    add_weights_only_arg,
    check_supported,
    compressai_package,
    load_model,
    model_transforms,
)

if TYPE_CHECKING:
    from compressai.layers import GDN

EXPORTERS = ("dynamo", "torchscript")
OPSET = 18  # Both exporters support it; the TorchScript one's newest is 20.

# Example spatial sizes used to trace; the exported height/width stay symbolic.
SAMPLE_HW = {"g_a": (64, 64), "g_s": (4, 4), "h_a": (16, 16), "h_s": (4, 4)}



class EffectiveGDN(nn.Module):
    """GDN with its effective (already re-parametrised) beta and gamma as constants:
    ``x / sqrt(beta + conv1x1(x², gamma))``, or ``x * sqrt(...)`` when ``inverse``."""

    beta: torch.Tensor  # buffers (saved with the module, exported as constants)
    gamma: torch.Tensor

    def __init__(self, beta: torch.Tensor, gamma: torch.Tensor, inverse: bool) -> None:
        super().__init__()
        channels = beta.shape[0]
        self.register_buffer("beta", beta.detach().clone().float())
        self.register_buffer("gamma",
                             gamma.detach().clone().float().reshape(channels, channels, 1, 1))
        self.inverse = bool(inverse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.sqrt(F.conv2d(x * x, self.gamma, self.beta))
        return x * norm if self.inverse else x / norm


def effective_gdn(gdn: GDN) -> EffectiveGDN:
    """An EffectiveGDN computing what the CompressAI GDN ``gdn`` computes."""
    with torch.no_grad():
        beta = gdn.beta_reparam(gdn.beta)
        gamma = gdn.gamma_reparam(gdn.gamma)
    return EffectiveGDN(beta, gamma, gdn.inverse)


def export_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode with every GDN replaced by EffectiveGDN."""
    gdn_type = compressai_package().layers.GDN
    clone = copy.deepcopy(module).float().eval()
    if type(clone) is gdn_type:
        return effective_gdn(clone)
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is gdn_type:
                setattr(parent, name, effective_gdn(child))
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def input_channels(module: nn.Module) -> int:
    """Channels the transform expects: those of its first convolution (or GDN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return int(m.in_channels)
        if isinstance(m, EffectiveGDN):
            return int(m.beta.shape[0])
    raise LicError(f"cannot tell the input channels of {type(module).__name__}: no convolution")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def export_transform(module: nn.Module, path: Path, sample_hw: tuple[int, int] = (16, 16),
                     exporter: str = "dynamo") -> Path:
    """Export one transform (already an export copy) to ``path`` and validate it."""
    if exporter not in EXPORTERS:
        raise LicError(f"unknown exporter '{exporter}' (known: {', '.join(EXPORTERS)})")
    x = torch.zeros(1, input_channels(module), *sample_hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporters chatter on stdout and warn about their own deprecations; a failure
    # still surfaces as an exception.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if exporter == "dynamo":
                dims = {2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
                torch.onnx.export(module, (x,), str(path), dynamo=True, verbose=False,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_shapes=(dims,), opset_version=OPSET,
                                  external_data=False)
            else:
                torch.onnx.export(module, (x,), str(path), dynamo=False,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {2: "height", 3: "width"},
                                                "output": {2: "out_height", 3: "out_width"}},
                                  opset_version=OPSET)
        except Exception as exc:  # exporter internals raise many types
            raise LicError(f"ONNX export ({exporter}) of {path.stem} failed: "
                           f"{_first_line(exc)}") from exc
    check_onnx(path)
    return path


def check_onnx(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises ValidationError, InferenceError, ...
        raise LicError(f"exported {path.name} fails the ONNX checker: {_first_line(exc)}") \
            from exc


def export_onnx(net: nn.Module, out_dir: Path, *, exporter: str = "dynamo",
                progress: bool = False, transforms: tuple[str, ...] = TRANSFORMS
                ) -> tuple[Path, ...]:
    """Write ``out_dir/<name>.onnx`` for each of ``transforms`` (default ``g_a``, ``g_s``;
    a hyperprior model's ``h_a``, ``h_s`` too when asked), dynamic height/width;
    ``progress`` shows a tqdm bar (on a terminal only)."""
    check_supported(net, transforms)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LicError(f"output folder {out_dir} exists and is not a folder")
    paths = []
    steps = tqdm(transforms, desc=f"ONNX export ({exporter})", unit="transform",
                 disable=None if progress else True)
    for name in steps:
        module = export_copy(getattr(net, name))
        paths.append(export_transform(module, out_dir / f"{name}.onnx", SAMPLE_HW[name],
                                      exporter))
    return tuple(paths)


# ------------------------------------------------------------------------------ CLI

def add_model_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--model", required=required, metavar="M.pth",
                        help="CompressAI checkpoint: torch.save({'model': net}), a pickled "
                             "model, or a state_dict / training checkpoint (needs --arch)")
    parser.add_argument("--arch", default=None, metavar="A",
                        help="architecture of a state_dict checkpoint: "
                             "bmshj2018-factorized, bmshj2018-factorized-relu, "
                             "bmshj2018-hyperprior or mbt2018-mean")
    parser.add_argument("--exporter", choices=EXPORTERS, default="dynamo",
                        help="torch.onnx exporter (default: dynamo, the torch.export-based "
                             "one; torchscript is the legacy one)")
    add_weights_only_arg(parser)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.arch, weights_only=args.weights_only)
    paths = export_onnx(net, Path(args.output), exporter=args.exporter, progress=True,
                        transforms=model_transforms(net))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a CompressAI model's g_a and g_s (h_a, h_s) to ONNX",
        description="Load a CompressAI checkpoint, check that lic2cpp can run its layers, "
                    "and write OUT/g_a.onnx and OUT/g_s.onnx (and OUT/h_a.onnx, "
                    "OUT/h_s.onnx for a hyperprior model; dynamic height and width, "
                    "GDN as plain ONNX ops with its effective parameters).")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)
