"""The checkasm-style kernel harness (tests/cpp/check_kernels.cpp): every kernel at every
instruction-set level the CPU offers against its scalar twin (the GEMM also against a
double-precision reference), random and extreme inputs, every tail size, guarded outputs;
and proof that the harness catches a faulty kernel."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lic2cpp.toolchain import compile_program, cpp_dir

SOURCE = cpp_dir().parent / "tests" / "cpp" / "check_kernels.cpp"
KERNELS = [f"f32-igemm-{m}x16" for m in range(1, 7)] + [
    "f32-vleaky", "f32-vadd", "f32-vsquare", "f32-gdn-finish"] + [
    f"s16-igemm-{m}x16" for m in range(1, 7)] + [
    "s16-vleaky", "s16-vadd", "s16-vsquare", "s16-gdn-finish", "f32-s16-vcvt", "s16-f32-vcvt"]
AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}
# The AVX-512 levels' taller GEMM tiles, and their 32-column (two-panel) tiles.
AVX512_ONLY = [f"f32-igemm-{m}x16" for m in range(7, 15)] + [
    f"f32-igemm-{m}x32" for m in range(1, 13)]


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def expected_levels() -> tuple[list[str], list[str]]:
    """Levels the harness must test on this CPU, and those it must report as skipped."""
    flags = cpu_flags()
    tested, skipped = ["scalar"], []
    (tested if {"avx2", "fma"} <= flags else skipped).append("avx2+fma")
    avx512 = AVX512 | {"avx2", "fma"} <= flags
    # the float GEMM's taller and two-panel tiles
    (tested if avx512 else skipped).append("avx512")
    # the int16 GEMM with vpdpwssd (docs/int16.md)
    (tested if avx512 and "avx512_vnni" in flags else skipped).append("avx512-vnni")
    return tested, skipped


def kernels_of(level: str) -> list[str]:
    return KERNELS + (AVX512_ONLY if level.startswith("avx512") else [])


def harness(sanitize: bool) -> Path:
    return compile_program([SOURCE], "check-kernels" + ("-asan" if sanitize else ""),
                           sanitize=sanitize)


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("sanitize", [False, True])
def test_every_kernel_at_every_level(sanitize: bool) -> None:
    exe = harness(sanitize)
    tested, skipped = expected_levels()
    for seed in ("1", "2"):
        proc = run(exe, "--seed", seed)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for level in tested:
            for kernel in kernels_of(level):
                line = re.search(rf"^{re.escape(level)}\s+{re.escape(kernel)}\s+(.*)$",
                                 proc.stdout, re.MULTILINE)
                assert line, f"{level} {kernel} not checked:\n{proc.stdout}"
                assert line.group(1).startswith(("ok (", "same as")), line.group(0)
        for level in skipped:
            assert re.search(rf"^{re.escape(level)}\s+skipped: ", proc.stdout, re.MULTILINE)
        assert "all kernels passed on: " + " ".join(tested) in proc.stdout


@pytest.mark.parametrize("fault", ["overrun", "value"])
def test_harness_catches_a_faulty_kernel(fault: str) -> None:
    # A kernel that writes one float past its output, or returns a slightly wrong value,
    # is put in the highest level's table: the harness must fail and name it.
    proc = run(harness(False), "--break", fault)
    assert proc.returncode == 1, proc.stdout
    assert "FAIL: " in proc.stdout and "f32-igemm-6x16" in proc.stdout
    assert "s16-igemm-6x16" in proc.stdout  # the int16 GEMM is broken the same way
    if fault == "overrun":
        assert "wrote outside its output" in proc.stdout


def test_bench_mode_prints_every_kernel_per_level() -> None:
    tested, _ = expected_levels()
    proc = run(harness(False), "--bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kernel in KERNELS + (AVX512_ONLY if "avx512" in tested else []):
        line = re.search(rf"^{re.escape(kernel)}\s+(.*)$", proc.stdout, re.MULTILINE)
        levels = [lv for lv in tested if kernel in kernels_of(lv)]
        assert line and all(f"{level} " in line.group(1) for level in levels), proc.stdout
        assert re.search(r"\d+\.\d ns", line.group(1))
