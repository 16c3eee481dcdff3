"""The int16 fixed-point arithmetic of docs/int16.md, and a numpy reference that runs it.

Everything here follows docs/int16.md literally and is independent of the C++ code:
the primitives (rounding shift, saturation, exact integer square root, exact division),
the worst-case accumulator bounds a `.licm` reader checks, and :func:`run_reference`, which
runs a whole int16 `.licm` graph (``lic2cpp.modelformat.ModelFile``) on a float input.

Integers are numpy int64. The one exception is the convolutions' sums of products: they
are computed by float64 matrix products (BLAS), which is exact here because every product
is an integer of magnitude at most ``2^30`` and every partial sum at most
``K · 2^30 < 2^53`` for the ``K ≤ 4096·15·15`` products of one output — so each partial sum
is an integer float64 represents exactly, whatever the summation order. ``exact="int64"``
computes the same sums with int64 matrix products instead (100× slower; the tests check
that both agree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lic2cpp.errors import LicError

if TYPE_CHECKING:
    from lic2cpp.modelformat import ModelFile, Node

INT16_MIN, INT16_MAX = -32768, 32767
WEIGHT_MAX = 32767  # weights are symmetric: -32768 is never used
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Range of every shift stored in a file; the operators' derived shifts are narrower.
SHIFT_MIN, SHIFT_MAX = -32, 32
ROOT_LIMIT = 2**62  # norm · 2^k stays below this, so isqrt(.) < 2^31

FULL_RANGE = (INT16_MIN, INT16_MAX)
RELU_RANGE = (0, INT16_MAX)


# ---------------------------------------------------------------------------- primitives

def rs(a: Any, n: int) -> np.ndarray:
    """Rounding shift: ``(a + 2^(n-1)) >> n`` (round half up), ``a`` for ``n == 0``."""
    a = np.asarray(a, dtype=np.int64)
    if n < 0:
        raise ValueError(f"rounding shift by {n}")
    if n == 0:
        return a
    return (a + (np.int64(1) << np.int64(n - 1))) >> np.int64(n)


def sat16(a: Any) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.int64), INT16_MIN, INT16_MAX)


def round_half_up(v: Any, shift: int) -> np.ndarray:
    """``⌊v · 2^shift + ½⌋`` as float64 (exact for float32 ``v``); NaN gives 0."""
    x = np.asarray(v, dtype=np.float64) * (2.0 ** shift)
    x = np.floor(x + 0.5)
    return np.where(np.isnan(x), 0.0, x)


def quantize_float(v: Any, shift: int) -> np.ndarray:
    """``QUANTIZE``: ``sat16(⌊v · 2^shift + ½⌋)`` as int64."""
    x = np.clip(round_half_up(v, shift), INT16_MIN, INT16_MAX)
    return x.astype(np.int64)


def quantize_weights(v: Any, shift: int) -> np.ndarray:
    """Weights at ``shift``: ``⌊v · 2^shift + ½⌋``, required to fit ``[-32767, 32767]``."""
    x = round_half_up(v, shift)
    if x.size and np.abs(x).max() > WEIGHT_MAX:
        raise LicError(f"weights do not fit int16 at shift {shift}")
    return x.astype(np.int64)


def dequantize(q: Any, shift: int) -> np.ndarray:
    """``DEQUANTIZE``: the float32 ``q · 2^-shift`` (exact)."""
    return (np.asarray(q, dtype=np.float64) * 2.0 ** (-shift)).astype(np.float32)


def isqrt(v: Any) -> np.ndarray:
    """``⌊√v⌋`` exactly, for int64 ``0 ≤ v < 2^62``: a float64 estimate, corrected."""
    v = np.asarray(v, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= ROOT_LIMIT):
        raise ValueError("isqrt argument outside [0, 2^62)")
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    # The estimate is off by at most one or two units; step until r² ≤ v < (r+1)².
    for _ in range(4):
        r = np.where(r * r > v, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def div_round_half_up(num: Any, den: Any) -> np.ndarray:
    """``⌊(2·num + den) / (2·den)⌋`` for ``den > 0``: ``num/den`` rounded half up."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    return np.floor_divide(2 * num + den, 2 * den)


def to_pixels(q: Any, shift: int) -> np.ndarray:
    """8-bit pixels of the last tensor: ``clamp(rs(q · 255, shift), 0, 255)`` (shift ≥ 0)."""
    a = np.asarray(q, dtype=np.int64) * 255
    p = rs(a, shift) if shift >= 0 else a << np.int64(-shift)
    return np.clip(p, 0, 255).astype(np.uint8)


def weight_shift_for(max_abs: float, limit: int = WEIGHT_MAX) -> int:
    """Largest shift at which ``⌊max_abs · 2^s + ½⌋ ≤ limit`` (capped at SHIFT_MAX)."""
    if not np.isfinite(max_abs):
        raise LicError("a tensor holds non-finite values")
    if max_abs <= 0:
        return SHIFT_MAX
    s = int(np.floor(np.log2(limit / max_abs)))
    # log2 can be off by one near powers of two: settle it with the exact rounding rule.
    while s < SHIFT_MAX and np.floor(max_abs * 2.0 ** (s + 1) + 0.5) <= limit:
        s += 1
    while s > SHIFT_MIN and np.floor(max_abs * 2.0**s + 0.5) > limit:
        s -= 1
    return max(SHIFT_MIN, min(SHIFT_MAX, s))


# ---------------------------------------------------------------------------- worst cases

def product_bounds(w: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise least and greatest value of ``w · x`` for ``x ∈ [lo, hi]``."""
    w = np.asarray(w, dtype=np.int64)
    a, b = w * lo, w * hi
    return np.minimum(a, b), np.maximum(a, b)


def phase_taps(k: int, stride: int) -> list[np.ndarray]:
    """Kernel taps each output row (or column) of a transposed convolution receives: the
    rows ``oy`` with ``(oy + pad) % stride == r`` get the taps ``ky ≡ r (mod stride)``, one
    class per row whatever the padding."""
    return [np.arange(r, k, stride) for r in range(stride)]


def accumulator_range(w_taps: np.ndarray, bias_round: np.ndarray, lo: int, hi: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Least and greatest partial sum, per output channel, of a convolution whose products
    for one output pixel are ``w_taps[co, ...] · x`` with ``x ∈ [lo, hi]``; ``bias_round``
    is the bias plus the rounding constant (int64, per channel). Any subset of the
    products, with or without the bias, lies in the returned interval."""
    cout = w_taps.shape[0]
    m, big_m = product_bounds(w_taps.reshape(cout, -1), lo, hi)
    b = np.asarray(bias_round, dtype=np.int64)
    return m.sum(axis=1) + np.minimum(b, 0), big_m.sum(axis=1) + np.maximum(b, 0)


def conv_worst_case(w: np.ndarray, bias_round: np.ndarray, lo: int, hi: int,
                    transpose: bool, strides: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Worst partial sums over every output channel (and sub-pixel phase) of a
    convolution with int weights ``w`` in PyTorch layout."""
    w = np.asarray(w, dtype=np.int64)
    if not transpose:  # [co][ci][ky][kx]: every output pixel can see every tap
        lo_c, hi_c = accumulator_range(w, bias_round, lo, hi)
        return int(lo_c.min()), int(hi_c.max())
    wt = w.transpose(1, 0, 2, 3)  # [ci][co][ky][kx] -> [co][ci][ky][kx]
    worst_lo, worst_hi = 0, 0
    for rows in phase_taps(wt.shape[2], strides[0]):
        for cols in phase_taps(wt.shape[3], strides[1]):
            if rows.size == 0 or cols.size == 0:
                continue
            sub = wt[:, :, rows][:, :, :, cols]
            lo_c, hi_c = accumulator_range(sub, bias_round, lo, hi)
            worst_lo, worst_hi = min(worst_lo, int(lo_c.min())), max(worst_hi, int(hi_c.max()))
    b = np.asarray(bias_round, dtype=np.int64)
    return min(worst_lo, int(b.min(initial=0))), max(worst_hi, int(b.max(initial=0)))


def fits_int32(bounds: tuple[int, int]) -> bool:
    return bounds[0] >= INT32_MIN and bounds[1] <= INT32_MAX


def rounding_constant(n: int) -> int:
    return 1 << (n - 1) if n > 0 else 0


def gdn_norm_max(gamma: np.ndarray, beta: np.ndarray) -> int:
    """Largest possible GDN norm: ``B_i + 32767 · Σ_j G_ij`` over channels ``i``."""
    g = np.asarray(gamma, dtype=np.int64)
    return int((np.asarray(beta, dtype=np.int64) + INT16_MAX * g.sum(axis=1)).max())


# ---------------------------------------------------------------------------- value types

def value_shifts(model: ModelFile) -> list[int | None]:
    """Per value (0 = model input, i+1 = node i): its shift if int16, None if float.

    Raises LicError when an operator gets a value of the wrong type or its shifts break
    docs/int16.md's constraints (the checks every reader does)."""
    shifts: list[int | None] = [None]
    for i, node in enumerate(model.nodes):
        where = f"node {i} ({node.op})"
        ins = [shifts[v] for v in node.inputs]
        shifts.append(_output_shift(node, ins, where))
    if shifts[-1] is not None:
        raise LicError("the model output is int16; an int16 network ends with DEQUANTIZE")
    return shifts


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise LicError(f"{where}: {what}")


def _output_shift(node: Node, ins: list[int | None], where: str) -> int | None:
    a = node.attrs
    op = node.op
    if not op.startswith("s16_") and op != "dequantize":
        _need(all(s is None for s in ins), where, "reads an int16 value (needs a float one)")
        return int(a["shift"]) if op == "quantize" else None
    _need(all(s is not None for s in ins), where, "reads a float value (needs an int16 one)")
    sx = int(ins[0])  # type: ignore[arg-type]
    if op == "dequantize":
        return None
    if op in ("s16_relu", "s16_leaky_relu"):
        return sx
    sy = int(a["out_shift"])
    if op in ("s16_conv2d", "s16_conv_transpose2d"):
        n = sx + int(a["weight_shift"]) - sy
        _need(0 <= n <= 31, where, f"accumulator shift {n} is outside 0..31")
    elif op == "s16_add":
        sb = int(ins[1])  # type: ignore[arg-type]
        _need(abs(sx - sb) <= 15, where, f"input shifts {sx} and {sb} differ by more than 15")
        n = max(sx, sb) - sy
        _need(0 <= n <= 16, where, f"output shift leaves a shift of {n}, outside 0..16")
    elif op == "s16_gdn":
        _gdn_shifts(a, sx, sy, where)
    return sy


def _gdn_shifts(a: dict[str, Any], sx: int, sy: int, where: str) -> tuple[int, int, int]:
    """(n2, s_r, m or e) of an S16_GDN node, checked against docs/int16.md."""
    s2, sg, k = int(a["square_shift"]), int(a["gamma_shift"]), int(a["root_shift"])
    n2 = 2 * sx - s2
    _need(0 <= n2 <= 31, where, f"square shift leaves a shift of {n2}, outside 0..31")
    _need(0 <= k <= 62 and (sg + s2 + k) % 2 == 0, where,
          f"root shift {k} must be in 0..62 and make the norm's shift even")
    sr = (sg + s2 + k) // 2
    if int(a["inverse"]):
        m = sx + sr - sy
        _need(0 <= m <= 62, where, f"output shift leaves a shift of {m}, outside 0..62")
        return n2, sr, m
    e = sy - sx + sr
    _need(0 <= e <= 46, where, f"division exponent {e} is outside 0..46")
    return n2, sr, e


def check_worst_cases(model: ModelFile) -> None:
    """Refuse (LicError) a graph in which some int32 sum could overflow (docs/int16.md)."""
    shifts = value_shifts(model)
    ranges: list[tuple[int, int]] = [FULL_RANGE] * (len(model.nodes) + 1)
    for i, node in enumerate(model.nodes):
        where = f"node {i} ({node.op})"
        lo, hi = ranges[node.inputs[0]]
        a, t = node.attrs, node.tensors
        if node.op == "s16_relu":
            ranges[i + 1] = (max(lo, 0), max(hi, 0))
        elif node.op in ("s16_conv2d", "s16_conv_transpose2d"):
            sx = shifts[node.inputs[0]]
            assert sx is not None
            n = sx + int(a["weight_shift"]) - int(a["out_shift"])
            b = np.asarray(t["bias"], np.int64) + rounding_constant(n)
            bounds = conv_worst_case(t["weight"], b, lo, hi,
                                     node.op == "s16_conv_transpose2d",
                                     (int(a["stride_h"]), int(a["stride_w"])))
            _need(fits_int32(bounds), where,
                  f"worst-case sum {bounds} does not fit int32 (docs/int16.md)")
        elif node.op == "s16_gdn":
            norm_max = gdn_norm_max(t["gamma"], t["beta"])
            _need(norm_max <= INT32_MAX, where, f"worst-case norm {norm_max} does not fit int32")
            _need(norm_max * 2 ** int(a["root_shift"]) < ROOT_LIMIT, where,
                  "norm · 2^root_shift can reach 2^62")


# ---------------------------------------------------------------------------- reference

def _matmul(a: np.ndarray, b: np.ndarray, exact: str) -> np.ndarray:
    """Integer matrix product: float64 BLAS (exact here, see the module doc) or int64."""
    if exact == "int64":
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(np.float64) @ b.astype(np.float64)


def conv_sums(x: np.ndarray, w: np.ndarray, a: dict[str, Any], transpose: bool,
              exact: str = "f64") -> np.ndarray:
    """``Σ W · x`` of a (transposed) convolution, int64 ``(H_out, W_out, cout)``.

    ``x`` is an int HWC tensor, ``w`` int weights in PyTorch layout, ``a`` the node's
    attributes (docs/model-format.md)."""
    h, wd, cin = x.shape
    sh, sw = int(a["stride_h"]), int(a["stride_w"])
    pt, pl, pb, pr = (int(a[k]) for k in ("pad_top", "pad_left", "pad_bottom", "pad_right"))
    kh, kw = int(a["kh"]), int(a["kw"])
    dtype = np.int64 if exact == "int64" else np.float64
    if not transpose:
        xp = np.zeros((h + pt + pb, wd + pl + pr, cin), dtype)
        xp[pt:pt + h, pl:pl + wd] = x
        ho, wo = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
        out: np.ndarray = np.zeros((ho * wo, w.shape[0]), dtype)
        for ky in range(kh):
            for kx in range(kw):
                win = xp[ky:ky + sh * (ho - 1) + 1:sh, kx:kx + sw * (wo - 1) + 1:sw]
                out += _matmul(win.reshape(ho * wo, cin), w[:, :, ky, kx].T, exact)
        return out.reshape(ho, wo, -1).astype(np.int64)
    cout = w.shape[1]
    oph, opw = int(a["out_pad_h"]), int(a["out_pad_w"])
    ho, wo = (h - 1) * sh - pt - pb + kh + oph, (wd - 1) * sw - pl - pr + kw + opw
    full: np.ndarray = np.zeros(((h - 1) * sh + kh + oph, (wd - 1) * sw + kw + opw, cout),
                                dtype)
    flat = x.reshape(h * wd, cin)
    for ky in range(kh):
        for kx in range(kw):
            part = _matmul(flat, w[:, :, ky, kx], exact).reshape(h, wd, cout)
            full[ky:ky + sh * (h - 1) + 1:sh, kx:kx + sw * (wd - 1) + 1:sw] += part
    return full[pt:pt + ho, pl:pl + wo].astype(np.int64)


def s16_conv(x: np.ndarray, sx: int, node: Node, exact: str = "f64") -> np.ndarray:
    a, t = node.attrs, node.tensors
    n = sx + int(a["weight_shift"]) - int(a["out_shift"])
    acc = conv_sums(x, np.asarray(t["weight"], np.int64), a,
                    node.op == "s16_conv_transpose2d", exact)
    acc = acc + np.asarray(t["bias"], np.int64)
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise LicError("int32 accumulator overflow: the worst-case check was bypassed")
    return sat16(rs(acc, n))


def s16_leaky_relu(x: np.ndarray, alpha_q: int, alpha_shift: int) -> np.ndarray:
    return np.where(x >= 0, x, sat16(rs(x * np.int64(alpha_q), alpha_shift)))


def s16_add(a: np.ndarray, sa: int, b: np.ndarray, sb: int, sy: int) -> np.ndarray:
    s = max(sa, sb)
    acc = (a << np.int64(s - sa)) + (b << np.int64(s - sb))
    return sat16(rs(acc, s - sy))


def s16_gdn(x: np.ndarray, sx: int, node: Node, exact: str = "f64") -> np.ndarray:
    a, t = node.attrs, node.tensors
    sy = int(a["out_shift"])
    n2, sr, m_or_e = _gdn_shifts(a, sx, sy, "gdn")
    x2 = np.minimum(rs(x * x, n2), INT16_MAX)
    c = x.shape[-1]
    g = np.asarray(t["gamma"], np.int64)
    norm = _matmul(x2.reshape(-1, c), g.T, exact).astype(np.int64).reshape(x.shape)
    norm = norm + np.asarray(t["beta"], np.int64)
    r = isqrt(norm << np.int64(int(a["root_shift"])))
    if int(a["inverse"]):
        return sat16(rs(x * r, m_or_e))
    return sat16(div_round_half_up(x << np.int64(m_or_e), r))


def run_values(model: ModelFile, x: np.ndarray, exact: str = "f64") -> list[np.ndarray]:
    """Every value of an int16 graph on the float HWC input ``x``: float32 arrays for
    float values, int64 arrays (int16 range) for int16 ones."""
    shifts = value_shifts(model)
    values: list[np.ndarray] = [np.asarray(x, dtype=np.float32)]
    for i, node in enumerate(model.nodes):
        v = values[node.inputs[0]]
        sx = shifts[node.inputs[0]]
        a = node.attrs
        if node.op == "quantize":
            out = quantize_float(v, int(a["shift"]))
        elif node.op == "dequantize":
            assert sx is not None
            out = dequantize(v, sx)
        elif node.op in ("s16_conv2d", "s16_conv_transpose2d"):
            assert sx is not None
            out = s16_conv(v, sx, node, exact)
        elif node.op == "s16_relu":
            out = np.maximum(v, 0)
        elif node.op == "s16_leaky_relu":
            out = s16_leaky_relu(v, int(a["alpha_q"]), int(a["alpha_shift"]))
        elif node.op == "s16_add":
            sb = shifts[node.inputs[1]]
            assert sx is not None and sb is not None
            out = s16_add(v, sx, values[node.inputs[1]], sb, int(a["out_shift"]))
        elif node.op == "s16_gdn":
            assert sx is not None
            out = s16_gdn(v, sx, node, exact)
        else:
            raise LicError(f"node {i}: the int16 reference does not run float op {node.op}")
        values.append(out)
    return values


def run_reference(model: ModelFile, x: np.ndarray, exact: str = "f64") -> np.ndarray:
    """The float32 HWC output of an int16 `.licm` graph, as docs/int16.md defines it."""
    return run_values(model, x, exact)[-1]
