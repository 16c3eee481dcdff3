"""Hyperprior models (``ScaleHyperprior``, ``MeanScaleHyperprior``): tables and reference.

A hyperprior model codes its latent ``y`` in two parts (docs/hyperprior.md):

1. ``z = h_a(|y|)`` (scale) or ``h_a(y)`` (mean-scale), quantised around the entropy
   bottleneck's medians and coded with the bottleneck's own CDFs, one per channel;
2. ``h_s(z_hat)`` gives, for every element of ``y``, a scale (and a mean); the scale picks
   one of the Gaussian conditional's CDFs (the *index*), the mean is subtracted before
   rounding.

What decides a CDF or an offset must come out the same in the encoder and the decoder on
every machine, so ``h_s`` runs in the int16 fixed-point arithmetic of docs/int16.md (an
int16 ``.licm`` graph) and the scale → index mapping is an integer comparison against
thresholds computed here, once, in exact arithmetic. This module builds those tables
(the ``.lich`` file the C++ coder reads) and is the numpy reference of everything the
coder computes: indexes, means, symbols and code lengths.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp import fixedpoint as fx
from lic2cpp.entropy import ESCAPE_LENGTH_BITS, MAX_ABS_SYMBOL, PROB_ONE, _bit_length
from lic2cpp.errors import LicError
from lic2cpp.files import write_bytes_atomic
from lic2cpp.load import compressai_package
from lic2cpp.modelformat import (
    ModelFile,
    decode_licm,
    downsampling_factor,
    encode_licm,
    fingerprint,
    header_fingerprint,
)
from lic2cpp.prior import (
    SymbolTable,
    bottleneck_medians,
    bottleneck_tables,
    gaussian_tables,
)

KIND_SCALE = 1  # ScaleHyperprior: h_a reads |y|, h_s gives M scales (zero means)
KIND_MEAN_SCALE = 2  # MeanScaleHyperprior: h_a reads y, h_s gives M scales then M means
KIND_NAMES = {KIND_SCALE: "scale hyperprior (bmshj2018-hyperprior)",
              KIND_MEAN_SCALE: "mean-scale hyperprior (mbt2018-mean)"}

MAGIC = b"LICH"
VERSION_MAJOR = 1
# 1.1 added the fitted y tables of the hybrid coding (written only when present, so files
# without them are byte for byte what 1.0 writers wrote).
VERSION_MINOR = 1
HEADER = struct.Struct("<4sHHQQ")  # magic, major, minor, body_size, fingerprint
# kind, M, N, precision bits, z_factor (h_a's downsampling), fingerprint of h_a
BODY_HEAD = struct.Struct("<IIIIIQ")
MAX_Z_FACTOR = 64
MAX_SCALES = 1024
MAX_TABLE = 1 << 15  # in-range symbols of one table
MAX_CHANNELS = 4096
NEVER = -(2**31)  # a threshold no int16 value is at or below

# Hybrid coding (mode 3): y symbols coded with tables fitted on the training set, one per
# (scale index, context); context = min(|left| + |up|, HYBRID_CONTEXTS - 1) of the already
# coded neighbours' symbols in the same channel (0 outside the latent).
HYBRID_CONTEXTS = 6
HYBRID_MAX_HALF = 127  # fitted alphabets stay within +-127 (the rest is escaped)
HYBRID_PRIOR_WEIGHT = 16  # pseudo-observations per table, spread like the Gaussian CDF


def hyper_kind(net: Any) -> int:
    """KIND_SCALE or KIND_MEAN_SCALE; LicError for any other model."""
    models = compressai_package().models
    kind = {models.ScaleHyperprior: KIND_SCALE,
            models.MeanScaleHyperprior: KIND_MEAN_SCALE}.get(type(net))
    if kind is None:
        raise LicError(f"{type(net).__name__} is not a hyperprior model lic2cpp codes (it "
                       "codes ScaleHyperprior and MeanScaleHyperprior; autoregressive "
                       "context models such as mbt2018 are not supported)")
    return kind


def is_hyperprior(net: Any) -> bool:
    return hasattr(net, "h_s") and hasattr(net, "gaussian_conditional")


# ---------------------------------------------------------------------------- thresholds

def scale_thresholds(scale_table: np.ndarray, bound: float, shift: int) -> np.ndarray:
    """Integer thresholds of the scale → index mapping for scales ``q · 2^-shift``.

    CompressAI: ``s' = max(scale, bound)``, ``index = L − 1 − #{i < L−1 : s' ≤ t_i}``.
    With ``scale = q · 2^-shift`` exactly, ``s' ≤ t_i`` ⟺ ``bound ≤ t_i`` and
    ``q ≤ ⌊t_i · 2^shift⌋``. So ``index = #{i : thr_i < q}`` with
    ``thr_i = ⌊t_i · 2^shift⌋`` (exact: float32 times a power of two, in float64), or
    ``NEVER`` where ``bound > t_i``. The thresholds are non-decreasing.
    """
    t = np.asarray(scale_table, dtype=np.float32).astype(np.float64)
    b = float(np.float32(bound))
    thr = np.floor(t[:-1] * 2.0**shift)
    thr = np.clip(thr, NEVER, 2**31 - 1)
    thr = np.where(b <= t[:-1], thr, NEVER).astype(np.int64)
    if (np.diff(thr) < 0).any():
        raise LicError("the Gaussian conditional's scale table is not increasing")
    return thr


def scale_index(q: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``#{i : thr_i < q}`` for every int ``q`` (the thresholds are sorted)."""
    return np.searchsorted(thresholds, np.asarray(q, dtype=np.int64), side="left")


# ---------------------------------------------------------------------------- tables

@dataclass
class HyperTables:
    """Everything the hyperprior coder needs besides the float networks (``.lich``)."""

    kind: int
    z_medians: np.ndarray  # float32 [N]
    z_tables: list[SymbolTable]  # one per channel of z
    y_tables: list[SymbolTable]  # one per scale index
    thresholds: np.ndarray  # int64 [L - 1]
    h_s: ModelFile  # int16 graph: QUANTIZE, S16_* ..., DEQUANTIZE
    h_a_fingerprint: int = 0  # the float h_a the encoder runs (.licm header fingerprint)
    z_factor: int = 4  # z is ceil(latent side / z_factor): h_a's downsampling factor
    # hybrid: per scale index, [HYBRID_CONTEXTS, nsym + 1] frequencies over the same
    # alphabet (lo = fitted_lo[i]); None: y is coded with the Gaussian CDFs (mode 2)
    fitted: list[np.ndarray] | None = None
    fitted_lo: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # how it was made, not saved

    @property
    def num_scales(self) -> int:
        return len(self.y_tables)

    @property
    def latent_channels(self) -> int:  # M
        return self.h_s.out_channels // (2 if self.kind == KIND_MEAN_SCALE else 1)

    @property
    def hyper_channels(self) -> int:  # N
        return len(self.z_tables)

    @property
    def out_shift(self) -> int:
        """Shift of h_s's int16 output (the input of its final DEQUANTIZE)."""
        return int(fx.value_shifts(self.h_s)[-2] or 0)

    # ---- file format ---------------------------------------------------------------
    def to_bytes(self) -> bytes:
        body = bytearray(BODY_HEAD.pack(self.kind, self.latent_channels, self.hyper_channels,
                                        16, self.z_factor, self.h_a_fingerprint))
        for median, t in zip(self.z_medians, self.z_tables, strict=True):
            body += struct.pack("<f", float(median))
            body += _table_bytes(t)
        body += struct.pack("<I", self.num_scales)
        for t in self.y_tables:
            body += _table_bytes(t)
        body += struct.pack("<i", self.out_shift)
        body += np.asarray(self.thresholds, dtype="<i4").tobytes()
        net = encode_licm(self.h_s)
        body += struct.pack("<I", len(net)) + net + b"\0" * (-len(net) % 4)
        minor = 0
        if self.fitted is not None:
            assert self.fitted_lo is not None
            minor = 1
            body += struct.pack("<I", HYBRID_CONTEXTS)
            for lo, freqs in zip(self.fitted_lo, self.fitted, strict=True):
                raw = np.asarray(freqs, dtype="<u2").tobytes()
                body += struct.pack("<iI", int(lo), freqs.shape[1] - 1) + raw
                body += b"\0" * (-len(raw) % 4)
        return HEADER.pack(MAGIC, VERSION_MAJOR, minor, len(body),
                           fingerprint(bytes(body))) + bytes(body)

    def fingerprint(self) -> int:
        return int(HEADER.unpack_from(self.to_bytes())[4])

    def save(self, path: str | Path) -> None:
        write_bytes_atomic(path, self.to_bytes())

    @staticmethod
    def from_bytes(data: bytes) -> HyperTables:
        return _parse(data)

    @staticmethod
    def load(path: str | Path) -> HyperTables:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise LicError(f"cannot read hyperprior tables {path}: {exc.strerror}") from None
        try:
            return _parse(data)
        except LicError as exc:
            raise LicError(f"{path}: {exc}") from None

    # ---- the reference of the coder --------------------------------------------------
    def z_symbols(self, z: np.ndarray) -> np.ndarray:
        """``round(z − median)`` (float32, half to even) of z ``[N, h, w]``, int64."""
        d = np.asarray(z, dtype=np.float32) - self.z_medians[:, None, None]
        _check_symbols(d, "z")
        return np.rint(d).astype(np.int64)

    def z_hat(self, qz: np.ndarray) -> np.ndarray:
        """``float32(q) + median``, ``[N, h, w]`` float32."""
        return (qz.astype(np.float32) + self.z_medians[:, None, None]).astype(np.float32)

    def hyper_synthesis(self, qz: np.ndarray, height: int, width: int
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Indexes ``[M, height, width]`` (int64) and means (float32, or None for a scale
        hyperprior) from the z symbols: the int16 ``h_s`` (numpy reference of
        docs/int16.md), cropped top-left to the latent's size, then the thresholds."""
        z_hat = self.z_hat(qz).transpose(1, 2, 0)  # HWC
        values = fx.run_values(self.h_s, z_hat)
        out = values[-2]  # int16 output of h_s, before DEQUANTIZE
        if out.shape[0] < height or out.shape[1] < width:
            raise LicError("h_s output does not cover the latent")
        out = out[:height, :width].transpose(2, 0, 1)
        m = self.latent_channels
        index = scale_index(out[:m], self.thresholds)
        means = None
        if self.kind == KIND_MEAN_SCALE:
            means = fx.dequantize(out[m:], self.out_shift)
        return index, means

    def y_symbols(self, y: np.ndarray, means: np.ndarray | None) -> np.ndarray:
        """``round(y − mean)`` (float32, half to even), or ``round(y)``; int64."""
        d = np.asarray(y, dtype=np.float32)
        if means is not None:
            d = d - means
        _check_symbols(d, "y")
        return np.rint(d).astype(np.int64)

    def y_hat(self, qy: np.ndarray, means: np.ndarray | None) -> np.ndarray:
        out = qy.astype(np.float32)
        return out if means is None else (out + means).astype(np.float32)

    @property
    def hybrid(self) -> bool:
        return self.fitted is not None

    def code_length(self, qz: np.ndarray, qy: np.ndarray, index: np.ndarray
                    ) -> tuple[float, float]:
        """Ideal bits of z and of y (escapes with their bypass bits), as the coder."""
        z_bits = sum(_bits(qz[c], t) for c, t in enumerate(self.z_tables))
        y_bits = 0.0
        if self.fitted is not None:
            assert self.fitted_lo is not None
            ctx = hybrid_contexts(qy)
            for i in np.unique(index):
                sel = index == i
                t = self.fitted[int(i)]
                y_bits += _bits_ctx(qy[sel], ctx[sel], int(self.fitted_lo[int(i)]), t)
            return float(z_bits), float(y_bits)
        for i in np.unique(index):
            y_bits += _bits(qy[index == i], self.y_tables[int(i)])
        return float(z_bits), float(y_bits)


def _check_symbols(d: np.ndarray, what: str) -> None:
    if not np.isfinite(d).all() or np.abs(d).max(initial=0) >= MAX_ABS_SYMBOL:
        raise LicError(f"{what} has non-finite or out-of-range values")


def _symbol_index(q: np.ndarray, lo: int, nsym: int) -> tuple[np.ndarray, np.ndarray]:
    """Table index of each value (escape = nsym) and the bypass bits each escape costs."""
    rel = q.astype(np.int64) - lo
    inside = (rel >= 0) & (rel < nsym)
    idx = np.where(inside, rel, nsym)
    dist = np.where(rel < 0, -rel - 1, rel - nsym)
    extra = np.where(inside, 0, 1 + ESCAPE_LENGTH_BITS + _bit_length(dist + 1) - 1)
    return idx, extra.astype(np.float64)


def _bits(q: np.ndarray, t: SymbolTable) -> float:
    idx, extra = _symbol_index(q, t.lo, t.nsym)
    return float((-np.log2(t.freqs[idx] / PROB_ONE) + extra).sum())


def _bits_ctx(q: np.ndarray, ctx: np.ndarray, lo: int, freqs: np.ndarray) -> float:
    idx, extra = _symbol_index(q, lo, freqs.shape[1] - 1)
    return float((-np.log2(freqs[ctx, idx] / PROB_ONE) + extra).sum())


def hybrid_contexts(qy: np.ndarray) -> np.ndarray:
    """Context of every y symbol (``[..., h, w]``): min(|left| + |up|, HYBRID_CONTEXTS - 1),
    a neighbour outside the latent counting 0."""
    a = np.minimum(np.abs(qy.astype(np.int64)), HYBRID_CONTEXTS)
    s = np.zeros_like(a)
    s[..., :, 1:] += a[..., :, :-1]
    s[..., 1:, :] += a[..., :-1, :]
    return np.minimum(s, HYBRID_CONTEXTS - 1)


def _table_bytes(t: SymbolTable) -> bytes:
    raw = np.asarray(t.freqs, dtype="<u2").tobytes()
    return struct.pack("<iI", t.lo, t.nsym) + raw + b"\0" * (-len(raw) % 4)


# ---------------------------------------------------------------------------- parsing

class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise LicError("hyperprior tables are truncated")
        out = self.body[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def table(self) -> SymbolTable:
        lo, nsym = self.unpack("<iI")
        if not 1 <= nsym <= MAX_TABLE or abs(lo) >= MAX_ABS_SYMBOL:
            raise LicError("hyperprior tables have an invalid CDF record")
        n = nsym + 1
        raw = self.take(2 * n + (-2 * n) % 4)
        f = np.frombuffer(raw[:2 * n], dtype="<u2").astype(np.uint32)
        if (f == 0).any() or int(f.sum()) != PROB_ONE:
            raise LicError("hyperprior tables have an invalid probability table")
        return SymbolTable(lo=lo, freqs=f)


def _parse(data: bytes) -> HyperTables:
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise LicError("not a lic2cpp hyperprior tables file (bad magic or too short)")
    _, major, _minor, body_size, fp = HEADER.unpack_from(data)
    if major != VERSION_MAJOR:
        raise LicError(f"unsupported hyperprior tables version {major}")
    body = data[HEADER.size:]
    if body_size != len(body):
        raise LicError("hyperprior tables have the wrong size (truncated?)")
    if fingerprint(body) != fp:
        raise LicError("hyperprior tables fingerprint mismatch (corrupt file)")
    r = _Reader(body)
    kind, m, n, prec, z_factor, ha_fp = BODY_HEAD.unpack(r.take(BODY_HEAD.size))
    if kind not in KIND_NAMES or prec != 16 or not 1 <= m <= MAX_CHANNELS \
            or not 1 <= n <= MAX_CHANNELS or not 1 <= z_factor <= MAX_Z_FACTOR:
        raise LicError("hyperprior tables have an unsupported layout")
    medians, z_tables = [], []
    for _ in range(n):
        (median,) = r.unpack("<f")
        if not np.isfinite(median):
            raise LicError("hyperprior tables have a non-finite median")
        medians.append(median)
        z_tables.append(r.table())
    (count,) = r.unpack("<I")
    if not 1 <= count <= MAX_SCALES:
        raise LicError("hyperprior tables have an invalid number of scales")
    y_tables = [r.table() for _ in range(count)]
    (shift,) = r.unpack("<i")
    thr = np.frombuffer(r.take(4 * (count - 1)), dtype="<i4").astype(np.int64)
    if (np.diff(thr) < 0).any():
        raise LicError("hyperprior scale thresholds are not sorted")
    (size,) = r.unpack("<I")
    net = r.take(size)
    r.take(-size % 4)
    fitted, fitted_lo = None, None
    if r.pos != len(body):  # 1.1: the hybrid's fitted tables
        (contexts,) = r.unpack("<I")
        if contexts != HYBRID_CONTEXTS:
            raise LicError("hyperprior tables have an unsupported hybrid layout")
        fitted, los = [], []
        for _ in range(count):
            lo, nsym = r.unpack("<iI")
            if not 1 <= nsym <= 2 * HYBRID_MAX_HALF + 1 or abs(lo) >= MAX_ABS_SYMBOL:
                raise LicError("hyperprior tables have an invalid fitted table")
            n = contexts * (nsym + 1)
            raw = r.take(2 * n + (-2 * n) % 4)
            f = np.frombuffer(raw[:2 * n], dtype="<u2").astype(np.uint32).reshape(
                contexts, nsym + 1)
            if (f == 0).any() or (f.sum(axis=1) != PROB_ONE).any():
                raise LicError("hyperprior tables have an invalid fitted table")
            fitted.append(f)
            los.append(lo)
        fitted_lo = np.array(los, dtype=np.int64)
    if r.pos != len(body):
        raise LicError("hyperprior tables have trailing bytes")
    h_s = decode_licm(net)
    tables = HyperTables(kind=kind, z_medians=np.array(medians, dtype=np.float32),
                         z_tables=z_tables, y_tables=y_tables, thresholds=thr, h_s=h_s,
                         h_a_fingerprint=ha_fp, z_factor=z_factor, fitted=fitted,
                         fitted_lo=fitted_lo)
    _check_h_s(tables, m)
    if tables.out_shift != shift:
        raise LicError("hyperprior tables: the stored shift is not h_s's output shift")
    return tables


def _check_h_s(tables: HyperTables, m: int) -> None:
    """h_s must be an int16 graph from the N channels of z to M (or 2M) channels."""
    h_s = tables.h_s
    shifts = fx.value_shifts(h_s)
    if h_s.nodes[-1].op != "dequantize" or shifts[-2] is None:
        raise LicError("hyperprior h_s must be an int16 network (ending in DEQUANTIZE)")
    fx.check_worst_cases(h_s)
    want = m * (2 if tables.kind == KIND_MEAN_SCALE else 1)
    if h_s.in_channels != tables.hyper_channels or h_s.out_channels != want:
        raise LicError(f"hyperprior h_s maps {h_s.in_channels} to {h_s.out_channels} "
                       f"channels; the tables need {tables.hyper_channels} to {want}")


# ---------------------------------------------------------------------------- building

def hyper_tables(net: Any, h_s_int16: ModelFile, h_a_licm: bytes) -> HyperTables:
    """The tables of ``net`` (a ScaleHyperprior or MeanScaleHyperprior) with its int16
    ``h_s`` graph (from :func:`int16_hyper_synthesis`) and the bytes of its float
    ``h_a.licm`` (the encoder's; only its fingerprint and downsampling are recorded)."""
    kind = hyper_kind(net)
    h_a = decode_licm(h_a_licm)
    z_factor = downsampling_factor(h_a)
    if not 1 <= z_factor <= MAX_Z_FACTOR:
        raise LicError(f"h_a downsamples by {z_factor} (at most {MAX_Z_FACTOR})")
    gc = net.gaussian_conditional
    scale_table = gc.scale_table.detach().cpu().numpy().astype(np.float32)
    bound = float(gc.lower_bound_scale.bound.detach().cpu().reshape(-1)[0])
    tables = HyperTables(
        kind=kind, z_medians=bottleneck_medians(net.entropy_bottleneck),
        z_tables=bottleneck_tables(net.entropy_bottleneck), y_tables=gaussian_tables(gc),
        thresholds=np.zeros(0, dtype=np.int64), h_s=h_s_int16,
        h_a_fingerprint=header_fingerprint(h_a_licm), z_factor=z_factor)
    if len(scale_table) != tables.num_scales or not 1 <= len(scale_table) <= MAX_SCALES:
        raise LicError("the Gaussian conditional's scale table and CDFs disagree")
    for t in (*tables.z_tables, *tables.y_tables):
        if t.nsym > MAX_TABLE:
            raise LicError(f"a CDF of the model has {t.nsym} symbols (at most {MAX_TABLE})")
    tables.thresholds = scale_thresholds(scale_table, bound, tables.out_shift)
    _check_h_s(tables, int(net.M))
    return tables


# ---------------------------------------------------------------------------- calibration

def hyper_latents(net: Any, images: np.ndarray, batch: int = 8) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """``y`` and ``z`` of uint8 NHWC images through PyTorch (``[n, C, h, w]`` float32)."""
    import torch

    kind = hyper_kind(net)
    ys, zs = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.array(images[start:start + batch])).permute(0, 3, 1, 2)
            y = net.g_a(x.float() / 255.0)
            z = net.h_a(torch.abs(y) if kind == KIND_SCALE else y)
            ys.append(y.numpy())
            zs.append(z.numpy())
    return np.concatenate(ys), np.concatenate(zs)


def prior_samples(net: Any, count: int, side: int, seed: int = 0) -> np.ndarray:
    """z symbols drawn from the entropy bottleneck's own tables, ``[count, N, side, side]``
    (int64): calibration data when no training set is given."""
    rng = np.random.default_rng(seed)
    tables = bottleneck_tables(net.entropy_bottleneck)
    out = np.zeros((count, len(tables), side, side), dtype=np.int64)
    for c, t in enumerate(tables):
        p = t.freqs[:-1].astype(np.float64)
        out[:, c] = t.lo + rng.choice(t.nsym, size=(count, side, side), p=p / p.sum())
    return out


def calibration_z_hat(net: Any, training_set: str | Path | None, patches: int = 16,
                      seed: int = 0) -> tuple[np.ndarray, str]:
    """NHWC float32 ``z_hat`` to calibrate the int16 ``h_s`` on, and where it came from:
    ``patches`` random 256×256 training patches, or (no training set) z symbols drawn
    from the model's own bottleneck tables (4×4 each, as a 256×256 patch gives)."""
    medians = bottleneck_medians(net.entropy_bottleneck)[None, :, None, None]
    if training_set is not None:
        from lic2cpp.datasets import load_training_set
        from lic2cpp.fit import check_training_path

        check_training_path(Path(training_set))
        images = np.asarray(load_training_set(training_set, 256, max_patches=patches,
                                              seed=seed))
        _, z = hyper_latents(net, images)
        qz = np.rint(z - medians)
        source = f"{len(images)} training patches"
    else:
        qz = prior_samples(net, patches, 4, seed).astype(np.float32)
        source = f"{patches} samples of z drawn from the model's bottleneck"
    z_hat = (qz + medians).astype(np.float32)
    return np.ascontiguousarray(z_hat.transpose(0, 2, 3, 1)), source


def int16_hyper_synthesis(net: Any, float_h_s: ModelFile, training_set: str | Path | None,
                          patches: int = 16, seed: int = 0) -> tuple[ModelFile, Any]:
    """The int16 graph of ``h_s`` (docs/int16.md), every shift calibrated on z_hat."""
    from lic2cpp.int16 import Calibration, quantize_model

    z_hat, source = calibration_z_hat(net, training_set, patches, seed)
    model, report = quantize_model(float_h_s, calib=Calibration(inputs=z_hat),
                                   source=f"calibrated on {source}")
    return model, report


# ---------------------------------------------------------------------------- hybrid fit

def training_symbols(net: Any, tables: HyperTables, images: np.ndarray,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y symbols, their scale indexes (``[n, M, h, w]`` int64) and the z bits of uint8
    NHWC images, as the coder computes them."""
    from tqdm import tqdm

    qys, idxs, z_bits = [], [], []
    for start in tqdm(range(0, len(images), 8), desc="hyperprior over training patches",
                      unit="batch", disable=None if progress else True):
        y, z = hyper_latents(net, images[start:start + 8])
        for yi, zi in zip(y, z, strict=True):
            qz = tables.z_symbols(zi)
            index, means = tables.hyper_synthesis(qz, yi.shape[1], yi.shape[2])
            qys.append(tables.y_symbols(yi, means))
            idxs.append(index)
            z_bits.append(sum(_bits(qz[c], t) for c, t in enumerate(tables.z_tables)))
    return np.stack(qys), np.stack(idxs), np.array(z_bits)


def fit_hybrid(tables: HyperTables, qy: np.ndarray, index: np.ndarray) -> HyperTables:
    """The hybrid tables: for each scale index, an alphabet (the training range, within
    +-127, always holding 0) and one table per context, counts smoothed towards the
    Gaussian CDF of that index (HYBRID_PRIOR_WEIGHT pseudo-observations), then quantised.
    Exact integer arithmetic: the same training symbols always give the same file."""
    from lic2cpp.entropy import quantize_frequencies

    ctx = hybrid_contexts(qy)
    fitted, los = [], []
    for i, gauss in enumerate(tables.y_tables):
        sel = index == i
        q, c = qy[sel], ctx[sel]
        lo = max(min(int(q.min()) if q.size else 0, 0), -HYBRID_MAX_HALF)
        hi = min(max(int(q.max()) if q.size else 0, 0), HYBRID_MAX_HALF)
        nsym = hi - lo + 1
        # the Gaussian table on this alphabet: in-range frequencies, the rest to the escape
        g_idx = np.arange(lo, hi + 1) - gauss.lo
        inside = (g_idx >= 0) & (g_idx < gauss.nsym)
        prior = np.where(inside, gauss.freqs[np.clip(g_idx, 0, gauss.nsym - 1)], 0)
        prior = np.append(prior, PROB_ONE - int(prior.sum())).astype(np.int64)
        sym, _ = _symbol_index(q, lo, nsym)
        counts = np.zeros((HYBRID_CONTEXTS, nsym + 1), dtype=np.int64)
        np.add.at(counts, (c, sym), 1)
        rows = [quantize_frequencies(counts[k] * PROB_ONE + HYBRID_PRIOR_WEIGHT * prior)
                for k in range(HYBRID_CONTEXTS)]
        fitted.append(np.stack(rows))
        los.append(lo)
    tables.fitted, tables.fitted_lo = fitted, np.array(los, dtype=np.int64)
    return tables
