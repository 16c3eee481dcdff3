"""The entropy model: integer probability tables fitted on training latents (numpy only).

The latent ``y`` (channels ``C``, ``h`` x ``w``) is coded as integer symbols
``q = round(y - offset[c])`` (round half to even, float32 arithmetic, as the C++ encoder does)
and decoded as ``q + offset[c]``. The offsets are chosen by the caller (``lic2cpp.fit``: the
model's medians by default); without them the fit uses the per-channel training means.
Each channel has:

- a most probable value ``mpv`` and an in-range alphabet ``lo .. lo + nsym - 1`` plus one
  escape symbol for values outside it (escaped values are coded losslessly in bypass bits);
- 8 context tables: the context of a value is 3 bits, whether the left neighbour, the upper
  neighbour and the co-located value of the previously coded channel differ from their
  channel's ``mpv`` by more than a threshold (``t_nbr`` for the neighbours, ``t_prev`` for
  the previous channel; both chosen to minimise the training entropy);
- a plain table (no context), kept for the comparison "contexts vs plain CDFs";
- the probability of the channel being entirely ``mpv`` (the activation flag).

Channels are coded in a greedy order in which each channel follows one that predicts it.
All probabilities are quantised here, once, to 16-bit frequencies (every symbol >= 1,
sum exactly 65536); the C++ coder uses these integers as they are. docs/entropy-model.md
describes the algorithm, docs/entropy-model.md#file-format the ``.lice`` file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lic2cpp.errors import LicError
from lic2cpp.files import write_bytes_atomic
from lic2cpp.modelformat import fingerprint

PRECISION_BITS = 16
PROB_ONE = 1 << PRECISION_BITS  # frequencies of one table sum to this
MAX_THRESHOLD = 15  # thresholds are searched in 0..MAX_THRESHOLD
MAX_HALF_ALPHABET = 127  # in-range symbols are within mpv +- this; the rest is escaped
N_CONTEXTS = 8
SMOOTHING = 2  # pseudo-counts, spread like the channel's plain distribution, per context
ESCAPE_LENGTH_BITS = 5  # bit length of (distance + 1) - 1, in bypass bits
MAX_ABS_SYMBOL = 1 << 30  # symbols beyond this are refused by the coder (not clipped)
MAX_CHANNELS = 4096

MAGIC = b"LICE"
VERSION_MAJOR = 1
# 1.1 added flag_freq = 0 ("no activation flag"); a file without such a channel is still
# written as 1.0, byte for byte what 1.0 writers wrote.
VERSION_MINOR = 1
HEADER = struct.Struct("<4sHHQQ")  # magic, major, minor, body_size, fingerprint
CHANNEL_HEAD = struct.Struct("<fiiIIII")  # offset, mpv, lo, nsym, t_nbr, t_prev, flag_freq



def header_fingerprint(data: bytes) -> int:
    """The fingerprint recorded in the header of ``.lice`` file bytes ``data`` (the
    FNV-1a 64 of the body: the value the codec's bitstream header carries)."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise LicError("not a lic2cpp entropy model file (bad magic or too short)")
    return int(HEADER.unpack_from(data)[4])


@dataclass
class ChannelModel:
    """Everything the coder needs for one latent channel (see the module docstring)."""

    offset: float  # q = round(y - offset), y_hat = q + offset (float32)
    mpv: int
    lo: int
    t_nbr: int
    t_prev: int
    # probability (of PROB_ONE) that every value of the channel is mpv; 0: the channel has
    # no activation flag, every value is coded (version 1.1)
    flag_freq: int
    freqs: np.ndarray  # uint32 [N_CONTEXTS, nsym + 1], last column = escape
    plain: np.ndarray  # uint32 [nsym + 1]

    @property
    def nsym(self) -> int:
        return int(self.plain.shape[0]) - 1


@dataclass
class EntropyModel:
    channels: list[ChannelModel]
    order: np.ndarray  # int64 [C], coding order (a permutation of the channel indices)
    info: dict[str, Any] = field(default_factory=dict)  # fit diagnostics, not saved

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def offsets(self) -> np.ndarray:
        return np.array([ch.offset for ch in self.channels], dtype=np.float32)

    def predecessors(self) -> np.ndarray:
        """pred[c] = channel coded just before c, or -1 for the first one."""
        pred = np.full(self.num_channels, -1, dtype=np.int64)
        pred[self.order[1:]] = self.order[:-1]
        return pred

    # ---- file format -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        body = bytearray()
        body += struct.pack("<III", len(self.channels), PRECISION_BITS, N_CONTEXTS)
        body += np.asarray(self.order, dtype="<u4").tobytes()
        for ch in self.channels:
            body += CHANNEL_HEAD.pack(ch.offset, ch.mpv, ch.lo, ch.nsym, ch.t_nbr, ch.t_prev,
                                      ch.flag_freq)
            tables = np.concatenate([ch.freqs.reshape(-1), ch.plain]).astype("<u2")
            raw = tables.tobytes()
            body += raw + b"\0" * (-len(raw) % 4)
        minor = VERSION_MINOR if any(ch.flag_freq == 0 for ch in self.channels) else 0
        head = HEADER.pack(MAGIC, VERSION_MAJOR, minor, len(body), fingerprint(bytes(body)))
        return head + bytes(body)

    def fingerprint(self) -> int:
        return HEADER.unpack_from(self.to_bytes())[4]

    def save(self, path: str | Path) -> None:
        write_bytes_atomic(path, self.to_bytes())

    @staticmethod
    def from_bytes(data: bytes) -> EntropyModel:
        return _parse(data)

    @staticmethod
    def load(path: str | Path) -> EntropyModel:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise LicError(f"cannot read entropy model {path}: {exc.strerror}") from exc
        try:
            return _parse(data)
        except LicError as exc:
            raise LicError(f"{path}: {exc}") from exc

    # ---- code lengths ------------------------------------------------------------------
    def symbols(self, latents: np.ndarray) -> np.ndarray:
        """q = round(y - offset), int64 [N, C, h, w]; refuses non-finite or huge values."""
        y = _check_latents(latents, self.num_channels)
        d = y - self.offsets[None, :, None, None]  # float32, as in C++
        if not np.isfinite(d).all() or np.abs(d).max(initial=0) >= MAX_ABS_SYMBOL:
            raise LicError("latent has non-finite or out-of-range values")
        return np.rint(d).astype(np.int64)

    def estimate_bits(self, latents: np.ndarray, band_rows: int | None = None
                      ) -> dict[str, Any]:
        """Ideal code length (bits) of each latent in ``latents`` under the quantised tables.

        Each item of the batch is one image. ``bits_ctx`` follows the real coder (flags,
        contexts, escapes); ``bits_plain`` codes every value with the channel's plain table
        (no flag, no context) -- upstream's approach, for comparison. Per-channel figures are
        sums over the batch. ``band_rows``: the coder codes bands of that many latent rows
        independently (bitstream 2.0, docs/bitstream.md#payload): each band has its own
        activation flags and its first row has no upper neighbour. None: one band of every
        row (bitstream 1.0).
        """
        if band_rows is not None and band_rows < 1:
            raise LicError(f"band_rows must be at least 1, got {band_rows}")
        y = np.asarray(latents)
        height = y.shape[2] if y.ndim == 4 else 0
        if band_rows is None or band_rows >= height:
            return self._estimate_band(y)
        parts = [self._estimate_band(y[:, :, r:r + band_rows])
                 for r in range(0, height, band_rows)]
        return {
            "bits_ctx": float(sum(p["bits_ctx"] for p in parts)),
            "bits_plain": float(sum(p["bits_plain"] for p in parts)),
            "per_channel_ctx": np.sum([p["per_channel_ctx"] for p in parts], axis=0),
            "per_channel_plain": np.sum([p["per_channel_plain"] for p in parts], axis=0),
            "num_latents": parts[0]["num_latents"],
            "num_symbols": int(sum(p["num_symbols"] for p in parts)),
        }

    def _estimate_band(self, latents: np.ndarray) -> dict[str, Any]:
        q = self.symbols(latents)
        n = q.shape[0]
        pred = self.predecessors()
        per_ctx = np.zeros(self.num_channels)
        per_plain = np.zeros(self.num_channels)
        for c, ch in enumerate(self.channels):
            qc = q[:, c]
            prev = q[:, pred[c]] if pred[c] >= 0 else None
            prev_ch = self.channels[pred[c]] if pred[c] >= 0 else None
            ctx = _contexts(qc, ch, prev, prev_ch)
            idx, esc_bits = _symbol_index(qc, ch)
            cost = -np.log2(ch.freqs[ctx, idx] / PROB_ONE) + esc_bits
            if ch.flag_freq == 0:  # no flag: every value is coded
                all_mpv = np.zeros(n, dtype=bool)
                flag_cost = np.zeros(n)
            else:
                all_mpv = (qc == ch.mpv).reshape(n, -1).all(axis=1)
                flag_cost = np.where(all_mpv, -np.log2(ch.flag_freq / PROB_ONE),
                                     -np.log2(1 - ch.flag_freq / PROB_ONE))
            per_item = cost.reshape(n, -1).sum(axis=1)
            per_ctx[c] = float(np.sum(flag_cost + np.where(all_mpv, 0.0, per_item)))
            plain_cost = -np.log2(ch.plain[idx] / PROB_ONE) + esc_bits
            per_plain[c] = float(plain_cost.sum())
        return {
            "bits_ctx": float(per_ctx.sum()),
            "bits_plain": float(per_plain.sum()),
            "per_channel_ctx": per_ctx,
            "per_channel_plain": per_plain,
            "num_latents": n,
            "num_symbols": int(q.size),
        }


# ---- helpers shared by fitting and estimation ----------------------------------------------
def _check_latents(latents: np.ndarray, channels: int | None = None) -> np.ndarray:
    y = np.asarray(latents)
    if y.ndim != 4 or 0 in y.shape:
        raise LicError(f"latents must be a non-empty [N, C, h, w] array, got shape {y.shape}")
    if channels is not None and y.shape[1] != channels:
        raise LicError(f"latents have {y.shape[1]} channels, the entropy model {channels}")
    if y.shape[1] > MAX_CHANNELS:
        raise LicError(f"too many latent channels ({y.shape[1]} > {MAX_CHANNELS})")
    return y.astype(np.float32, copy=False)


def _active(q: np.ndarray, mpv: int, t: int) -> np.ndarray:
    return np.abs(q - mpv) > t


def _contexts(qc: np.ndarray, ch: ChannelModel, prev: np.ndarray | None,
              prev_ch: ChannelModel | None) -> np.ndarray:
    """Context (0..7) of every value of one channel, qc int64 [N, h, w]."""
    act = _active(qc, ch.mpv, ch.t_nbr)
    ctx = np.zeros(qc.shape, dtype=np.int64)
    ctx[:, :, 1:] |= act[:, :, :-1]  # left
    ctx[:, 1:, :] |= act[:, :-1, :].astype(np.int64) << 1  # up
    if prev is not None and prev_ch is not None:
        ctx |= _active(prev, prev_ch.mpv, ch.t_prev).astype(np.int64) << 2
    return ctx


def _symbol_index(qc: np.ndarray, ch: ChannelModel) -> tuple[np.ndarray, np.ndarray]:
    """Table index of every value (escape = nsym) and the bypass bits each escape costs."""
    rel = qc - ch.lo
    inside = (rel >= 0) & (rel < ch.nsym)
    idx = np.where(inside, rel, ch.nsym)
    dist = np.where(rel < 0, -rel - 1, rel - ch.nsym)  # >= 0 outside the range
    extra = np.where(inside, 0, 1 + ESCAPE_LENGTH_BITS + _bit_length(dist + 1) - 1)
    return idx, extra.astype(np.float64)


def _bit_length(v: np.ndarray) -> np.ndarray:
    v = np.maximum(v, 1).astype(np.uint64)
    n = np.zeros(v.shape, dtype=np.int64)
    while True:
        nz = v > 0
        if not nz.any():
            return n
        n += nz
        v = v >> np.uint64(1)


def quantize_frequencies(counts: np.ndarray) -> np.ndarray:
    """Integer counts -> frequencies >= 1 summing to PROB_ONE (largest-remainder rounding).

    f_i = 1 + floor(n_i * (PROB_ONE - S) / total); the few units left go to the symbols with
    the largest remainders (ties: lower index). Exact integer arithmetic, so reproducible.
    """
    n = [int(v) for v in np.asarray(counts).reshape(-1)]
    s = len(n)
    if s < 1 or s > PROB_ONE // 2:
        raise LicError(f"cannot quantise a table of {s} symbols")
    total = sum(n)
    if total <= 0:
        n, total = [1] * s, s
    spare = PROB_ONE - s
    freqs = [1 + (v * spare) // total for v in n]
    rems = [(v * spare) % total for v in n]
    left = PROB_ONE - sum(freqs)
    for i in sorted(range(s), key=lambda i: (-rems[i], i))[:left]:
        freqs[i] += 1
    return np.array(freqs, dtype=np.uint32)


def _entropy_bits(counts: np.ndarray) -> float:
    """Empirical code length (bits) of the samples counted in ``counts`` (last axis = symbols)."""
    c = counts.astype(np.float64)
    tot = c.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(c > 0, c / np.where(tot > 0, tot, 1), 1.0)
    return float(-(c * np.log2(p)).sum())


# ---- fitting -------------------------------------------------------------------------------
def channel_means(latents: np.ndarray) -> np.ndarray:
    """Per-channel means of latents [N, C, h, w] (float64 sums), as float32 offsets."""
    y = _check_latents(latents)
    return y.astype(np.float64).mean(axis=(0, 2, 3)).astype(np.float32)


def fit_entropy_model(latents: np.ndarray, offsets: np.ndarray | None = None, *,
                      progress: bool = False) -> EntropyModel:
    """Fit the entropy model on training latents float32 [N, C, h, w] (see module docstring).

    ``offsets`` (float32 [C]) are the quantisation offsets; None: the channel means.
    """
    y = _check_latents(latents)
    n, c_count = y.shape[:2]
    if offsets is None:
        offsets = channel_means(y)
    offsets = np.asarray(offsets, dtype=np.float32)
    if offsets.shape != (c_count,) or not np.isfinite(offsets).all():
        raise LicError(f"need {c_count} finite quantisation offsets, got shape {offsets.shape}")
    d = y - offsets[None, :, None, None]
    if not np.isfinite(d).all() or np.abs(d).max() >= MAX_ABS_SYMBOL:
        raise LicError("training latents have non-finite or out-of-range values")
    q = np.rint(d).astype(np.int64)

    mpv = np.zeros(c_count, dtype=np.int64)
    lo = np.zeros(c_count, dtype=np.int64)
    hi = np.zeros(c_count, dtype=np.int64)
    for c in range(c_count):
        vals, cnt = np.unique(q[:, c], return_counts=True)
        mpv[c] = vals[np.argmax(cnt)]  # ties: the smaller value (np.unique sorts)
        lo[c] = max(int(vals[0]), int(mpv[c]) - MAX_HALF_ALPHABET)
        hi[c] = min(int(vals[-1]), int(mpv[c]) + MAX_HALF_ALPHABET)

    # 1. neighbour thresholds alone (no predecessor yet), then the greedy order.
    t_nbr = np.zeros(c_count, dtype=np.int64)
    for c in _progress(range(c_count), progress, "thresholds"):
        hist = _joint_histogram(q[:, c], mpv[c], lo[c], hi[c], None, 0)
        t_nbr[c], _, _ = _best_thresholds(hist, with_prev=False)
    order, scores = _greedy_order(q, mpv, t_nbr)

    # 2. final thresholds with the chosen predecessor, then the tables.
    pred = np.full(c_count, -1, dtype=np.int64)
    pred[order[1:]] = order[:-1]
    channels: list[ChannelModel] = []
    ent_ctx = ent_plain = 0.0
    for c in _progress(range(c_count), progress, "tables"):
        p = int(pred[c])
        prev = q[:, p] if p >= 0 else None
        hist = _joint_histogram(q[:, c], mpv[c], lo[c], hi[c], prev, mpv[p] if p >= 0 else 0)
        t_n, t_p, counts8 = _best_thresholds(hist, with_prev=p >= 0)
        plain = counts8.sum(axis=0)
        ent_ctx += _entropy_bits(counts8)
        ent_plain += _entropy_bits(plain)
        tot = int(plain.sum())
        smoothed = counts8 * tot + SMOOTHING * plain[None, :]
        freqs = np.stack([quantize_frequencies(row) for row in smoothed])
        all_mpv = (q[:, c] == mpv[c]).reshape(n, -1).all(axis=1).sum()
        flag_freq = int(np.clip(round(all_mpv * PROB_ONE / n), 1, PROB_ONE - 1))
        channels.append(ChannelModel(
            offset=float(offsets[c]), mpv=int(mpv[c]), lo=int(lo[c]), t_nbr=int(t_n),
            t_prev=int(t_p), flag_freq=flag_freq, freqs=freqs,
            plain=quantize_frequencies(plain)))
    info = {"entropy_ctx_bits": ent_ctx, "entropy_plain_bits": ent_plain,
            "order_scores": scores, "num_latents": n}
    return EntropyModel(channels=channels, order=order, info=info)


def _progress(it: Any, enabled: bool, desc: str) -> Any:
    if not enabled:
        return it
    return tqdm(it, desc=desc, unit="ch", leave=False)


def _joint_histogram(qc: np.ndarray, mpv: int, lo: int, hi: int, prev: np.ndarray | None,
                     prev_mpv: int) -> np.ndarray:
    """Counts over (|left-mpv|, |up-mpv|, |prev-prev_mpv|, symbol index).

    Distances are capped at MAX_THRESHOLD + 1 ("more than any threshold"); a missing
    neighbour counts as distance 0 (never active), as in the coder.
    """
    cap = MAX_THRESHOLD + 1
    nd = cap + 1
    nsym = int(hi - lo + 1)
    dist = np.minimum(np.abs(qc - mpv), cap)
    d_left = np.zeros_like(dist)
    d_left[:, :, 1:] = dist[:, :, :-1]
    d_up = np.zeros_like(dist)
    d_up[:, 1:, :] = dist[:, :-1, :]
    d_prev = np.minimum(np.abs(prev - prev_mpv), cap) if prev is not None else np.zeros_like(dist)
    rel = qc - lo
    sym = np.where((rel >= 0) & (rel < nsym), rel, nsym)
    flat = ((d_left * nd + d_up) * nd + d_prev) * (nsym + 1) + sym
    hist = np.bincount(flat.reshape(-1), minlength=nd ** 3 * (nsym + 1))
    return hist.reshape(nd, nd, nd, nsym + 1)


def _best_thresholds(hist: np.ndarray, *, with_prev: bool) -> tuple[int, int, np.ndarray]:
    """Thresholds minimising the conditional entropy; returns (t_nbr, t_prev, counts[8, S]).

    With 3-D prefix sums over the distance axes every (t_nbr, t_prev) split is a few
    lookups (inclusion-exclusion), so all 16 x 16 pairs are tried exactly.
    """
    cum = hist.cumsum(axis=0).cumsum(axis=1).cumsum(axis=2)  # counts with distances <= index
    best: tuple[float, int, int, np.ndarray] | None = None
    for t in range(MAX_THRESHOLD + 1):
        lu = np.empty((2, 2) + cum.shape[2:], dtype=cum.dtype)  # [up, left, d_prev, S]
        lu[0, 0] = cum[t, t]
        lu[0, 1] = cum[-1, t] - cum[t, t]  # left active, up inactive
        lu[1, 0] = cum[t, -1] - cum[t, t]
        lu[1, 1] = cum[-1, -1] - cum[t, -1] - cum[-1, t] + cum[t, t]
        for tp in range(MAX_THRESHOLD + 1) if with_prev else [-1]:
            inactive = lu[:, :, tp]
            active = lu[:, :, -1] - inactive
            counts8 = np.stack([inactive, active]).reshape(N_CONTEXTS, -1)  # ctx = p*4+up*2+left
            bits = _entropy_bits(counts8)
            if best is None or bits < best[0] - 1e-9:
                best = (bits, t, max(tp, 0), counts8)
    assert best is not None
    return best[1], best[2], best[3]


def _greedy_order(q: np.ndarray, mpv: np.ndarray, t_nbr: np.ndarray,
                  max_samples: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Chain order: each next channel is the unused one that the last one predicts best.

    Predictive power of p for c = mutual information (bits, times samples) between the
    activity maps |q_p - mpv_p| > t_p and |q_c - mpv_c| > t_c at the same positions; the
    chain starts with the channel of highest activity entropy.
    """
    n, c_count = q.shape[:2]
    act = np.abs(q - mpv[None, :, None, None]) > t_nbr[None, :, None, None]
    a = act.transpose(1, 0, 2, 3).reshape(c_count, -1)
    if a.shape[1] > max_samples:  # deterministic subsample keeps the matmul small
        a = a[:, np.linspace(0, a.shape[1] - 1, max_samples).astype(np.int64)]
    m = a.shape[1]
    af = a.astype(np.float32)
    n11 = (af @ af.T).astype(np.float64)
    p1 = af.sum(axis=1).astype(np.float64)
    n10 = p1[:, None] - n11
    n01 = p1[None, :] - n11
    n00 = m - n11 - n10 - n01
    mi = np.zeros((c_count, c_count))
    for nab, na, nb in ((n11, p1[:, None], p1[None, :]), (n10, p1[:, None], m - p1[None, :]),
                        (n01, m - p1[:, None], p1[None, :]),
                        (n00, m - p1[:, None], m - p1[None, :])):
        with np.errstate(divide="ignore", invalid="ignore"):
            term = nab * np.log2(nab * m / (na * nb))
        mi += np.where(nab > 0, term, 0.0)
    np.fill_diagonal(mi, -1.0)
    pa = p1 / m
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(pa > 0, pa * np.log2(pa), 0) + np.where(pa < 1, (1 - pa) *
                                                               np.log2(1 - pa), 0))
    order = [int(np.argmax(h))]
    used = np.zeros(c_count, dtype=bool)
    used[order[0]] = True
    scores = [0.0]
    for _ in range(c_count - 1):
        row = np.where(used, -np.inf, mi[order[-1]])
        nxt = int(np.argmax(row))
        order.append(nxt)
        scores.append(float(row[nxt]))
        used[nxt] = True
    return np.array(order, dtype=np.int64), np.array(scores)


# ---- parsing -------------------------------------------------------------------------------
def _parse(data: bytes) -> EntropyModel:
    if len(data) < HEADER.size:
        raise LicError("not an entropy model file (too short)")
    magic, major, _minor, body_size, fp = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise LicError("not an entropy model file (bad magic)")
    if major != VERSION_MAJOR:
        raise LicError(f"unsupported entropy model version {major}")
    body = data[HEADER.size:]
    if body_size != len(body):
        raise LicError("entropy model file has the wrong size (truncated?)")
    if fingerprint(body) != fp:
        raise LicError("entropy model fingerprint mismatch (corrupt file)")
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(body):
            raise LicError("entropy model file is truncated")
        out = body[pos:pos + n]
        pos += n
        return out

    c_count, prec, nctx = struct.unpack("<III", take(12))
    if not 1 <= c_count <= MAX_CHANNELS or prec != PRECISION_BITS or nctx != N_CONTEXTS:
        raise LicError("entropy model has an unsupported layout")
    order = np.frombuffer(take(4 * c_count), dtype="<u4").astype(np.int64)
    if sorted(order.tolist()) != list(range(c_count)):
        raise LicError("entropy model channel order is not a permutation")
    channels = []
    for _ in range(c_count):
        offset, mpv, lo, nsym, t_n, t_p, flag = CHANNEL_HEAD.unpack(take(CHANNEL_HEAD.size))
        if not (np.isfinite(offset) and 1 <= nsym <= 2 * MAX_HALF_ALPHABET + 1
                and lo <= mpv < lo + nsym and t_n <= MAX_THRESHOLD and t_p <= MAX_THRESHOLD
                and 0 <= flag < PROB_ONE and abs(lo) < MAX_ABS_SYMBOL):
            raise LicError("entropy model has an invalid channel record")
        count = (N_CONTEXTS + 1) * (nsym + 1)
        raw = take(2 * count + (-2 * count) % 4)
        tables = np.frombuffer(raw[:2 * count], dtype="<u2").astype(np.uint32)
        tables = tables.reshape(N_CONTEXTS + 1, nsym + 1)
        if (tables == 0).any() or (tables.sum(axis=1) != PROB_ONE).any():
            raise LicError("entropy model has an invalid probability table")
        channels.append(ChannelModel(offset=offset, mpv=mpv, lo=lo, t_nbr=t_n, t_prev=t_p,
                                     flag_freq=flag, freqs=tables[:N_CONTEXTS].copy(),
                                     plain=tables[N_CONTEXTS].copy()))
    if pos != len(body):
        raise LicError("entropy model file has trailing bytes")
    return EntropyModel(channels=channels, order=order)
