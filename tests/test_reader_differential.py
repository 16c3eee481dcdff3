"""Differential test of the two readers of each model format: Python (lic2cpp.modelformat,
lic2cpp.entropy) and C++ (lic/model_format.hpp, codec/entropy/context_tables.hpp, through
tests/cpp/read_check.cpp built with ASan+UBSan).

Both must accept and refuse exactly the same files; for `.licm` they must also give the
same message. The files are real ones and deterministic mutations of them (bit flips,
32-bit fields set to boundary values, insertions, deletions, truncations), most with the
header's size and fingerprint recomputed so the mutation reaches the field checks.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lic2cpp import modelformat
from lic2cpp.entropy import EntropyModel, fit_entropy_model
from lic2cpp.errors import LicError
from lic2cpp.modelformat import decode_licm
from lic2cpp.toolchain import compile_program, cpp_dir

COUNT = 400  # mutated files per format
BOUNDARY_U32 = [0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 4095, 4096, 4097, 65535, 65536,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def mutate(data: bytes, rng: np.random.Generator, skip: int) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 6))
        pos = int(rng.integers(skip, max(skip + 1, len(out))))
        if kind == 0 and pos < len(out):
            out[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1 and pos < len(out):
            out[pos] = int(rng.integers(0, 256))
        elif kind == 2 and pos + 4 <= len(out):
            pos -= (pos - skip) % 4
            out[pos:pos + 4] = struct.pack("<I", BOUNDARY_U32[int(rng.integers(0, 18))])
        elif kind == 3:
            out[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif kind == 4:
            del out[pos:pos + int(rng.integers(1, 9))]
        else:
            del out[pos:]
    return bytes(out)


def refresh(data: bytes, fingerprint: object) -> bytes:
    """Body size and fingerprint recomputed (the header layout .licm and .lice share)."""
    if len(data) < 24:
        return data
    body = data[24:]
    return data[:8] + struct.pack("<QQ", len(body), fingerprint(body)) + body


def variants(originals: list[bytes], fingerprint: object, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = list(originals)
    for i in range(COUNT):
        data = mutate(originals[i % len(originals)], rng, skip=24 if i % 4 else 0)
        out.append(refresh(data, fingerprint) if i % 4 else data)
    return out


def cpp_results(kind: str, files: list[bytes], folder: Path) -> list[str]:
    exe = compile_program([cpp_dir().parent / "tests" / "cpp" / "read_check.cpp"],
                          "read-check-asan", sanitize=True)
    paths = []
    for i, data in enumerate(files):
        paths.append(folder / f"{i}.{kind}")
        paths[-1].write_bytes(data)
    proc = subprocess.run([str(exe), kind, *map(str, paths)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(files)
    return lines


def python_result(read: object, data: bytes) -> str:
    try:
        read(data)
    except LicError as exc:
        return f"error: {exc}"
    return "ok"


def licm_originals() -> list[bytes]:
    from test_untrusted_parsers import small_licm

    return [small_licm()]


def lice_originals() -> list[bytes]:
    rng = np.random.default_rng(2)
    latents = rng.laplace(0, 1.5, (5, 3, 4, 4)).astype(np.float32)
    latents[0, 0, 0, 0] = 300.0
    root = cpp_dir().parent / "src" / "lic2cpp" / "data" / "default_entropy.lice"
    return [fit_entropy_model(latents).to_bytes(), root.read_bytes()]


@pytest.mark.parametrize("kind", ["licm", "lice"])
def test_python_and_cpp_readers_agree(kind: str, tmp_path: Path) -> None:
    if kind == "licm":
        files = variants(licm_originals(), modelformat.fingerprint, seed=1)
        read = decode_licm
    else:
        files = variants(lice_originals(), modelformat.fingerprint, seed=2)
        read = EntropyModel.from_bytes
    cpp = cpp_results(kind, files, tmp_path)
    py = [python_result(read, data) for data in files]
    accepted = sum(r == "ok" for r in py)
    refused = len(py) - accepted
    assert accepted >= 1 and refused >= COUNT // 2  # both sides of the checks are exercised
    for i, (a, b) in enumerate(zip(py, cpp, strict=True)):
        if kind == "licm":
            assert a == b, f"file {i}: Python says {a!r}, C++ {b!r}"
        else:
            assert (a == "ok") == (b == "ok"), f"file {i}: Python says {a!r}, C++ {b!r}"
