"""Load a CompressAI model from a checkpoint, and check that lic2cpp can run its transforms.

Accepted checkpoints:
- ``torch.save({"model": net})`` (the upstream convention) or a bare pickled ``nn.Module``;
- a ``state_dict`` or a CompressAI training checkpoint (``{"state_dict": ...}``, keys
  possibly prefixed by ``module.`` from DataParallel) together with an architecture name
  (``--arch``); the channel counts N and M are read off the weight shapes.

A checkpoint is a pickle, and unpickling runs whatever code the file names: loading a
file from an untrusted source can run arbitrary code with the user's rights. With
``weights_only=True`` (the commands' ``--weights-only``) only tensors and plain containers
are unpickled (``torch.load(weights_only=True)``): state_dicts and training checkpoints
load, a pickled full model is refused. docs/security.md has the details.
"""

from __future__ import annotations

import argparse
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lic2cpp.errors import LicError

if TYPE_CHECKING:
    # CompressAI ships no type information: to mypy a CompressionModel's attributes (g_a,
    # g_s, update, aux_loss...) are Any, where nn.Module's would be Tensor | Module.
    from compressai.models import CompressionModel

# Entropy-model buffers that CompressAI sizes at load time; a state_dict saved before
# `update()` lacks them and the tables are rebuilt instead.
CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
GAUSSIAN_BUFFERS = (*CDF_BUFFERS, "scale_table")


# The constructor's sizes are read off the weight shapes. They must also agree with a full
# N x N (x k x k) weight of the checkpoint, so a file cannot make the model (built before
# its shapes are compared) much larger than the tensors it holds.
MAX_SIZE = 4096  # the largest channel count of the .licm format


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    shape = tuple(sd[key].shape)  # KeyError: the caller names the missing key
    if len(shape) != 4:
        raise LicError(f"'{key}' has shape {shape}, expected a 4-d convolution weight")
    return shape


def _sizes_nm(sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    n, m = _shape(sd, "g_a.0.weight")[0], _shape(sd, "g_a.6.weight")[0]
    if _shape(sd, "g_a.2.weight") != (n, n, 5, 5) or _shape(sd, "g_a.6.weight") != (m, n, 5, 5):
        raise LicError(f"'g_a.2.weight' and 'g_a.6.weight' disagree with N = {n} "
                       "read off 'g_a.0.weight'")
    return {"N": n, "M": m}


def _sizes_cheng(sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    n = _shape(sd, "g_a.0.conv1.weight")[0]
    if _shape(sd, "g_a.0.conv2.weight") != (n, n, 3, 3):
        raise LicError(f"'g_a.0.conv2.weight' disagrees with N = {n} read off "
                       "'g_a.0.conv1.weight'")
    return {"N": n}


# Architecture name (CompressAI registry spelling) -> reads the constructor's sizes off a
# state_dict. Only the g_a/g_s of the factorized-prior ones are fully runnable; the others
# load, and the layer check then names what lic2cpp cannot run.
ARCH_SIZES: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, int]]] = {
    "bmshj2018-factorized": _sizes_nm,
    "bmshj2018-factorized-relu": _sizes_nm,
    "bmshj2018-hyperprior": _sizes_nm,
    "mbt2018-mean": _sizes_nm,
    "mbt2018": _sizes_nm,
    "cheng2020-anchor": _sizes_cheng,
    "cheng2020-attn": _sizes_cheng,
}


TRANSFORMS = ("g_a", "g_s")
HYPER_TRANSFORMS = ("h_a", "h_s")  # a hyperprior model's second autoencoder


def model_transforms(net: nn.Module) -> tuple[str, ...]:
    """The transforms lic2cpp converts for ``net``: g_a, g_s, and h_a, h_s of a
    hyperprior model."""
    if all(isinstance(getattr(net, t, None), nn.Module) for t in HYPER_TRANSFORMS):
        return TRANSFORMS + HYPER_TRANSFORMS
    return TRANSFORMS


def known_archs() -> list[str]:
    return sorted(ARCH_SIZES)


def compressai_package() -> ModuleType:
    """CompressAI with the submodules lic2cpp uses: the package's one lazy import.

    Imported on first use, not at start-up: it costs about 4 s of CPU (twice torch's own
    import, so three times ``lic2cpp --help``) and its import triggers a FutureWarning in
    torch.jit, silenced here because it would clutter one-line error output. Every module
    reaches CompressAI through this function.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import compressai.entropy_models
        import compressai.layers
        import compressai.models
        import compressai.models.utils
        import compressai.ops
        import compressai.registry
    return compressai


def _arch_class(arch: str) -> type[nn.Module]:
    models = compressai_package().registry.MODELS
    name = arch.strip().lower().replace("_", "-")
    if name not in ARCH_SIZES:
        raise LicError(f"unknown architecture '{arch}' (known: {', '.join(known_archs())})")
    return models[name]


WEIGHTS_ONLY_HELP = ("load the checkpoint with torch.load(weights_only=True): only tensors "
                     "and plain containers, so a state_dict (with --arch) or training "
                     "checkpoint loads and a pickled full model is refused. Use it for "
                     "files you do not trust: unpickling a full model can run any code")


def add_weights_only_arg(parser: argparse.ArgumentParser) -> None:
    """The ``--weights-only`` flag of every command that loads a checkpoint by path."""
    parser.add_argument("--weights-only", action="store_true", help=WEIGHTS_ONLY_HELP)


BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation",
               "(1)", "(2)", "WeightsUnpickler error:")


def _reason(exc: BaseException) -> str:
    """One line saying why torch.load failed, without PyTorch's advice paragraphs."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(BOILERPLATE)]
    if not useful:
        return type(exc).__name__
    line = useful[0].split(". ")[0]  # miniz appends paragraphs of advice
    return line if " " in line else f"{type(exc).__name__}: {line}"  # e.g. KeyError: 101


def _torch_load(path: Path, weights_only: bool = False) -> Any:
    if not path.exists():
        raise LicError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise LicError(f"checkpoint is not a file: {path}")
    with path.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):  # torch only says "Invalid argument" then
        raise LicError(f"{path} is not a PyTorch checkpoint (truncated or corrupt zip archive)")
    if not weights_only:
        compressai_package()  # pickled models need its classes importable

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": one-line errors
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=weights_only)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise LicError(f"{path}: cannot unpickle the model ({exc})") from None
    except Exception as exc:  # noqa: BLE001 -- a corrupt pickle can raise almost anything
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if weights_only and refused:
            raise LicError(
                f"{path} holds pickled Python objects ({refused.group(1)}), refused by "
                "--weights-only: unpickling them can run arbitrary code; save "
                "net.state_dict() and load that with --arch, or drop --weights-only if you "
                "trust the file") from None
        raise LicError(f"{path} is not a PyTorch checkpoint ({_reason(exc)})") from None


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _strip_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix DataParallel/DistributedDataParallel adds to every key."""
    if all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _entropy_buffer_keys(net: nn.Module) -> set[str]:
    entropy_models = compressai_package().entropy_models
    keys: set[str] = set()
    for name, module in net.named_modules():
        if isinstance(module, entropy_models.GaussianConditional):
            keys.update(f"{name}.{b}" for b in GAUSSIAN_BUFFERS)
        elif isinstance(module, entropy_models.EntropyBottleneck):
            keys.update(f"{name}.{b}" for b in CDF_BUFFERS)
    return keys


def _check_keys(net: nn.Module, sd: Mapping[str, torch.Tensor], arch: str) -> None:
    """One clear line for the first key that does not fit, before PyTorch's long message."""
    expected = net.state_dict()
    resizable = _entropy_buffer_keys(net)
    missing = [k for k in expected if k not in resizable and k not in sd]
    if missing:
        raise LicError(f"checkpoint lacks '{missing[0]}' ({len(missing)} missing keys in "
                       f"all): not a {arch} state_dict?")
    for key, tensor in expected.items():
        if key in resizable:
            continue
        if tuple(sd[key].shape) != tuple(tensor.shape):
            raise LicError(f"shape mismatch for '{key}': checkpoint has "
                           f"{tuple(sd[key].shape)}, {arch} expects {tuple(tensor.shape)}")
        if sd[key].is_complex() or sd[key].is_floating_point() != tensor.is_floating_point():
            raise LicError(f"'{key}' has dtype {sd[key].dtype}, {arch} expects "
                           f"{tensor.dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(sd[key]).all()):
            raise LicError(f"'{key}' holds non-finite values (NaN or infinity)")
    unexpected = sorted(set(sd) - set(expected))
    if unexpected:
        # repr: the key comes from the file and may hold a newline (same text otherwise)
        raise LicError(f"checkpoint has {unexpected[0]!r} ({len(unexpected)} unexpected keys "
                       f"in all), which {arch} does not have")


def model_from_state_dict(sd: Mapping[str, torch.Tensor], arch: str) -> CompressionModel:
    """Build ``arch`` with N/M read off ``sd`` and load the weights and entropy tables."""
    cls = _arch_class(arch)
    name = arch.strip().lower().replace("_", "-")
    sd = _strip_prefix(sd)
    for transform in ("g_a", "g_s"):
        if not any(k.startswith(transform + ".") for k in sd):
            raise LicError(f"checkpoint has no {transform} weights")
    try:
        sizes = ARCH_SIZES[name](sd)
    except KeyError as exc:
        raise LicError(f"checkpoint lacks {exc}: not a {name} state_dict?") from None
    for key, value in sizes.items():
        if not 1 <= value <= MAX_SIZE:
            raise LicError(f"{key} = {value} read off the weights is outside 1..{MAX_SIZE}")
    net: CompressionModel = cls(**sizes)
    _check_keys(net, sd, f"{name}({', '.join(f'{k}={v}' for k, v in sizes.items())})")
    buffers = _entropy_buffer_keys(net)
    if buffers <= set(sd):
        net.load_state_dict(sd)  # CompressAI's override resizes the CDF buffers first
    else:
        # Saved before update(): load what is there and rebuild the tables from the
        # learned quantiles.
        nn.Module.load_state_dict(net, {k: v for k, v in sd.items() if k not in buffers},
                                  strict=False)
        net.update(force=True)
    return net


def _needs_update(net: nn.Module) -> bool:
    bottleneck = compressai_package().entropy_models.EntropyBottleneck
    return any(isinstance(m, bottleneck) and m._offset.numel() == 0
               for m in net.modules())


def load_model(path: str | Path, arch: str | None = None, *,
               check_layers: bool = True, weights_only: bool = False) -> CompressionModel:
    """A CompressAI model in eval mode with ``.g_a`` and ``.g_s`` (entropy tables built).

    ``check_layers`` (default) also refuses a model whose transforms use a layer the
    lic2cpp runtime cannot run, naming the module. ``weights_only`` unpickles tensors and
    plain containers only (no code runs), so only state_dicts load (see the module doc).
    """
    path = Path(path)
    obj = _torch_load(path, weights_only)
    net: CompressionModel
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], nn.Module):
        obj = obj["model"]
    if isinstance(obj, nn.Module):
        net = obj
        if arch is not None:
            cls = _arch_class(arch)
            if type(net) is not cls:
                raise LicError(f"{path} holds a {type(net).__name__}, not a {arch} "
                               f"({cls.__name__}); drop --arch or pick the right one")
    else:
        sd: Any = obj
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model_state_dict", "model"):
                if key in obj and _is_state_dict(obj[key]):
                    sd = obj[key]
                    break
        if not _is_state_dict(sd):
            raise LicError(f"{path} holds neither a model nor a state_dict "
                           f"(found {type(obj).__name__})")
        if arch is None:
            raise LicError(f"{path} holds a state_dict: give the architecture with --arch "
                           f"(known: {', '.join(known_archs())})")
        net = model_from_state_dict(sd, arch)
    for transform in ("g_a", "g_s"):
        if not isinstance(getattr(net, transform, None), nn.Module):
            raise LicError(f"model {type(net).__name__} has no {transform} transform")
    for transform in ("g_a", "g_s"):
        for key, tensor in getattr(net, transform).state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise LicError(f"'{transform}.{key}' holds non-finite values (NaN or infinity)")
    net = net.float().eval()
    if _needs_update(net):
        net.update(force=True)
    if check_layers:
        check_supported(net, model_transforms(net))
    return net


# ------------------------------------------------------------------ supported-layer check

MAX_KERNEL = 15
MAX_STRIDE = 8


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _conv_problem(m: nn.Conv2d | nn.ConvTranspose2d) -> str | None:
    """Why the runtime cannot run this convolution, or None."""
    if m.groups != 1:
        return f"groups={m.groups} (only 1 is supported)"
    if _pair(m.dilation) != (1, 1):
        return f"dilation={m.dilation} (only 1 is supported)"
    if m.padding_mode != "zeros":
        return f"padding_mode='{m.padding_mode}' (only zero padding is supported)"
    kernel, stride = _pair(m.kernel_size), _pair(m.stride)
    if max(kernel) > MAX_KERNEL:
        return f"kernel {kernel} (at most {MAX_KERNEL})"
    if max(stride) > MAX_STRIDE:
        return f"stride {stride} (at most {MAX_STRIDE})"
    if isinstance(m.padding, str):
        if m.padding == "same" and max(stride) > 1:
            return "padding='same' with stride > 1"
        return None
    pad = _pair(m.padding)
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        return f"padding {pad} not smaller than the kernel {kernel}"
    return None


def _leaf_types() -> tuple[type[nn.Module], ...]:
    return (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU, nn.LeakyReLU, nn.Identity)


def _container_types() -> tuple[type[nn.Module], ...]:
    """Modules whose own forward uses only supported ops (+ add), so checking their
    children is enough."""
    layers = compressai_package().layers
    return (nn.Sequential, layers.ResidualBlock, layers.ResidualBlockWithStride)


def unsupported_layers(module: nn.Module, prefix: str) -> Iterator[str]:
    """Yield '<path> (<Type>) ...' for every module the runtime cannot run."""
    gdn_type = compressai_package().layers.GDN

    kind = type(module).__name__
    if type(module) is gdn_type:  # exact type: GDN1 (|x|, no sqrt) is a different op
        return
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and type(module) in _leaf_types():
        problem = _conv_problem(module)
        if problem:
            yield f"{prefix} ({kind}) has {problem}"
        return
    if type(module) in _leaf_types():
        return
    if type(module) in _container_types():
        for name, child in module.named_children():
            if child is not None:
                yield from unsupported_layers(child, f"{prefix}.{name}")
        return
    yield f"{prefix} ({kind}) is not supported by the lic2cpp runtime"


def check_supported(net: nn.Module, transforms: tuple[str, ...] = ("g_a", "g_s")) -> None:
    """Raise LicError naming the first module of ``transforms`` (g_a, g_s; h_a, h_s of a
    hyperprior model) that the runtime cannot run."""
    for transform in transforms:
        module = getattr(net, transform, None)
        if not isinstance(module, nn.Module):
            raise LicError(f"model {type(net).__name__} has no {transform} transform")
        problems = list(unsupported_layers(module, transform))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise LicError(problems[0] + more)
