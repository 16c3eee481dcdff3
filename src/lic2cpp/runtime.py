"""Python driver of the C++ runtime's command-line tool ``lic-run``.

Tests and benchmarks use it to run `.licm` models through exactly the code the generated
encoder and decoder contain.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lic2cpp.errors import LicError
from lic2cpp.toolchain import compile_program, cpp_dir


def lic_run_path(sanitize: bool = False) -> Path:
    """The compiled ``lic-run`` (cached; ``sanitize=True`` gives an ASan/UBSan build)."""
    source = cpp_dir() / "tools" / "lic_run.cpp"
    return compile_program([source], "lic-run-asan" if sanitize else "lic-run",
                           sanitize=sanitize)


# The runtime's environment knobs (docs/runtime.md): tests set them through `env`.
RUNTIME_KNOBS = ("LIC_FORCE_SCALAR", "LIC_ISA", "LIC_STREAM", "LIC_BAND_ROWS")


def run_tool(args: list[str], *, sanitize: bool = False, force_scalar: bool = False,
             timeout: float | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """Run ``lic-run`` with ``args``; returns the finished process (any exit status).
    ``env`` sets runtime knobs (LIC_STREAM=0, LIC_BAND_ROWS=N, LIC_ISA=..., docs/runtime.md);
    the caller's own settings of them are not inherited."""
    full = {k: v for k, v in os.environ.items() if k not in RUNTIME_KNOBS}
    if force_scalar:
        full["LIC_FORCE_SCALAR"] = "1"
    full.update(env or {})
    return subprocess.run([str(lic_run_path(sanitize)), *args], capture_output=True,
                          text=True, env=full, timeout=timeout)


def run_licm(licm: Path, x: np.ndarray, threads: int = 1, *, sanitize: bool = False,
             force_scalar: bool = False, env: dict[str, str] | None = None) -> np.ndarray:
    """Run the model in ``licm`` on ``x`` (float32 HWC); returns the HWC output."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise LicError(f"run_licm expects an (H, W, C) array, got shape {x.shape}")
    with tempfile.TemporaryDirectory(prefix="lic-run-") as tmp:
        inp, out = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        np.save(inp, np.ascontiguousarray(x, dtype=np.float32))
        proc = run_tool([str(licm), str(inp), str(out), "--threads", str(threads)],
                        sanitize=sanitize, force_scalar=force_scalar, env=env)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            raise LicError(lines[-1].removeprefix("lic-run: error: "))
        return np.load(out)


def grad_licm(licm: Path, x: np.ndarray, g: np.ndarray, threads: int = 1, *,
              sanitize: bool = False, force_scalar: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """The model's output at ``x`` and d<g, model(x)>/dx (lic/gradient.hpp); HWC arrays."""
    x, g = np.asarray(x), np.asarray(g)
    if x.ndim != 3 or g.ndim != 3:
        raise LicError("grad_licm expects (H, W, C) arrays")
    with tempfile.TemporaryDirectory(prefix="lic-run-") as tmp:
        names = ("in", "out", "gout", "gin")
        inp, out, gout, gin = (Path(tmp) / f"{n}.npy" for n in names)
        np.save(inp, np.ascontiguousarray(x, dtype=np.float32))
        np.save(gout, np.ascontiguousarray(g, dtype=np.float32))
        proc = run_tool([str(licm), str(inp), str(out), "--threads", str(threads),
                         "--grad", str(gout), str(gin)],
                        sanitize=sanitize, force_scalar=force_scalar)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            raise LicError(lines[-1].removeprefix("lic-run: error: "))
        return np.load(out), np.load(gin)
