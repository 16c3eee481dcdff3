"""checkasm-style kernel tests (tests/cpp/check_kernels.cpp): every SIMD kernel against its
scalar twin and a double-precision reference, every tail size, guarded outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lic2cpp.toolchain import compile_program, cpp_dir

SOURCE = cpp_dir().parent / "tests" / "cpp" / "check_kernels.cpp"


def cpu_has_avx2_fma() -> bool:
    flags = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = line
            break
    return " avx2" in flags and " fma" in flags


@pytest.mark.parametrize("sanitize", [False, True])
def test_kernels_match_scalar_twins(sanitize: bool) -> None:
    exe = compile_program([SOURCE], "check-kernels" + ("-asan" if sanitize else ""),
                          sanitize=sanitize)
    for seed in ("1", "2"):
        proc = subprocess.run([str(exe), seed], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "checked scalar" in proc.stdout
        if cpu_has_avx2_fma():
            assert "checked avx2+fma" in proc.stdout
