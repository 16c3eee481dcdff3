"""Float `.licm` graph -> int16 fixed-point graph (docs/int16.md, "Where the shifts come from").

The shifts ("quantizers") come from the checkpoint (``lic2cpp train --int16``'s
``quant_layer``/``quant_act``, or upstream's ``quantizers`` dict, or a separate pickle) or
from calibration on training patches. Either way :func:`quantize_model` walks the float
graph node by node, quantizes each tensor, runs the node in the numpy reference
arithmetic (:mod:`lic2cpp.fixedpoint`) on the calibration patches when there are some, and
lowers a weight shift wherever the int32 worst case demands it. It returns the int16
graph (`QUANTIZE`, int16 operators, `DEQUANTIZE`) and a report of what was done.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp import fixedpoint as fx
from lic2cpp.errors import LicError
from lic2cpp.modelformat import ModelFile, Node

DEFAULT_HEADROOM_BITS = 1
# A weight tensor whose largest value would drop below 2^MIN_WEIGHT_BITS to keep the int32
# worst case is refused: fewer than 8 bits of weight are no longer the model.
MIN_WEIGHT_BITS = 5
# Calibration searches this many admissible shifts per weight tensor, finest first.
SEARCH_WIDTH = 3


# ---------------------------------------------------------------------------- sources

@dataclass
class Quantizers:
    """Shifts given with a model. ``params`` maps ``g_s`` parameter names (``'0.weight'``)
    to shifts; ``acts`` is ``quant_act`` (the input's shift, then each convolution's
    output shift), or None when activations are to be calibrated."""

    source: str
    params: dict[str, int]
    acts: list[int] | None = None


def _shift_dict(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise LicError(f"{where}: 'quantizers' must map parameter names to shifts")
    out = {}
    for key, value in raw.items():
        name = str(key).removeprefix("g_s.")
        try:
            shift = int(value)
        except (TypeError, ValueError):
            raise LicError(f"{where}: quantizer '{key}' is not an integer shift") from None
        if shift != value or not fx.SHIFT_MIN <= shift <= fx.SHIFT_MAX:
            raise LicError(f"{where}: quantizer '{key}' = {value} is not a shift in "
                           f"{fx.SHIFT_MIN}..{fx.SHIFT_MAX}")
        out[name] = shift
    return out


def _int_list(raw: Any, what: str) -> list[int]:
    try:
        values = [int(v) for v in raw]
    except (TypeError, ValueError):
        raise LicError(f"checkpoint field '{what}' is not a list of integer shifts") from None
    return values


def quantizers_from_checkpoint(obj: Any, param_names: list[str]) -> Quantizers | None:
    """The shifts a loaded checkpoint carries, or None. ``param_names`` are the names of
    ``g_s.named_parameters()`` in order (what ``quant_layer`` lists)."""
    if not isinstance(obj, Mapping):
        return None
    acts = _int_list(obj["quant_act"], "quant_act") if "quant_act" in obj else None
    if "quant_layer" in obj:
        shifts = _int_list(obj["quant_layer"], "quant_layer")
        if len(shifts) != len(param_names):
            raise LicError(f"quant_layer has {len(shifts)} shifts for the "
                           f"{len(param_names)} tensors of g_s")
        params = _shift_dict(dict(zip(param_names, shifts, strict=True)), "quant_layer")
        return Quantizers("trained (checkpoint quant_layer/quant_act)", params, acts)
    if "quantizers" in obj:
        return Quantizers("checkpoint 'quantizers'",
                          _shift_dict(obj["quantizers"], "checkpoint"), acts)
    return None


def load_quantizers_file(path: str | Path) -> Quantizers:
    """``--quantizers FILE``: a pickle holding ``{'quantizers': {...}}`` (optionally with
    ``cdfs``/``cdflen``/``cdfoff``, ignored) or the shift dict itself."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)  # the user's own file, trusted like a .pth
    except OSError as exc:
        raise LicError(f"cannot read quantizers file {path}: {exc.strerror}") from None
    except Exception as exc:  # unpickling errors of every kind
        raise LicError(f"{path} is not a quantizers pickle ({type(exc).__name__})") from None
    if isinstance(obj, Mapping) and "quantizers" in obj:
        obj = obj["quantizers"]
    return Quantizers(f"quantizers file {path.name}", _shift_dict(obj, str(path)))


def conv_param_names(g_s: Any, model: ModelFile) -> dict[int, tuple[str, str]]:
    """Node index of each convolution of the float graph -> the names of its weight and
    bias in ``g_s.named_parameters()``. Convolutions appear in the same order in both;
    shapes and values are checked so a mismatch cannot pass unnoticed."""
    import torch

    modules = [(name, m) for name, m in g_s.named_modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    nodes = [i for i, n in enumerate(model.nodes) if n.op in ("conv2d", "conv_transpose2d")]
    if len(modules) != len(nodes):
        raise LicError(f"g_s has {len(modules)} convolutions, its graph {len(nodes)}")
    out = {}
    for (name, m), i in zip(modules, nodes, strict=True):
        w = m.weight.detach().float().numpy()
        ref = model.nodes[i].tensors["weight"]
        if w.shape != ref.shape or not np.allclose(w, ref, rtol=1e-6, atol=1e-7):
            raise LicError(f"g_s.{name} does not match node {i} of the converted graph")
        prefix = f"{name}." if name else ""
        out[i] = (prefix + "weight", prefix + "bias")
    return out


# ---------------------------------------------------------------------------- float graph

def float_forward(model: ModelFile, x: np.ndarray, keep: Callable[[int], bool] | None = None
                  ) -> list[np.ndarray | None]:
    """The float graph on an NHWC batch, in PyTorch (float32): every value (or only those
    ``keep(value_id)`` accepts, to save memory), as NHWC float32 arrays."""
    import torch
    import torch.nn.functional as F

    def conv(v: torch.Tensor, node: Node) -> torch.Tensor:
        a = node.attrs
        w = torch.from_numpy(node.tensors["weight"])
        b = torch.from_numpy(node.tensors["bias"])
        stride = (int(a["stride_h"]), int(a["stride_w"]))
        pt, pl, pb, pr = (int(a[k]) for k in ("pad_top", "pad_left", "pad_bottom", "pad_right"))
        if node.op == "conv2d":
            return F.conv2d(F.pad(v, (pl, pr, pt, pb)), w, b, stride=stride)
        out = F.conv_transpose2d(v, w, b, stride=stride,
                                 output_padding=(int(a["out_pad_h"]), int(a["out_pad_w"])))
        h, wd = out.shape[2], out.shape[3]
        return out[:, :, pt:h - pb, pl:wd - pr]

    values: list[Any] = [torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)]
    with torch.no_grad():
        for node in model.nodes:
            v = values[node.inputs[0]]
            if node.op in ("conv2d", "conv_transpose2d"):
                out = conv(v, node)
            elif node.op == "relu":
                out = F.relu(v)
            elif node.op == "leaky_relu":
                out = F.leaky_relu(v, float(node.attrs["alpha"]))
            elif node.op == "gdn":
                c = int(node.attrs["channels"])
                g = torch.from_numpy(node.tensors["gamma"]).reshape(c, c, 1, 1)
                norm = torch.sqrt(F.conv2d(v * v, g, torch.from_numpy(node.tensors["beta"])))
                out = v * norm if node.attrs["inverse"] else v / norm
            elif node.op == "add":
                out = v + values[node.inputs[1]]
            else:
                raise LicError(f"the float graph holds a {node.op} node")
            values.append(out)
    return [None if keep is not None and not keep(i) else
            v.permute(0, 2, 3, 1).contiguous().numpy() for i, v in enumerate(values)]


# ---------------------------------------------------------------------------- calibration

@dataclass
class Calibration:
    """Calibration inputs (NHWC float32, e.g. latents ``y_hat``) and, optionally, the
    images the network should reproduce from them (NHWC uint8), for the PSNR estimate."""

    inputs: np.ndarray
    targets: np.ndarray | None = None
    headroom_bits: int = DEFAULT_HEADROOM_BITS
    latent_mean: np.ndarray | None = None  # the mean(c) the inputs were made with


def latent_means(net: Any, patches: np.ndarray) -> np.ndarray:
    """Per-channel mean of ``g_a``'s latents over the patches (float32 ``[C]``): the
    ``mean(c)`` the codec subtracts before rounding (docs/entropy-model.md)."""
    from lic2cpp.fit import compute_latents

    y = compute_latents(net, patches, progress=False)
    return y.astype(np.float64).mean(axis=(0, 2, 3)).astype(np.float32)


def codec_latents(net: Any, images: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``y_hat = float32(round(y − mean)) + mean`` of uint8 NHWC images, as the codec
    decodes it (docs/entropy-model.md), NHWC float32."""
    from lic2cpp.fit import compute_latents

    y = compute_latents(net, images, progress=False)
    m = mean[None, :, None, None]
    y_hat = (np.rint(y - m) + m).astype(np.float32)
    return np.ascontiguousarray(y_hat.transpose(0, 2, 3, 1))


def calibration_set(net: Any, training_set: str | Path, patches: int = 16, seed: int = 0,
                    headroom_bits: int = DEFAULT_HEADROOM_BITS,
                    patch_size: int = 256, offsets: np.ndarray | None = None) -> Calibration:
    """``patches`` random training patches and their codec latents, rounded around
    ``offsets`` (the entropy tables' offsets; without them, the patches' latent means)."""
    from lic2cpp.datasets import load_training_set
    from lic2cpp.fit import check_training_path

    check_training_path(Path(training_set))
    images = np.asarray(load_training_set(training_set, patch_size, max_patches=patches,
                                          seed=seed))
    mean = latent_means(net, images) if offsets is None else np.asarray(offsets, np.float32)
    return Calibration(codec_latents(net, images, mean), images, headroom_bits, mean)


def act_shift(max_abs: float, headroom_bits: int) -> int:
    """Largest shift at which ``max_abs · 2^headroom`` still fits int16."""
    return fx.weight_shift_for(max_abs * 2.0**headroom_bits, fx.INT16_MAX)


# ---------------------------------------------------------------------------- report

@dataclass
class NodeReport:
    node: int  # index in the int16 graph
    op: str
    out_shift: int
    weight_shift: int | None = None
    lowered_bits: int = 0  # weight shift lowered below the source's for the int32 bound
    worst_case: tuple[int, int] | None = None
    error_db: float | None = None  # calibration: SNR of this node's output vs float


@dataclass
class Int16Report:
    source: str
    nodes: list[NodeReport] = field(default_factory=list)
    patches: int = 0
    psnr_float: float | None = None
    psnr_int16: float | None = None

    @property
    def expected_psnr_loss(self) -> float | None:
        if self.psnr_float is None or self.psnr_int16 is None:
            return None
        return self.psnr_float - self.psnr_int16

    def summary(self) -> str:
        lowered = [r for r in self.nodes if r.lowered_bits]
        lines = [f"int16 quantizers: {self.source}"]
        if lowered:
            lines.append("  weight shifts lowered for the int32 worst case: " + ", ".join(
                f"node {r.node} by {r.lowered_bits}" for r in lowered))
        loss = self.expected_psnr_loss
        if loss is not None:
            lines.append(f"  expected PSNR loss vs float: {loss:.4f} dB "
                         f"({self.psnr_int16:.3f} vs {self.psnr_float:.3f} dB on "
                         f"{self.patches} calibration patches)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- conversion

@dataclass
class _State:
    """The int16 graph being built and its values on the calibration batch."""

    nodes: list[Node]
    shifts: list[int | None]  # per int16 value
    ranges: list[tuple[int, int]]
    ints: list[np.ndarray | None]  # int16 values on the calibration batch (NHWC int16)
    report: Int16Report


def _snr_db(ref: np.ndarray, q: np.ndarray, shift: int) -> float:
    err = np.mean((q.astype(np.float64) * 2.0**-shift - ref) ** 2)
    sig = np.mean(ref.astype(np.float64) ** 2)
    return float(10 * math.log10(sig / err)) if err > 0 and sig > 0 else float("inf")


def _batch(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply an HWC int function to each image of an NHWC int16 batch."""
    return np.stack([fn(xi.astype(np.int64)) for xi in x]).astype(np.int16)


def _bias_at(b_q: np.ndarray, s_b: int, s_acc: int) -> np.ndarray:
    """The int16 bias ``b_q`` at ``s_b`` aligned to the accumulator's shift."""
    b = np.asarray(b_q, np.int64)
    if s_acc >= s_b:
        return b << np.int64(s_acc - s_b)
    return fx.rs(b, s_b - s_acc)


def _conv_candidate(node: Node, s_x: int, s_w: int, s_b: int, s_y: int, rng: tuple[int, int]
                    ) -> tuple[Node, tuple[int, int]] | None:
    """The int16 node for weight shift ``s_w``, or None if its worst case overflows."""
    a = dict(node.attrs)
    n = s_x + s_w - s_y
    if not 0 <= n <= 31:
        return None
    w = fx.quantize_weights(node.tensors["weight"], s_w)
    b16 = fx.quantize_weights(node.tensors["bias"], s_b)
    bias = _bias_at(b16, s_b, s_x + s_w)
    transpose = node.op == "conv_transpose2d"
    bounds = fx.conv_worst_case(w, bias + fx.rounding_constant(n), rng[0], rng[1], transpose,
                                (int(a["stride_h"]), int(a["stride_w"])))
    if not fx.fits_int32(bounds):
        return None
    a.update(weight_shift=s_w, out_shift=s_y)
    op = "s16_conv_transpose2d" if transpose else "s16_conv2d"
    return Node(op, [], a, {"weight": w, "bias": bias}), bounds


def _convert_conv(st: _State, node: Node, inputs: list[int], ref: np.ndarray | None,
                  s_y: int, given: tuple[int, int] | None, where: str) -> None:
    vin = inputs[0]
    s_x = st.shifts[vin]
    assert s_x is not None
    w, b = node.tensors["weight"], node.tensors["bias"]
    s_fit = fx.weight_shift_for(float(np.abs(w).max()))
    s_w0, s_b = given if given is not None else (s_fit, fx.weight_shift_for(float(np.abs(b).max())))
    if s_w0 > s_fit:
        raise LicError(f"{where}: weights do not fit int16 at the given shift {s_w0}")
    admissible: list[tuple[int, Node, tuple[int, int]]] = []  # (s_w, node, bounds)
    for s_w in range(s_w0, fx.SHIFT_MIN - 1, -1):
        if float(np.abs(w).max()) * 2.0**s_w < 2**MIN_WEIGHT_BITS:
            break
        cand = _conv_candidate(node, s_x, s_w, s_b, s_y, st.ranges[vin])
        if cand is not None:
            admissible.append((s_w, *cand))
            if given is not None or len(admissible) == SEARCH_WIDTH:
                break
    if not admissible:
        raise LicError(f"{where}: no weight shift with at least {MIN_WEIGHT_BITS + 1} bits "
                       "keeps the int32 worst case (docs/int16.md); the layer has too many "
                       "large weights for int16 x int16 -> int32")
    best = admissible[0]
    err_db: float | None = None
    out: np.ndarray | None = None
    x = st.ints[vin]
    if x is not None and ref is not None:
        scored = []
        for option in admissible:  # finest first: ties keep the finer shift
            y = _batch(partial(fx.s16_conv, sx=s_x, node=option[1]), x)
            scored.append((-_snr_db(ref, y, s_y), -option[0], option, y))
        scored.sort(key=lambda t: (t[0], t[1]))
        _, _, best, out = scored[0]
        err_db = -scored[0][0]
    s_w, new, bounds = best
    new.inputs = inputs
    st.report.nodes.append(NodeReport(len(st.nodes), new.op, s_y, s_w, s_w0 - s_w, bounds,
                                      err_db))
    _emit(st, new, s_y, fx.FULL_RANGE, out)


def _emit(st: _State, node: Node, shift: int | None, rng: tuple[int, int],
          value: np.ndarray | None) -> None:
    st.nodes.append(node)
    st.shifts.append(shift)
    st.ranges.append(rng)
    st.ints.append(value)


def _alpha(alpha: float) -> tuple[int, int]:
    """LeakyReLU slope as (A, t): the largest t ≤ 30 at which ⌊α·2^t + ½⌋ fits int16."""
    t = min(30, fx.weight_shift_for(abs(alpha)))
    return int(fx.round_half_up(alpha, t)), t


def _convert_gdn(st: _State, node: Node, inputs: list[int], s_y: int, headroom: int,
                 ref: np.ndarray | None, where: str) -> None:
    vin = inputs[0]
    s_x = st.shifts[vin]
    assert s_x is not None
    x = st.ints[vin]
    if x is None:
        raise LicError(f"{where}: GDN needs calibration patches")
    c = int(node.attrs["channels"])
    beta, gamma = node.tensors["beta"], node.tensors["gamma"]
    # the square's shift: like an activation's, from the largest x² on the patches
    xmax = float(np.abs(x.astype(np.int64)).max()) * 2.0**-s_x
    s_2 = min(2 * s_x, act_shift(xmax**2, headroom))
    s_g0 = fx.weight_shift_for(float(gamma.max()))
    for s_g in range(s_g0, fx.SHIFT_MIN - 1, -1):
        if float(gamma.max()) * 2.0**s_g < 2**MIN_WEIGHT_BITS:
            raise LicError(f"{where}: GDN gamma cannot keep the int32 worst case with "
                           f"{MIN_WEIGHT_BITS + 1} bits")
        g = fx.quantize_weights(gamma, s_g)
        s_n = s_g + s_2
        b16_shift = fx.weight_shift_for(float(beta.max()))
        b = np.maximum(_bias_at(fx.quantize_weights(beta, b16_shift), b16_shift, s_n), 1)
        norm_max = fx.gdn_norm_max(g, b)
        if norm_max <= fx.INT32_MAX:
            break
    k = 62 - norm_max.bit_length()
    k -= (s_n + k) % 2
    attrs: dict[str, int | float] = {
        "channels": c, "inverse": int(node.attrs["inverse"]), "square_shift": s_2,
        "gamma_shift": s_g, "root_shift": k, "out_shift": s_y}
    new = Node("s16_gdn", inputs, attrs, {"beta": b, "gamma": g})
    fx._gdn_shifts(attrs, s_x, s_y, where)
    out = _batch(lambda v: fx.s16_gdn(v, s_x, new), x)
    err_db = _snr_db(ref, out, s_y) if ref is not None else None
    st.report.nodes.append(NodeReport(len(st.nodes), "s16_gdn", s_y, s_g, s_g0 - s_g,
                                      (0, norm_max), err_db))
    _emit(st, new, s_y, fx.FULL_RANGE, out)


def quantize_model(model: ModelFile, *, calib: Calibration | None = None,
                   conv_shifts: dict[int, tuple[int, int]] | None = None,
                   act_shifts: list[int] | None = None, source: str = "calibrated",
                   progress: bool = False) -> tuple[ModelFile, Int16Report]:
    """The int16 graph of the float graph ``model``.

    ``conv_shifts`` maps a float node index to (weight shift, bias shift) given with the
    model; ``act_shifts`` is ``quant_act`` (input, then each convolution's output). Missing
    shifts are calibrated on ``calib``; without it, missing ones are an error.
    """
    from tqdm import tqdm

    conv_shifts = conv_shifts or {}
    _check_sources(model, calib, act_shifts)
    headroom = calib.headroom_bits if calib is not None else 0
    floats = _float_values(model, calib)
    report = Int16Report(source, patches=0 if calib is None else len(calib.inputs))
    st = _State([], [None], [fx.FULL_RANGE], [None], report)
    # QUANTIZE: the input's shift
    x0 = floats[0]
    if act_shifts is not None:
        s_in = act_shifts[0]
    else:
        assert x0 is not None  # _check_sources: without quant_act there is a calibration
        s_in = act_shift(float(np.abs(x0).max()), headroom)
    q0 = None if x0 is None else fx.quantize_float(x0, s_in).astype(np.int16)
    _emit(st, Node("quantize", [0], {"shift": s_in}), s_in, fx.FULL_RANGE, q0)
    report.nodes.append(NodeReport(0, "quantize", s_in))
    convs = [i for i, n in enumerate(model.nodes) if n.op in ("conv2d", "conv_transpose2d")]
    last_reader = {v: j for j, n in enumerate(model.nodes) for v in n.inputs}
    steps = tqdm(list(enumerate(model.nodes)), desc="int16 conversion", unit="node",
                 disable=None if progress else True)
    for i, node in steps:
        ref = floats[i + 1]
        if i in convs and act_shifts is not None:
            s_y = act_shifts[1 + convs.index(i)]
        else:  # calibrated (convolutions, GDN; other ops keep or choose their own)
            s_y = act_shift(float(np.abs(ref).max()), headroom) if ref is not None else 0
        _convert_node(st, node, i, ref, s_y, conv_shifts.get(i), headroom)
        _free(st, floats, last_reader, i)
    final = len(st.nodes)
    _emit(st, Node("dequantize", [final]), None, fx.FULL_RANGE, None)
    out = ModelFile(model.name, model.in_channels, model.out_channels, st.nodes)
    fx.check_worst_cases(out)
    if calib is not None and calib.targets is not None:
        _estimate_psnr(report, floats[-1], st.ints[final], st.shifts[final], calib.targets)
    return out, report


def _check_sources(model: ModelFile, calib: Calibration | None,
                   act_shifts: list[int] | None) -> None:
    n_conv = sum(n.op in ("conv2d", "conv_transpose2d") for n in model.nodes)
    if act_shifts is not None and len(act_shifts) != n_conv + 1:
        raise LicError(f"quant_act has {len(act_shifts)} shifts; the graph needs "
                       f"{n_conv + 1} (its input and {n_conv} convolutions)")
    if calib is None and act_shifts is None:
        raise LicError("activation shifts are neither in the checkpoint nor calibrated: "
                       "give a training set for calibration")
    if calib is None and any(n.op == "gdn" for n in model.nodes):
        raise LicError("GDN layers need calibration: give a training set")


def _convert_node(st: _State, node: Node, i: int, ref: np.ndarray | None, s_y: int,
                  given: tuple[int, int] | None, headroom: int) -> None:
    """Append the int16 form of float node ``i`` (output shift ``s_y`` where it has one)."""
    where = f"node {i} ({node.op})"
    inputs = [v + 1 for v in node.inputs]  # the int16 graph has QUANTIZE first
    vin = inputs[0]
    x = st.ints[vin]
    if node.op in ("conv2d", "conv_transpose2d"):
        _convert_conv(st, node, inputs, ref, s_y, given, where)
    elif node.op == "relu":
        lo, hi = st.ranges[vin]
        _emit(st, Node("s16_relu", inputs), st.shifts[vin], (max(lo, 0), max(hi, 0)),
              None if x is None else np.maximum(x, 0))
    elif node.op == "leaky_relu":
        aq, t = _alpha(float(node.attrs["alpha"]))
        out = None if x is None else _batch(lambda v: fx.s16_leaky_relu(v, aq, t), x)
        _emit(st, Node("s16_leaky_relu", inputs, {"alpha_q": aq, "alpha_shift": t}),
              st.shifts[vin], fx.FULL_RANGE, out)
    elif node.op == "gdn":
        _convert_gdn(st, node, inputs, s_y, headroom, ref, where)
    elif node.op == "add":
        _convert_add(st, inputs, ref, headroom, where)
    else:
        raise LicError(f"{where}: no int16 form for this op")


def _convert_add(st: _State, inputs: list[int], ref: np.ndarray | None, headroom: int,
                 where: str) -> None:
    sa, sb = st.shifts[inputs[0]], st.shifts[inputs[1]]
    assert sa is not None and sb is not None
    if abs(sa - sb) > 15:
        raise LicError(f"{where}: the inputs' shifts {sa} and {sb} differ by more than 15")
    if ref is None:
        raise LicError(f"{where}: ADD needs calibration for its output shift")
    s_y = max(act_shift(float(np.abs(ref).max()), headroom), max(sa, sb) - 16)
    s_y = min(s_y, max(sa, sb))
    a, b = st.ints[inputs[0]], st.ints[inputs[1]]
    out = None
    if a is not None and b is not None:
        out = fx.s16_add(a.astype(np.int64), sa, b.astype(np.int64), sb, s_y).astype(np.int16)
    st.report.nodes.append(NodeReport(len(st.nodes), "s16_add", s_y))
    _emit(st, Node("s16_add", inputs, {"out_shift": s_y}), s_y, fx.FULL_RANGE, out)


def _float_values(model: ModelFile, calib: Calibration | None) -> list[np.ndarray | None]:
    if calib is None:
        return [None] * (len(model.nodes) + 1)
    return float_forward(model, calib.inputs)


def _free(st: _State, floats: list[np.ndarray | None], last_reader: dict[int, int],
          i: int) -> None:
    """Drop the calibration values of float value ids no node after ``i`` reads (the
    batch can be large); the graph's output stays."""
    for v, j in last_reader.items():
        if j == i and v != len(floats) - 1:
            floats[v] = None
            st.ints[v + 1] = None


def _estimate_psnr(report: Int16Report, ref_out: np.ndarray | None, final: np.ndarray | None,
                   shift: int | None, targets: np.ndarray) -> None:
    """PSNR of the float and of the int16 network's 8-bit outputs against the targets."""
    if ref_out is None or final is None or shift is None:
        return
    float_px = np.floor(np.clip(ref_out, 0, 1) * 255 + 0.5).astype(np.uint8)
    int_px = np.stack([fx.to_pixels(v, shift) for v in final.astype(np.int64)])
    report.psnr_float = _psnr(targets, float_px)
    report.psnr_int16 = _psnr(targets, int_px)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the per-image PSNR (8-bit)."""
    out = []
    for x, y in zip(a, b, strict=True):
        h, w = min(x.shape[0], y.shape[0]), min(x.shape[1], y.shape[1])
        mse = np.mean((x[:h, :w].astype(np.float64) - y[:h, :w].astype(np.float64)) ** 2)
        out.append(10 * math.log10(255.0**2 / mse) if mse > 0 else 100.0)
    return float(np.mean(out))


# ---------------------------------------------------------------------------- driver

def int16_synthesis(net: Any, float_gs: ModelFile, *, checkpoint: str | Path | None = None,
                    quantizers_file: str | Path | None = None,
                    training_set: str | Path | None = None, patches: int = 16, seed: int = 0,
                    headroom_bits: int = DEFAULT_HEADROOM_BITS, progress: bool = False,
                    calib: Calibration | None = None, patch_size: int = 256,
                    offsets: np.ndarray | None = None) -> tuple[ModelFile, Int16Report]:
    """The int16 ``g_s`` of ``net`` (whose float graph is ``float_gs``), its shifts taken
    from ``quantizers_file``, else the checkpoint, else calibration on ``training_set``
    with latents rounded around ``offsets`` (or on ``calib``, already made by
    :func:`calibration_set`)."""
    param_names = [name for name, _ in net.g_s.named_parameters()]
    given: Quantizers | None = None
    if quantizers_file is not None:
        given = load_quantizers_file(quantizers_file)
    elif checkpoint is not None:
        from lic2cpp.load import _torch_load

        given = quantizers_from_checkpoint(_torch_load(Path(checkpoint)), param_names)
    conv_shifts: dict[int, tuple[int, int]] = {}
    acts = None
    if given is not None:
        unknown = sorted(set(given.params) - set(param_names))
        if unknown:
            raise LicError(f"{given.source}: {unknown[0]!r} names no parameter of g_s "
                           f"(known: {', '.join(param_names)})")
        for node, (w_name, b_name) in conv_param_names(net.g_s, float_gs).items():
            if w_name in given.params and b_name in given.params:
                conv_shifts[node] = (given.params[w_name], given.params[b_name])
        acts = given.acts
    needs_calibration = (acts is None or len(conv_shifts) < _conv_count(float_gs)
                         or any(n.op == "gdn" for n in float_gs.nodes))
    if calib is not None:
        patches = len(calib.inputs)
    elif training_set is not None:
        calib = calibration_set(net, training_set, patches, seed, headroom_bits, patch_size,
                                offsets)
    elif needs_calibration:
        raise LicError("the model carries no (complete) int16 quantizers: give a training "
                       "set (--training-set) to calibrate them")
    source = _describe_source(given, conv_shifts, acts, float_gs, patches)
    return quantize_model(float_gs, calib=calib, conv_shifts=conv_shifts, act_shifts=acts,
                          source=source, progress=progress)


def int16_analysis(net: Any, float_ga: ModelFile, training_set: str | Path, *,
                   patches: int = 16, seed: int = 0,
                   headroom_bits: int = DEFAULT_HEADROOM_BITS, progress: bool = False,
                   patch_size: int = 256) -> tuple[ModelFile, Int16Report]:
    """The int16 ``g_a`` (for ``--int16 both``), always calibrated: training patches in,
    ``x = rgb / 255`` as the encoder feeds it. Its report has no PSNR estimate; the rate
    change is measured on images (``lic2cpp eval``)."""
    from lic2cpp.datasets import load_training_set
    from lic2cpp.fit import check_training_path

    check_training_path(Path(training_set))
    images = np.asarray(load_training_set(training_set, patch_size, max_patches=patches,
                                          seed=seed))
    calib = Calibration((images.astype(np.float32) / np.float32(255.0)), None, headroom_bits)
    del net  # the float graph holds everything g_a needs
    return quantize_model(float_ga, calib=calib, source=f"calibrated on {len(images)} "
                          "training patches", progress=progress)


def _conv_count(model: ModelFile) -> int:
    return sum(n.op in ("conv2d", "conv_transpose2d") for n in model.nodes)


def _describe_source(given: Quantizers | None, conv_shifts: dict[int, tuple[int, int]],
                     acts: list[int] | None, model: ModelFile, patches: int) -> str:
    calibrated = f"calibrated on {patches} training patches"
    if given is None:
        return calibrated
    parts = [given.source]
    if len(conv_shifts) < _conv_count(model):
        parts.append(f"{_conv_count(model) - len(conv_shifts)} convolution(s) {calibrated}")
    if acts is None:
        parts.append(f"activations {calibrated}")
    if any(n.op == "gdn" for n in model.nodes):
        parts.append(f"GDN {calibrated}")
    return "; ".join(parts)
