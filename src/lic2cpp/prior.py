"""The model's own prior: CompressAI's quantised CDFs as lic2cpp tables (no training set).

CompressAI's ``update()`` turns each learned density into a 16-bit quantised CDF with one
overflow (escape) symbol at the end: ``_quantized_cdf[i, :_cdf_length[i]]``, in-range
symbols ``_offset[i] .. _offset[i] + _cdf_length[i] - 3``. This module reads those tables
as they are (the same integers CompressAI's own range coder uses), so lic2cpp codes a
latent with exactly the model's probabilities:

- :func:`bottleneck_tables` — one table per channel of an ``EntropyBottleneck`` (the
  latent of a factorized-prior model, the ``z`` of a hyperprior model), with the channel's
  median, around which CompressAI quantises;
- :func:`gaussian_tables` — one table per scale of a ``GaussianConditional``;
- :func:`model_prior` — a factorized-prior model's bottleneck as an
  :class:`~lic2cpp.entropy.EntropyModel` (``.lice``): every context uses the channel's
  one table and no channel has an activation flag (``.lice`` 1.1), so the code length is
  CompressAI's, value for value (``lic2cpp build --prior model``, docs/entropy-model.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lic2cpp.entropy import (
    MAX_ABS_SYMBOL,
    MAX_HALF_ALPHABET,
    N_CONTEXTS,
    PROB_ONE,
    ChannelModel,
    EntropyModel,
)
from lic2cpp.errors import LicError

MAX_ALPHABET = 2 * MAX_HALF_ALPHABET + 1  # in-range symbols of a .lice channel


@dataclass
class SymbolTable:
    """One quantised CDF: in-range symbols ``lo .. lo + nsym - 1``, then the escape."""

    lo: int
    freqs: np.ndarray  # uint32 [nsym + 1], every entry >= 1, sum PROB_ONE; last = escape

    @property
    def nsym(self) -> int:
        return int(self.freqs.shape[0]) - 1


def _no_zero_frequencies(freqs: np.ndarray) -> np.ndarray:
    """``freqs`` with every zero raised to 1, the units taken from the largest entries.

    CompressAI's quantisation gives every symbol of non-zero probability at least 1, but a
    probability that underflowed to zero in float32 gives 0; lic2cpp's coder needs >= 1.
    """
    f = freqs.astype(np.int64).copy()
    zeros = np.flatnonzero(f == 0)
    for i in zeros:
        j = int(np.argmax(f))
        if f[j] <= 1:
            raise LicError("a CDF table has more symbols than 16-bit frequencies")
        f[j] -= 1
        f[i] = 1
    return f.astype(np.uint32)


def table_from_cdf(cdf: np.ndarray, length: int, offset: int) -> SymbolTable:
    """A CompressAI CDF row (``length`` entries, 0 .. 2^16) as a SymbolTable."""
    row = np.asarray(cdf[:length], dtype=np.int64)
    if length < 3 or row[0] != 0 or row[-1] != PROB_ONE or (np.diff(row) < 0).any():
        raise LicError("the model's quantised CDF is not a 16-bit CDF (run update()?)")
    if abs(int(offset)) >= MAX_ABS_SYMBOL:
        raise LicError("the model's CDF offset is out of range")
    return SymbolTable(lo=int(offset), freqs=_no_zero_frequencies(np.diff(row)))


def narrowed(table: SymbolTable, center: int, max_symbols: int) -> SymbolTable:
    """At most ``max_symbols`` in-range symbols around ``center`` (a symbol index); the
    mass of the symbols cut off moves to the escape (exact: the sum stays 2^16)."""
    if table.nsym <= max_symbols:
        return table
    half = max_symbols // 2
    start = min(max(center - half, 0), table.nsym - max_symbols)
    keep = table.freqs[start:start + max_symbols]
    escape = int(table.freqs.sum()) - int(keep.sum())
    return SymbolTable(lo=table.lo + start,
                       freqs=np.concatenate([keep, [escape]]).astype(np.uint32))


def _cdf_buffers(module: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cdf = module._quantized_cdf.detach().cpu().numpy()
    lengths = module._cdf_length.detach().cpu().numpy().reshape(-1)
    offsets = module._offset.detach().cpu().numpy().reshape(-1)
    if cdf.ndim != 2 or cdf.shape[0] == 0 or len(lengths) != cdf.shape[0] \
            or len(offsets) != cdf.shape[0]:
        raise LicError(f"the model's {what} has no quantised CDFs (run update())")
    if int(getattr(module, "entropy_coder_precision", 16)) != 16:
        raise LicError(f"the model's {what} uses {module.entropy_coder_precision}-bit CDFs; "
                       "lic2cpp codes with 16-bit ones")
    return cdf, lengths, offsets


def bottleneck_medians(eb: Any) -> np.ndarray:
    """The float32 median of each channel, around which CompressAI quantises."""
    return eb.quantiles[:, 0, 1].detach().cpu().numpy().astype(np.float32)


def bottleneck_tables(eb: Any) -> list[SymbolTable]:
    """One table per channel of a CompressAI ``EntropyBottleneck``."""
    cdf, lengths, offsets = _cdf_buffers(eb, "entropy bottleneck")
    return [table_from_cdf(cdf[c], int(lengths[c]), int(offsets[c]))
            for c in range(cdf.shape[0])]


def gaussian_tables(gc: Any) -> list[SymbolTable]:
    """One table per scale of a CompressAI ``GaussianConditional`` (index = scale index)."""
    cdf, lengths, offsets = _cdf_buffers(gc, "Gaussian conditional")
    return [table_from_cdf(cdf[i], int(lengths[i]), int(offsets[i]))
            for i in range(cdf.shape[0])]


def model_prior(net: Any) -> EntropyModel:
    """The ``.lice`` tables of a factorized-prior model's own entropy bottleneck.

    Each channel: ``mean`` = the bottleneck's median, the model's table in every context
    and as the plain table, no activation flag, the natural channel order. A table longer
    than the ``.lice`` alphabet (255 symbols) keeps the 255 around its most probable
    symbol; the rest goes to the escape.
    """
    eb = getattr(net, "entropy_bottleneck", None)
    if eb is None:
        raise LicError(f"{type(net).__name__} has no entropy bottleneck: --prior model "
                       "needs a factorized-prior model")
    if hasattr(net, "gaussian_conditional"):
        raise LicError(f"{type(net).__name__} is a hyperprior model: its latent is coded "
                       "with --prior hyper, not the bottleneck alone")
    medians = bottleneck_medians(eb)
    channels = []
    for median, table in zip(medians, bottleneck_tables(eb), strict=True):
        mode = int(np.argmax(table.freqs[:-1]))
        table = narrowed(table, mode, MAX_ALPHABET)
        mpv_index = int(np.argmax(table.freqs[:-1]))
        channels.append(ChannelModel(
            offset=float(median), mpv=table.lo + mpv_index, lo=table.lo, t_nbr=0, t_prev=0,
            flag_freq=0, freqs=np.tile(table.freqs, (N_CONTEXTS, 1)),
            plain=table.freqs.copy()))
    order = np.arange(len(channels), dtype=np.int64)
    return EntropyModel(channels=channels, order=order, info={"prior": "model"})
