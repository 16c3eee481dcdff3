"""The C++ range coder and context model (cpp/codec/), driven through small test programs
(tests/cpp/coder_selftest.cpp, tests/cpp/latent_tool.cpp)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lic2cpp.entropy import fit_entropy_model
from lic2cpp.toolchain import compile_program, cpp_dir


def tool(name: str) -> Path:
    source = cpp_dir().parent / "tests" / "cpp" / f"{name}.cpp"
    return compile_program([source], f"codec-{name}-asan", sanitize=True)


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seed", [1, 2])
def test_range_coder_round_trips_and_efficiency(seed: int) -> None:
    # Random tables (2..300 symbols; flat, skewed and extreme ones with probability
    # 65535/65536 against 1/65536), sampled / least-probable / uniform symbol streams, bypass
    # bits, empty streams: every decode must be exact and end in the expected final state.
    out = run_json([str(tool("coder_selftest")), str(seed), "150"])
    assert out["ok"] and out["round_trip_symbols"] > 100_000
    # a 2M-symbol latent-like stream: coded size within 0.1% of -sum log2 p
    assert out["ideal_bits"] <= out["coded_bits"] <= out["ideal_bits"] * 1.001 + 32


def smooth_latents(n: int, c: int, h: int, w: int, seed: int) -> np.ndarray:
    """Spatially and cross-channel correlated latents, like a transform's output."""
    rng = np.random.default_rng(seed)
    base = rng.laplace(0, 1.0, (n, 1, h, w))
    base = (base + np.roll(base, 1, 2) + np.roll(base, 1, 3)) / 1.5
    scale = np.linspace(0.1, 3.0, c)[None, :, None, None]
    y = base * scale + rng.laplace(0, 0.3, (n, c, h, w)) * scale + np.arange(c)[None, :, None, None]
    y[:, 1] = 0.25  # a dead channel
    return y.astype(np.float32)


@pytest.mark.parametrize("offsets", ["means", "given"])
def test_cpp_context_model_matches_python(tmp_path: Path, offsets: str) -> None:
    """The C++ reader and coder use the Python writer's tables, offsets included: the
    training means, or given offsets (like the medians) a fraction away from them."""
    train = smooth_latents(40, 6, 12, 12, 0)
    given = None
    if offsets == "given":
        given = (np.arange(6) + 0.37 * np.arange(1, 7)).astype(np.float32)
    model = fit_entropy_model(train, given)
    if given is not None:
        assert np.array_equal(model.offsets, given)
    model.save(tmp_path / "e.lice")
    test = smooth_latents(5, 6, 23, 17, 1)
    test[0, 2, 4, 4] = 300.0  # escapes, far out of the fitted range in both directions
    test[1, 3, 0, 0] = -5000.0
    test[2, 1, 2, 2] = 7.0  # the dead channel comes alive
    np.save(tmp_path / "y.npy", test)
    out = run_json([str(tool("latent_tool")), str(tmp_path / "e.lice"), str(tmp_path / "y.npy")])
    est = model.estimate_bits(test)
    assert out["items"] == 5
    assert out["bits_ctx"] == pytest.approx(est["bits_ctx"], rel=1e-9)
    assert out["bits_plain"] == pytest.approx(est["bits_plain"], rel=1e-9)
    # 5 payloads, each at most 4 flush bytes over its ideal length
    assert est["bits_ctx"] <= out["payload_bytes"] * 8 + 5 * 4 <= est["bits_ctx"] + 5 * 40
    assert 0 <= out["virtual_zero_bytes"] <= 5 * 4


@pytest.mark.parametrize("band_rows", [1, 4, 7, 23])
def test_cpp_band_coding_matches_python(tmp_path: Path, band_rows: int) -> None:
    # Bitstream 2.0 codes bands of rows as independent sub-streams: flags per band, no
    # "up" context across a band's first row. The C++ coder's ideal lengths must equal the
    # Python estimate for the same banding, and every band must round-trip exactly.
    model = fit_entropy_model(smooth_latents(40, 6, 12, 12, 0))
    model.save(tmp_path / "e.lice")
    test = smooth_latents(3, 6, 23, 17, 2)
    test[0, 2, 7, 3] = 900.0  # an escape
    test[1, :, 8:16] = model.offsets[:, None, None] + np.array(
        [ch.mpv for ch in model.channels])[:, None, None]  # a band of only mpv: flags set
    np.save(tmp_path / "y.npy", test)
    out = run_json([str(tool("latent_tool")), str(tmp_path / "e.lice"), str(tmp_path / "y.npy"),
                    str(band_rows)])
    est = model.estimate_bits(test, band_rows=band_rows)
    assert out["bits_ctx"] == pytest.approx(est["bits_ctx"], rel=1e-9)
    assert out["bits_plain"] == pytest.approx(est["bits_plain"], rel=1e-9)
    bands = 3 * -(-23 // band_rows)
    assert est["bits_ctx"] <= out["payload_bytes"] * 8 + 4 * bands <= est["bits_ctx"] + 40 * bands
    if band_rows < 23:  # banding changes the code: the one-band estimate differs
        assert est["bits_ctx"] != pytest.approx(model.estimate_bits(test)["bits_ctx"], rel=1e-9)


def test_cpp_refuses_corrupt_tables(tmp_path: Path) -> None:
    model = fit_entropy_model(smooth_latents(4, 3, 8, 8, 0))
    data = model.to_bytes()
    np.save(tmp_path / "y.npy", smooth_latents(1, 3, 8, 8, 1))
    exe = str(tool("latent_tool"))
    cases = {"short": data[:30], "magic": b"XXXX" + data[4:],
             "flip": data[:50] + b"\xff" + data[51:], "empty": b""}
    for name, bad in cases.items():
        (tmp_path / "bad.lice").write_bytes(bad)
        proc = subprocess.run([exe, str(tmp_path / "bad.lice"), str(tmp_path / "y.npy")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, name
        assert "error:" in proc.stderr and "runtime error" not in proc.stderr, name
        assert len(proc.stderr.strip().splitlines()) == 1, (name, proc.stderr)
    # tables for another channel count are refused, not misread
    (tmp_path / "ok.lice").write_bytes(data)
    np.save(tmp_path / "y4.npy", smooth_latents(1, 4, 8, 8, 1))
    proc = subprocess.run([exe, str(tmp_path / "ok.lice"), str(tmp_path / "y4.npy")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "channels" in proc.stderr


def test_cpp_codes_flagless_channels_like_python(tmp_path: Path) -> None:
    # .lice 1.1: flag_freq 0 = no activation flag. Some channels lose their flag, one of
    # them entirely mpv in an item (coded value by value, not by the flag).
    train = smooth_latents(40, 6, 12, 12, 0)
    model = fit_entropy_model(train)
    for c in (0, 1, 4):
        model.channels[c].flag_freq = 0
    data = model.to_bytes()
    assert data[6] == 1  # minor version 1
    (tmp_path / "e.lice").write_bytes(data)
    test = smooth_latents(3, 6, 9, 11, 2)
    test[1, 1] = 0.25  # the dead, flagless channel: all mpv
    np.save(tmp_path / "y.npy", test)
    out = run_json([str(tool("latent_tool")), str(tmp_path / "e.lice"), str(tmp_path / "y.npy")])
    est = model.estimate_bits(test)
    assert out["bits_ctx"] == pytest.approx(est["bits_ctx"], rel=1e-9)
    # without a flag the dead channel costs its values: more than with the fitted flag
    flagged = fit_entropy_model(train)
    assert est["per_channel_ctx"][1] > flagged.estimate_bits(test)["per_channel_ctx"][1]
    # a model without flagless channels is still written as 1.0
    assert flagged.to_bytes()[6] == 0


def test_cpp_quantisation_is_numpy_rint(tmp_path: Path) -> None:
    # The encoder's q = round_half_even(y - offset) in float32 against numpy's rint, in both
    # layouts the C++ reads (channel planes; pixel-interleaved on 3 threads, the encoder's):
    # exact ties of both parities and signs, the float spacing of 0.5 just above 2^22, and
    # the largest magnitudes below the 2^30 limit. Offsets are dyadic, so y - offset is exact
    # and the ties stay ties.
    given = np.array([0.0, 0.25, -0.5, 3.0], dtype=np.float32)
    model = fit_entropy_model(smooth_latents(20, 4, 8, 8, 0), given)
    model.save(tmp_path / "e.lice")
    rng = np.random.default_rng(5)
    y = (rng.normal(0, 20, (3, 4, 7, 9)) + given[None, :, None, None]).astype(np.float32)
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e-8, -1e-8, 0.49999997, -0.49999997])
    y[0, :, 0, :] = ties[:9][None, :] + given[:, None]
    y[1, :, 1, :5] = np.array([2**22 + 0.5, 2**22 + 1.5, -(2**22) - 0.5, 2**23 - 0.5,
                               2**30 - 64], dtype=np.float32)[None, :] + given[:, None]
    y = y.astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    exe = str(tool("latent_tool"))
    proc = subprocess.run([exe, str(tmp_path / "e.lice"), str(tmp_path / "y.npy"), "--symbols",
                           str(tmp_path / "q.npy")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    want = np.rint(y - given[None, :, None, None])
    got = np.load(tmp_path / "q.npy")
    assert np.array_equal(got, want)
    assert np.array_equal(got[0, 0, 0, :6], [0, 2, 2, 0, -2, -2])  # ties to even, as numpy
    # not finite or not below 2^30: an error naming the channel (the first bad row's lowest)
    for value in (np.nan, np.inf, -np.inf, 2.0**30):
        bad = y.copy()
        bad[1, 0, 5, 0] = np.nan  # a later row: not the one reported
        bad[1, 3, 2, 4] = value
        bad[1, 2, 2, 1] = value
        np.save(tmp_path / "bad.npy", bad)
        cmd = [exe, str(tmp_path / "e.lice"), str(tmp_path / "bad.npy"), "--symbols",
               str(tmp_path / "q2.npy")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "runtime error" not in proc.stderr, proc.stderr
        assert "non-finite or out-of-range value (channel 2)" in proc.stderr, proc.stderr
