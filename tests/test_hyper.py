"""Hyperprior coding (docs/hyperprior.md): the integer index computation, the `.lich` tables
and the C++ coder against the numpy reference.

Truths: CompressAI's own `build_indexes` on the same scales, PyTorch's `h_a`, the numpy
reference of the int16 arithmetic (lic2cpp.fixedpoint), exact round trips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lic2cpp.convert import convert_model
from lic2cpp.errors import LicError
from lic2cpp.hyper import (
    KIND_MEAN_SCALE,
    KIND_SCALE,
    NEVER,
    HyperTables,
    hyper_kind,
    hyper_latents,
    hyper_tables,
    int16_hyper_synthesis,
    scale_index,
    scale_thresholds,
)
from lic2cpp.modelformat import read_licm
from lic2cpp.toolchain import compile_program, cpp_dir


def tiny_hyper(kind: int, seed: int = 0) -> torch.nn.Module:
    """ScaleHyperprior / MeanScaleHyperprior(8, 12), random init rescaled so that y spans
    several integers and h_s gives scales (and means) across the scale table."""
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior

    torch.manual_seed(seed)
    net = (ScaleHyperprior if kind == KIND_SCALE else MeanScaleHyperprior)(8, 12).eval()
    with torch.no_grad():
        net.g_a[-1].weight.mul_(60.0)
        net.h_a[-1].weight.mul_(20.0)
        last = [m for m in net.h_s if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(12.0)
        last.bias[:12].add_(torch.linspace(0.0, 6.0, 12))  # the scales: small to large
    net.update(force=True)
    return net


def random_images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255.0 / w, yy * 255.0 / h, (xx + yy) * 127.0 / (h + w)], -1)
    return np.clip(base[None] + rng.normal(0, 40, (n, h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=[KIND_SCALE, KIND_MEAN_SCALE], ids=["scale", "mean"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    kind = request.param
    net = tiny_hyper(kind)
    folder = tmp_path_factory.mktemp(f"hyper{kind}")
    paths = dict(zip(("g_a", "g_s", "h_a", "h_s"),
                     convert_model(net, folder, exporter="torchscript",
                                   transforms=("g_a", "g_s", "h_a", "h_s")), strict=True))
    int16, _ = int16_hyper_synthesis(net, read_licm(paths["h_s"]), None)
    tables = hyper_tables(net, int16, paths["h_a"].read_bytes())
    tables.save(folder / "hyper.lich")
    return {"net": net, "kind": kind, "folder": folder, "tables": tables, **paths}


def hyper_tool() -> Path:
    return compile_program([cpp_dir().parent / "tests" / "cpp" / "hyper_tool.cpp"],
                           "hyper-tool-asan", sanitize=True)


# ---------------------------------------------------------------------------- thresholds

def test_integer_index_equals_compressai_build_indexes() -> None:
    from compressai.entropy_models import GaussianConditional
    from compressai.models.google import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    table = gc.scale_table.numpy()
    bound = float(gc.lower_bound_scale.bound)
    for shift in (-2, 0, 5, 9, 12, 14):
        thr = scale_thresholds(table, bound, shift)
        q = np.arange(-32768, 32768, dtype=np.int64)
        # every threshold and its neighbours are among the tested values
        scales = torch.from_numpy((q * 2.0**-shift).astype(np.float32))
        want = gc.build_indexes(scales).numpy()
        np.testing.assert_array_equal(scale_index(q, thr), want)
        assert (np.diff(thr) >= 0).all()


def test_thresholds_respect_the_lower_bound() -> None:
    table = np.array([0.05, 0.11, 0.5, 2.0], dtype=np.float32)
    thr = scale_thresholds(table, 0.11, 4)
    # t_0 = 0.05 < bound: never counted; floor(0.11·16) = 1; floor(0.5·16) = 8
    assert thr.tolist() == [NEVER, 1, 8]
    assert scale_index(np.array([-5, 1, 2, 8, 9]), thr).tolist() == [1, 1, 2, 2, 3]


# ---------------------------------------------------------------------------- tables

def test_kinds_and_refusals() -> None:
    from compressai.models import FactorizedPrior, JointAutoregressiveHierarchicalPriors

    assert hyper_kind(tiny_hyper(KIND_SCALE)) == KIND_SCALE
    assert hyper_kind(tiny_hyper(KIND_MEAN_SCALE)) == KIND_MEAN_SCALE
    for net in (FactorizedPrior(8, 12), JointAutoregressiveHierarchicalPriors(8, 12)):
        with pytest.raises(LicError, match="not a hyperprior model"):
            hyper_kind(net)


def test_tables_hold_the_model_cdfs_and_round_trip(tiny: dict) -> None:
    t: HyperTables = tiny["tables"]
    net = tiny["net"]
    gc, eb = net.gaussian_conditional, net.entropy_bottleneck
    assert t.kind == tiny["kind"] and t.latent_channels == 12 and t.hyper_channels == 8
    assert t.z_factor == 4 and t.num_scales == gc._quantized_cdf.shape[0]
    for i, tab in enumerate(t.y_tables):
        n = int(gc._cdf_length[i])
        np.testing.assert_array_equal(tab.freqs, np.diff(gc._quantized_cdf[i, :n].numpy()))
        assert tab.lo == int(gc._offset[i])
    for c, tab in enumerate(t.z_tables):
        n = int(eb._cdf_length[c])
        np.testing.assert_array_equal(tab.freqs, np.diff(eb._quantized_cdf[c, :n].numpy()))
    data = t.to_bytes()
    assert HyperTables.from_bytes(data).to_bytes() == data


def test_corrupt_tables_are_refused_by_both_readers(tiny: dict, tmp_path: Path) -> None:
    data = tiny["tables"].to_bytes()
    tool = hyper_tool()
    np.save(tmp_path / "y.npy", np.zeros((4, 4, 12), np.float32))
    body = bytearray(data)
    body[24] = 9  # unknown kind (fingerprint repaired below)
    from lic2cpp.modelformat import fingerprint

    repaired = bytes(body[:16]) + fingerprint(bytes(body[24:])).to_bytes(8, "little") + \
        bytes(body[24:])
    cases = {"short": data[:20], "magic": b"XXXX" + data[4:], "flip": data[:-9] + b"\x01" +
             data[-8:], "truncated": data[:-4], "kind": repaired}
    for name, bad in cases.items():
        with pytest.raises(LicError):
            HyperTables.from_bytes(bad)
        (tmp_path / "bad.lich").write_bytes(bad)
        proc = subprocess.run([str(tool), str(tmp_path / "bad.lich"), str(tiny["h_a"]),
                               str(tmp_path / "y.npy"), str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("hyper_tool: error:"), name


# ---------------------------------------------------------------------------- the coder

def run_tool(tiny: dict, y: np.ndarray, out: Path, threads: int = 1,
             scalar: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "y.npy", y)
    env = dict(os.environ, LIC_FORCE_SCALAR="1") if scalar else None
    proc = subprocess.run([str(hyper_tool()), str(tiny["folder"] / "hyper.lich"),
                           str(tiny["h_a"]), str(out / "y.npy"), str(out), "--threads",
                           str(threads)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("size", [(64, 64), (80, 112), (16, 48)])
def test_cpp_coder_equals_the_numpy_reference(tiny: dict, size: tuple[int, int],
                                              tmp_path: Path) -> None:
    t: HyperTables = tiny["tables"]
    y, z = hyper_latents(tiny["net"], random_images(1, *size, seed=size[0]))
    y_hwc = y[0].transpose(1, 2, 0)
    res = run_tool(tiny, y_hwc, tmp_path)
    qz = np.load(tmp_path / "qz.npy").astype(np.int64)
    # C++ float h_a and PyTorch's round to the same z symbols (away from .5 ties)
    assert (qz == t.z_symbols(z[0])).mean() > 0.99
    index, means = t.hyper_synthesis(qz, y.shape[2], y.shape[3])
    np.testing.assert_array_equal(np.load(tmp_path / "index.npy").astype(np.int64), index)
    assert len(np.unique(index)) > 5  # the test covers many scales
    if means is None:
        assert not (tmp_path / "mean.npy").exists()
    else:
        np.testing.assert_array_equal(np.load(tmp_path / "mean.npy"), means)
    qy = t.y_symbols(y[0], means)
    np.testing.assert_array_equal(np.load(tmp_path / "y_hat.npy"),
                                  t.y_hat(qy, means).transpose(1, 2, 0))
    zb, yb = t.code_length(qz, qy, index)
    assert res["ideal_bits"] == pytest.approx(zb + yb, rel=1e-9)
    payload_bits = (tmp_path / "payload.bin").stat().st_size * 8
    assert zb + yb - 8 <= payload_bits <= zb + yb + 40


def test_escapes_round_trip_with_their_bypass_bits(tiny: dict, tmp_path: Path) -> None:
    # Values far outside every table's alphabet, both ways and up to 2^21 away: the escape
    # symbol and its bypass bits (codec/entropy/escape.hpp), counted as the reference does.
    t: HyperTables = tiny["tables"]
    y, _ = hyper_latents(tiny["net"], random_images(1, 64, 64, seed=5))
    y = y.copy()
    y[0, 0, 0, 0], y[0, 1, 2, 3], y[0, 2, 3, 1], y[0, 0, 1, 2] = 1000, -70000, 2.0**21, -300
    res = run_tool(tiny, y[0].transpose(1, 2, 0), tmp_path)  # decodes and compares itself
    qz = np.load(tmp_path / "qz.npy").astype(np.int64)
    index, means = t.hyper_synthesis(qz, y.shape[2], y.shape[3])
    qy = t.y_symbols(y[0], means)
    assert np.abs(qy).max() >= 2**21 - 2**10  # really escaped
    np.testing.assert_array_equal(np.load(tmp_path / "y_hat.npy"),
                                  t.y_hat(qy, means).transpose(1, 2, 0))
    zb, yb = t.code_length(qz, qy, index)
    assert res["ideal_bits"] == pytest.approx(zb + yb, rel=1e-9)


def test_decoding_is_identical_across_kernels_and_threads(tiny: dict,
                                                         tmp_path: Path) -> None:
    # Streams made with the scalar kernels and with the best ones (the encoders may
    # differ: their float h_a is theirs) each decode to one y_hat whatever the decoder's
    # kernels and thread count: h_s and the indexes are integer arithmetic.
    y, _ = hyper_latents(tiny["net"], random_images(1, 96, 128, seed=3))
    y_hwc = y[0].transpose(1, 2, 0)
    for enc_scalar in (False, True):
        enc = tmp_path / f"enc{int(enc_scalar)}"
        run_tool(tiny, y_hwc, enc, scalar=enc_scalar)
        for threads in (1, 2):
            for dec_scalar in (False, True):
                out = tmp_path / f"dec{int(enc_scalar)}{threads}{int(dec_scalar)}"
                out.mkdir()
                env = dict(os.environ, LIC_FORCE_SCALAR="1") if dec_scalar else None
                proc = subprocess.run(
                    [str(hyper_tool()), "--decode", str(tiny["folder"] / "hyper.lich"),
                     str(enc / "payload.bin"), str(y_hwc.shape[0]), str(y_hwc.shape[1]),
                     str(out), "--threads", str(threads)],
                    capture_output=True, text=True, timeout=300, env=env)
                assert proc.returncode == 0, proc.stderr
                assert (json.loads(proc.stdout)["kernels"] == "scalar") == dec_scalar
                assert (out / "y_hat.npy").read_bytes() == (enc / "y_hat.npy").read_bytes()


def test_bench_codec_refuses_a_hyperprior_model_before_building(tmp_path: Path) -> None:
    # bench_codec measures .lice codecs (medians of y from the bottleneck): a hyperprior
    # model's bottleneck belongs to z, so it must stop at once with a pointer, not after a
    # build with a broadcasting error
    from conftest import ROOT, SHP_CKPT

    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_codec.py"), "--model", str(SHP_CKPT),
         "--out", str(out), "--fast"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"{SHP_CKPT} is a hyperprior model: measure it with `lic2cpp eval` and "
        "benchmarks/hyper_ingredients.py (docs/hyperprior.md)"]
    assert not out.exists()
