"""The benchmark scripts stay runnable: each imports (every name it takes from lic2cpp
still exists) and answers --help."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
