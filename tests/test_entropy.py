"""Entropy model fitting (src/lic2cpp/entropy.py) on synthetic latents with known structure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lic2cpp.entropy import (
    MAX_ABS_SYMBOL,
    PROB_ONE,
    EntropyModel,
    fit_entropy_model,
    header_fingerprint,
    quantize_frequencies,
)
from lic2cpp.errors import LicError
from lic2cpp.modelformat import fingerprint


def region_latents(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One channel: random rectangles of large values (|v| in 3..8) over small noise (|v| <= 2).

    A neighbour with |v - 0| > 2 tells exactly whether a value lies in a rectangle, so the
    entropy-minimising neighbour threshold is 2.
    """
    out = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n):
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(3):
            y, x = rng.integers(0, size - 6, 2)
            h, w = rng.integers(4, 9, 2)
            mask[y:y + h, x:x + w] = True
        noise = rng.choice([-2, -1, 0, 1, 2], p=[0.05, 0.1, 0.7, 0.1, 0.05], size=(size, size))
        big = rng.integers(3, 9, (size, size)) * rng.choice([-1, 1], (size, size))
        out[i] = np.where(mask, big, noise)
    return out


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    """[N, 4, 16, 16]: ch0 regions; ch1 = ch0 scaled (its predecessor predicts it);
    ch2 all zero (dead, flag = always); ch3 i.i.d. noise, offset by a mean of 5.3."""
    rng = np.random.default_rng(0)
    n, s = 60, 16
    ch0 = region_latents(n, s, rng)
    ch1 = np.where(np.abs(ch0) > 2, ch0 * 2, rng.choice([-1, 0, 1], p=[.1, .8, .1], size=ch0.shape))
    ch2 = np.zeros_like(ch0)
    ch3 = rng.laplace(0, 1.5, ch0.shape).astype(np.float32) + 5.3
    return np.stack([ch0, ch1, ch2, ch3], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def model(synthetic: np.ndarray) -> EntropyModel:
    return fit_entropy_model(synthetic)


def test_quantize_frequencies_by_hand() -> None:
    # f_i = 1 + floor(n_i * 65534 / 4): 49151 and 16384, remainders 2 and 2; the one unit
    # left goes to the lower index.
    assert quantize_frequencies(np.array([3, 1])).tolist() == [49152, 16384]
    assert quantize_frequencies(np.array([1, 1])).tolist() == [32768, 32768]
    assert quantize_frequencies(np.array([0, 10])).tolist() == [1, 65535]
    assert quantize_frequencies(np.array([0, 0, 0, 0])).tolist() == [16384] * 4


def test_quantize_frequencies_random() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = int(rng.integers(2, 300))
        counts = rng.integers(0, 10 ** int(rng.integers(1, 9)), s)
        counts[rng.integers(0, s)] = 0
        f = quantize_frequencies(counts)
        assert f.sum() == PROB_ONE and f.min() >= 1
        # never further from the exact share than the rounding allows
        share = 1 + counts * (PROB_ONE - s) / max(counts.sum(), 1)
        assert np.all(np.abs(f - share) <= 1.0 + 1e-9) or counts.sum() == 0


def test_tables_are_valid(model: EntropyModel) -> None:
    for ch in model.channels:
        assert ch.freqs.shape == (8, ch.nsym + 1)
        assert (ch.freqs.sum(axis=1) == PROB_ONE).all() and ch.freqs.min() >= 1
        assert ch.plain.sum() == PROB_ONE and ch.plain.min() >= 1
        assert ch.lo <= ch.mpv < ch.lo + ch.nsym
        assert 1 <= ch.flag_freq < PROB_ONE


def test_fit_finds_structure(model: EntropyModel, synthetic: np.ndarray) -> None:
    ch0, ch1, ch2, ch3 = model.channels
    assert ch0.mpv == 0 and ch0.t_nbr == 2  # the rectangles' threshold
    assert ch0.lo == -8 and ch0.nsym == 17  # training range -8..8
    assert ch2.nsym == 1 and ch2.mpv == 0 and ch2.flag_freq == PROB_ONE - 1  # dead channel
    assert ch0.flag_freq == 1  # never entirely mpv
    assert abs(ch3.offset - synthetic[:, 3].mean()) < 1e-4  # no offsets given: the means
    # ch0 and ch1 predict each other: they are adjacent in the order, and the second one
    # of them uses its predecessor (its tables differ between the two P contexts).
    order = model.order.tolist()
    assert sorted(order) == [0, 1, 2, 3]
    assert abs(order.index(0) - order.index(1)) == 1
    second = max(0, 1, key=order.index)
    f = model.channels[second].freqs
    assert not np.array_equal(f[0], f[4])


def test_contexts_beat_plain_tables(model: EntropyModel, synthetic: np.ndarray) -> None:
    est = model.estimate_bits(synthetic)
    assert est["bits_ctx"] < 0.8 * est["bits_plain"]
    assert est["per_channel_ctx"][2] == pytest.approx(60 * -math.log2((PROB_ONE - 1) / PROB_ONE))
    # the fitted entropy (no quantisation, no flags) is a lower bound of the table cost
    assert model.info["entropy_ctx_bits"] <= est["bits_ctx"]


def naive_bits(m: EntropyModel, latents: np.ndarray) -> float:
    """Code length by plain loops, straight from docs/entropy-model.md."""
    total = 0.0
    pred = {int(b): int(a) for a, b in zip(m.order[:-1], m.order[1:], strict=True)}
    for y in latents:
        q = np.rint(y - m.offsets[:, None, None]).astype(np.int64)
        for c in m.order.tolist():
            ch = m.channels[c]
            if (q[c] == ch.mpv).all():
                total -= math.log2(ch.flag_freq / PROB_ONE)
                continue
            total -= math.log2(1 - ch.flag_freq / PROB_ONE)
            for i in range(q.shape[1]):
                for j in range(q.shape[2]):
                    ctx = 0
                    if j > 0 and abs(q[c, i, j - 1] - ch.mpv) > ch.t_nbr:
                        ctx |= 1
                    if i > 0 and abs(q[c, i - 1, j] - ch.mpv) > ch.t_nbr:
                        ctx |= 2
                    p = pred.get(c)
                    if p is not None and abs(q[p, i, j] - m.channels[p].mpv) > ch.t_prev:
                        ctx |= 4
                    v = int(q[c, i, j])
                    if ch.lo <= v < ch.lo + ch.nsym:
                        total -= math.log2(ch.freqs[ctx, v - ch.lo] / PROB_ONE)
                    else:
                        dist = ch.lo - 1 - v if v < ch.lo else v - (ch.lo + ch.nsym)
                        total -= math.log2(ch.freqs[ctx, ch.nsym] / PROB_ONE)
                        total += 1 + 5 + (dist + 1).bit_length() - 1
    return total


def test_estimate_matches_naive_loops_with_escapes(model: EntropyModel,
                                                   synthetic: np.ndarray) -> None:
    test = synthetic[:3].copy()
    test[0, 0, 3, 4] = 40.0  # far above ch0's range: escape with a 6-bit distance
    test[1, 3, 0, 0] = -1000.0  # far below ch3's range
    test[2, 2, 5, 5] = 1.0  # wakes up the dead channel: escape at distance 0
    est = model.estimate_bits(test)
    assert est["bits_ctx"] == pytest.approx(naive_bits(model, test), rel=1e-12)


def test_refuses_bad_latents(model: EntropyModel, synthetic: np.ndarray) -> None:
    bad = synthetic[:1].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(LicError):
        model.estimate_bits(bad)
    bad[0, 0, 0, 0] = 2.0 * MAX_ABS_SYMBOL
    with pytest.raises(LicError):
        model.estimate_bits(bad)
    with pytest.raises(LicError):
        model.estimate_bits(synthetic[:, :3])
    with pytest.raises(LicError):
        fit_entropy_model(np.zeros((0, 2, 4, 4), dtype=np.float32))


def test_file_round_trip_and_corruption(model: EntropyModel, tmp_path) -> None:
    path = tmp_path / "e.lice"
    model.save(path)
    back = EntropyModel.load(path)
    assert back.to_bytes() == model.to_bytes()
    assert back.fingerprint() == model.fingerprint()
    data = path.read_bytes()
    assert header_fingerprint(data) == model.fingerprint() == fingerprint(data[24:])
    with pytest.raises(LicError, match="bad magic"):
        header_fingerprint(b"LICM" + data[4:])
    for bad in (data[:-2], data[:10], b"", b"XXXX" + data[4:],
                data[:40] + bytes([data[40] ^ 1]) + data[41:]):
        path.write_bytes(bad)
        with pytest.raises(LicError):
            EntropyModel.load(path)
    with pytest.raises(LicError):
        EntropyModel.load(tmp_path / "missing.lice")
