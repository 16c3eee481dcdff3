"""Models exported and converted once per test session, shared by test_export.py and
test_convert.py (plain cached functions, so both modules reuse the same files).

The four models of the issue's correctness requirement: the trained fixtures go through
the default (dynamo) exporter, the random-init ones through the TorchScript exporter, so
both exporters are checked end to end against PyTorch.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from conftest import GDN_CKPT, GDN_INIT_CKPT, KODAK, RELU_CKPT
from PIL import Image
from torch import nn

from lic2cpp.convert import convert_model
from lic2cpp.load import load_model

_WORK = Path(tempfile.mkdtemp(prefix="lic2cpp-convert-tests-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)

# key -> (checkpoint or None for a seeded random FactorizedPriorReLU(128, 192), exporter)
MODELS: dict[str, tuple[Path | None, str]] = {
    "relu": (RELU_CKPT, "dynamo"),
    "gdn": (GDN_CKPT, "dynamo"),
    "relu_init": (None, "torchscript"),
    "gdn_init": (GDN_INIT_CKPT, "torchscript"),
}


@dataclass(frozen=True)
class Converted:
    key: str
    net: nn.Module
    ga_onnx: Path
    gs_onnx: Path
    ga_licm: Path
    gs_licm: Path


def random_relu_model() -> nn.Module:
    from compressai.models import FactorizedPriorReLU

    torch.manual_seed(0)
    net = FactorizedPriorReLU(128, 192).eval()
    net.update(force=True)
    return net


@functools.cache
def converted(key: str) -> Converted:
    checkpoint, exporter = MODELS[key]
    net = random_relu_model() if checkpoint is None else load_model(checkpoint)
    out = _WORK / key
    ga_licm, gs_licm = convert_model(net, out, exporter=exporter)
    return Converted(key, net, out / "g_a.onnx", out / "g_s.onnx", ga_licm, gs_licm)


def work_dir(name: str) -> Path:
    path = _WORK / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def kodak_image() -> np.ndarray:
    """kodim01 (768x512), float32 HWC in [0, 1]."""
    img = Image.open(KODAK / "kodim01.png").convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def image_of_size(size: str) -> np.ndarray:
    """Test inputs cut from (or reflected around) the Kodak image: natural content."""
    img = kodak_image()
    if size == "kodak":
        return img
    width, height = (int(v) for v in size.split("x"))
    if height > img.shape[0] or width > img.shape[1]:
        pad_h, pad_w = height - img.shape[0], width - img.shape[1]
        img = np.pad(img, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2),
                           (0, 0)), mode="reflect")
    top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    return np.ascontiguousarray(img[top:top + height, left:left + width])


def torch_hwc(module: nn.Module, x_hwc: np.ndarray) -> np.ndarray:
    """PyTorch's output of ``module`` on an HWC array, as HWC."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(x_hwc)).permute(2, 0, 1)[None]
        return module(x)[0].permute(1, 2, 0).contiguous().numpy()
