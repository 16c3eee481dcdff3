"""The benchmark scripts stay runnable: each imports (every name it takes from lic2cpp
still exists) and answers --help."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert len(BENCHMARKS) >= 5


def load_script(script: Path) -> ModuleType:
    """Imports a benchmark script as a module: runs its imports, not its main()."""
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports(script: Path) -> None:
    module = load_script(script)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


def test_benchmark_help() -> None:
    script = next(p for p in BENCHMARKS if p.name == "int16_psnr.py")
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "--offsets" in proc.stdout


def test_host_ceiling_builds_and_runs(tmp_path: Path) -> None:
    # ab_programs.py builds and runs it every round; a build failure there is only a note.
    ab = load_script(BENCHMARKS[0].parent / "ab_programs.py")
    exe = ab.build_ceiling(tmp_path)
    assert exe is not None
    ab.CEILING_MILLIONS = "2"
    assert ab.ceiling_ms(exe, 1) > 0 and ab.ceiling_ms(exe, 2) > 0
    # each thread's chains settle at 1.0: the sums printed show every thread's work ran
    out = subprocess.run([str(exe), "3", "2"], capture_output=True, text=True).stdout.split()
    assert float(out[1]) == pytest.approx(30.0, rel=1e-3)
    assert subprocess.run([str(exe), "0", "2"], capture_output=True).returncode == 2
    assert subprocess.run([str(exe), "2", "2", "even"], capture_output=True).returncode == 2
    # from the shared counter: 2 million in pieces of a quarter million, 10.0 per piece,
    # all of them taken once between the threads
    out = subprocess.run([str(exe), "3", "2", "shared"], capture_output=True,
                         text=True).stdout.split()
    assert float(out[1]) == pytest.approx(80.0, rel=1e-3)
    assert len(out) == 5 and sum(int(n) for n in out[2:]) == 8
    ms, share = ab.shared_ceiling(exe, 2)
    assert ms > 0 and 0.5 <= share <= 1.0


def test_moonshot_counts_direct_multiply_adds(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    moon = load_script(BENCHMARKS[0].parent / "bench_moonshot.py")
    conv_w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "cw")
    deconv_w = numpy_helper.from_array(np.zeros((4, 2, 5, 5), np.float32), "dw")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "cw"], ["h"], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("ConvTranspose", ["r", "dw"], ["y"], strides=[2, 2],
                          pads=[2, 2, 2, 2], output_padding=[1, 1])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [conv_w, deconv_w])
    path = tmp_path / "g.onnx"
    save(helper.make_model(graph), str(path))
    # by hand: the conv gives 4x3 pixels x 4 outputs x 27 taps; each of the deconv's
    # 4x3x4 inputs meets 2 outputs x 25 taps
    assert moon.direct_macs(path, 8, 6) == 4 * 3 * 4 * 27 + 4 * 3 * 4 * 2 * 25
