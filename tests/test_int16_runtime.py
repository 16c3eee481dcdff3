"""The C++ runtime on int16 models (.licm 1.1): bytes equal to the numpy reference of
docs/int16.md (lic2cpp.fixedpoint) on every op and on whole networks, at every ISA level,
for any thread count, in a -O0 build and under ASan/UBSan; and both readers agree."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_runtime import assert_readers_agree, conv_node, deconv_node, gdn_node

from lic2cpp import fixedpoint as fx
from lic2cpp import int16
from lic2cpp.errors import LicError
from lic2cpp.modelformat import (
    ModelFile,
    Node,
    decode_licm,
    encode_licm,
    fingerprint,
    infer_channels,
    write_licm,
)
from lic2cpp.runtime import lic_run_path, run_licm, run_tool
from lic2cpp.toolchain import compile_program, cpp_dir


def quantized(nodes: list[Node], x_cal: np.ndarray) -> ModelFile:
    """The int16 graph of a float node list, calibrated on the NHWC batch ``x_cal``."""
    cin, cout = infer_channels(nodes)
    model, _ = int16.quantize_model(ModelFile("q", cin, cout, nodes),
                                    calib=int16.Calibration(x_cal))
    return model


def graphs() -> dict[str, list[Node]]:
    rng = np.random.default_rng(11)
    return {
        # conv2d with few input channels (im2col), odd channel counts, asymmetric pads,
        # fused ReLU, unfused LeakyReLU after an ADD, a 1x1 convolution
        "conv": [conv_node(rng, 3, 17, 5, 2, (2, 1, 2, 2)), Node("relu", [1]),
                 conv_node(rng, 17, 19, 3, 1, (1, 1, 1, 0), 2),
                 conv_node(rng, 17, 19, 3, 1, (1, 1, 1, 0), 2),
                 Node("add", [3, 4]), Node("leaky_relu", [5], {"alpha": 0.1}),
                 conv_node(rng, 19, 5, 1, 1, (0, 0, 0, 0), 6)],
        # g_s-like: phases (16+ output channels), fused LeakyReLU, gather (3 outputs)
        "deconv": [deconv_node(rng, 20, 24, 5, 2, 2, 1), Node("leaky_relu", [1],
                                                              {"alpha": -0.25}),
                   deconv_node(rng, 24, 16, 3, 3, 1, 2, 2), Node("relu", [3]),
                   deconv_node(rng, 16, 3, 5, 2, 2, 1, 4)],
        # GDN analysis and inverse GDN synthesis
        "gdn": [conv_node(rng, 3, 12, 5, 2, (2, 2, 2, 2)), gdn_node(rng, 12, 0, 1),
                deconv_node(rng, 12, 18, 5, 2, 2, 1, 2), gdn_node(rng, 18, 1, 3),
                deconv_node(rng, 18, 3, 4, 2, 1, 0, 4)],
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    folder = tmp_path_factory.mktemp("int16")
    out = {}
    for name, nodes in graphs().items():
        cin, _ = infer_channels(nodes)
        rng = np.random.default_rng(len(name))
        x_cal = rng.normal(0, 1.0, (3, 11, 13, cin)).astype(np.float32)
        path = folder / f"{name}.licm"
        write_licm(path, quantized(nodes, x_cal))
        out[name] = (path, rng.normal(0, 1.0, (13, 9, cin)).astype(np.float32))
    return out


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    return fx.run_reference(decode_licm(path.read_bytes()), x)


@pytest.mark.parametrize("name", ["conv", "deconv", "gdn"])
def test_runtime_equals_the_numpy_reference(models, name: str) -> None:
    path, x = models[name]
    want = reference(path, x)
    assert np.abs(want).max() > 0.01  # not a trivial all-zero output
    for scale in (1.0, 40.0):  # 40x the calibration range: saturation everywhere
        xs = x * scale
        want = reference(path, xs)
        for force_scalar in (False, True):
            for threads in (1, 3):
                got = run_licm(path, xs, threads, force_scalar=force_scalar)
                assert got.dtype == np.float32 and np.array_equal(got, reference(path, xs)), (
                    scale, force_scalar, threads)


def test_every_isa_level_and_an_O0_build_agree(models) -> None:
    """The kernels of each ISA level (scalar, avx2+fma, and avx512-vnni where the CPU has
    it; chosen with LIC_ISA) and a -O0 build give the same bytes."""
    o0 = compile_program([cpp_dir() / "tools" / "lic_run.cpp"], "lic-run-O0",
                         extra_flags=["-O0", "-UNDEBUG"])
    levels = {"scalar", "avx2+fma", "avx512-vnni"}
    seen = set()
    for name, (path, x) in models.items():
        want = reference(path, x)
        inp = path.with_suffix(".in.npy")
        np.save(inp, x)
        runs = [(o0, {})] + [(lic_run_path(), {"LIC_ISA": lv}) for lv in sorted(levels)]
        for exe, env in runs:
            out = path.with_suffix(".out.npy")
            proc = subprocess.run([str(exe), str(path), str(inp), str(out), "--threads", "2"],
                                  capture_output=True, text=True,
                                  env={**{k: v for k, v in os.environ.items()
                                          if k != "LIC_FORCE_SCALAR"}, **env})
            assert proc.returncode == 0, proc.stderr
            assert np.array_equal(np.load(out), want), (name, exe.name, env)
            info = run_tool(["--info", str(path)], env=env) if env else None
            if info is not None:
                seen.add(info.stdout.split("kernels ")[1].split()[0])
    assert {"scalar", "avx2+fma"} <= seen  # avx512-vnni too where the CPU has it


def test_int16_ops_under_sanitizers(models) -> None:
    for name, (path, x) in models.items():
        got = run_licm(path, x[:5, :6] * 30, 2, sanitize=True)
        assert np.array_equal(got, reference(path, x[:5, :6] * 30)), name


def test_lic_run_info_names_the_int16_ops(models) -> None:
    proc = run_tool(["--info", str(models["gdn"][0])])
    assert proc.returncode == 0, proc.stderr
    assert "format 1.1" in proc.stdout and "s16_gdn" in proc.stdout
    assert "quantize(v0) shift" in proc.stdout and "dequantize" in proc.stdout


def test_python_and_cpp_readers_agree_on_int16_files(models, tmp_path: Path) -> None:
    """Corrupted int16 files (fields overwritten, fingerprint repaired): the C++ and Python
    readers accept and refuse the same ones (worst-case and shift rules included)."""
    data = models["deconv"][0].read_bytes()
    body = data[24:]
    rng = np.random.default_rng(3)
    variants = [data]
    for k in range(80):
        b = bytearray(body)
        pos = int(rng.integers(0, len(b) // 4)) * 4
        if k % 3 == 0:  # a shift or attribute: small values
            value = int(rng.integers(-40, 40)) & 0xFFFFFFFF
        elif k % 3 == 1:
            value = int(rng.integers(0, 2**32))
        else:  # one int16 weight to an extreme
            pos = pos + 2 * int(rng.integers(0, 2))
            b[pos:pos + 2] = struct.pack("<h", int(rng.choice([-32768, -32767, 32767])))
            variants.append(b"LICM" + struct.pack("<HHQQ", 1, 1, len(b), fingerprint(bytes(b)))
                            + bytes(b))
            continue
        b[pos:pos + 4] = struct.pack("<I", value)
        variants.append(b"LICM" + struct.pack("<HHQQ", 1, 1, len(b), fingerprint(bytes(b)))
                        + bytes(b))
    assert_readers_agree(tmp_path, variants)


def test_a_file_past_the_worst_case_is_refused_by_the_runtime(tmp_path: Path) -> None:
    """The reader's worst-case rule: one unit of bias more than int32 allows is refused."""
    a = dict(cin=2, cout=1, kh=1, kw=1, stride_h=1, stride_w=1, pad_top=0, pad_left=0,
             pad_bottom=0, pad_right=0, weight_shift=0, out_shift=-8)
    w = np.array([[[[32767]], [[32767]]]])
    top = 2**31 - 1 - 128 - 2 * 32767 * 32767
    for bias, ok in ((top, True), (top + 1, False)):
        nodes = [Node("quantize", [0], {"shift": 0}), Node("s16_relu", [1]),
                 Node("s16_conv2d", [2], dict(a), {"weight": w, "bias": np.array([bias])}),
                 Node("dequantize", [3])]
        m = ModelFile("w", 2, 1, nodes)
        if ok:
            data = encode_licm(m)
        else:
            with pytest.raises(LicError, match="worst-case"):
                encode_licm(m)
            # the same file, written without the writer's check
            from lic2cpp.modelformat import HEADER_SIZE, MAGIC, encode_body
            body = encode_body(m)
            data = MAGIC + struct.pack("<HHQQ", 1, 1, len(body), fingerprint(body)) + body
            assert len(data) > HEADER_SIZE
        path = tmp_path / f"w{ok}.licm"
        path.write_bytes(data)
        proc = run_tool(["--info", str(path)])
        assert (proc.returncode == 0) == ok, proc.stderr
        if not ok:
            assert "worst-case sum" in proc.stderr and "int32" in proc.stderr
        if ok:  # and it runs: inputs at the extreme give the saturated maximum
            x = np.full((1, 3, 2), 1e9, np.float32)
            assert run_licm(path, x).max() == 32767 * 2.0**8
