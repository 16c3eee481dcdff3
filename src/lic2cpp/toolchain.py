"""Finding the C++ sources and compiling them: the one place that calls the compiler.

Compiled programs are cached under a key made of the sources' contents and the flags,
so tests and repeated builds compile each program once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lic2cpp.errors import LicError

WARNING_FLAGS = ["-Wall", "-Wextra"]
RELEASE_FLAGS = ["-O2", "-DNDEBUG"]
# The test suite's sanitized programs are compiled far more than they run: -O0 and -g1 (line
# tables only, all a sanitizer's stack trace needs for file:line) build parallel_check.cpp in
# 27 s, against 51 s at -O1 -g1 and 71 s at -O1 -g; the suite with nothing sanitized cached
# took 11 min 48 s against 17 min 50 s at -O1 -g1 (docs/performance.md, "The test suite").
SANITIZE_FLAGS = ["-O0", "-g1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                  "-fno-sanitize-recover=all"]


def cpp_dir() -> Path:
    """The folder holding the C++ runtime and codec sources (``cpp/`` of the checkout)."""
    env = os.environ.get("LIC2CPP_CPP_DIR")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parent / "cpp",  # installed wheel layout
        Path(__file__).resolve().parents[2] / "cpp",  # source checkout / editable install
    ]
    for path in candidates:
        if (path / "lic").is_dir():
            return path
    raise LicError("cannot find lic2cpp's C++ sources (set LIC2CPP_CPP_DIR to the cpp/ folder)")


def cache_dir() -> Path:
    root = os.environ.get("LIC2CPP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lic2cpp"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_compiler() -> str:
    for name in [os.environ.get("CXX"), "g++", "c++", "clang++"]:
        if name and shutil.which(name):
            return name
    raise LicError("no C++ compiler found (install g++ or set CXX)")


_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def source_closure(sources: Sequence[Path], include_dirs: Sequence[Path] = ()) -> list[Path]:
    """``sources`` and every file they ``#include "..."``, transitively, in a stable order.

    Quoted includes are looked up beside the including file, then in ``include_dirs`` and
    ``cpp_dir()`` (as the compiler does); system headers (``<...>``) are not followed. An
    include under a false ``#if`` still counts: the closure may be larger than what is
    compiled, never smaller.
    """
    dirs = [*[Path(d).resolve() for d in include_dirs], cpp_dir().resolve()]
    seen: dict[Path, None] = {}
    todo = [Path(s).resolve() for s in sources]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for name in _INCLUDE.findall(path.read_text(errors="replace")):
            for base in (path.parent, *dirs):
                found = base / name
                if found.is_file():
                    todo.append(found.resolve())
                    break
    return sorted(seen)


def _hash_inputs(sources: Sequence[Path], flags: Sequence[str], include_dirs: Sequence[Path]
                 ) -> str:
    digest = hashlib.sha256()
    for flag in flags:
        digest.update(flag.encode() + b"\0")
    # Only what the program includes: editing another program's source or a test harness
    # does not invalidate it.
    for path in source_closure(sources, include_dirs):
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _compile_flags(sanitize: bool, extra_flags: Sequence[str]) -> list[str]:
    return ["-std=c++17", *WARNING_FLAGS, *(SANITIZE_FLAGS if sanitize else RELEASE_FLAGS),
            *extra_flags, "-pthread"]


def _run(cmd: list[str], tmp: Path, output: Path, what: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = (proc.stderr.strip().splitlines() or ["(no output)"])
        raise LicError(f"{what} failed: " + " | ".join(first[:8]))
    os.replace(tmp, output)


def compile_program(
    sources: Sequence[Path | str],
    name: str,
    *,
    output: Path | None = None,
    extra_flags: Sequence[str] = (),
    sanitize: bool = False,
    include_dirs: Sequence[Path] = (),
    libs: Sequence[str] = (),
) -> Path:
    """Compile ``sources`` into an executable and return its path.

    Without ``output`` the program lands in the cache, keyed by the inputs' contents.
    ``libs`` are linker arguments placed after the sources (static libraries need that order).
    """
    compiler = find_compiler()
    srcs = [Path(s).resolve() for s in sources]
    for src in srcs:
        if not src.is_file():
            raise LicError(f"C++ source not found: {src}")
    incs = [cpp_dir(), *[Path(i).resolve() for i in include_dirs]]
    flags = _compile_flags(sanitize, extra_flags)
    if output is None:
        key = _hash_inputs(srcs, [compiler, *flags, *libs], incs)
        output = cache_dir() / "bin" / f"{name}-{key}"
        if output.is_file():
            return output
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, *flags, *[f"-I{i}" for i in incs], *map(str, srcs), *libs, "-o", str(tmp)]
    _run(cmd, tmp, output, f"compiling {name}")
    return output


# Library objects: position independent (they go into the shared library too) and with
# only the C interface visible outside it.
LIBRARY_FLAGS = ["-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden"]


def compile_object(source: Path | str, name: str, *, sanitize: bool = False,
                   extra_flags: Sequence[str] = LIBRARY_FLAGS) -> Path:
    """Compile one source into an object file in the cache, keyed like ``compile_program``."""
    compiler = find_compiler()
    src = Path(source).resolve()
    if not src.is_file():
        raise LicError(f"C++ source not found: {src}")
    incs = [cpp_dir()]
    flags = _compile_flags(sanitize, extra_flags)
    key = _hash_inputs([src], [compiler, *flags, "-c"], incs)
    output = cache_dir() / "obj" / f"{name}-{key}.o"
    if output.is_file():
        return output
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    cmd = [compiler, *flags, *[f"-I{i}" for i in incs], "-c", str(src), "-o", str(tmp)]
    _run(cmd, tmp, output, f"compiling {name}")
    return output


def archive(objects: Sequence[Path], output: Path) -> Path:
    """A static library of ``objects`` (deterministic: no timestamps)."""
    ar = shutil.which("ar")
    if ar is None:
        raise LicError("no archiver found (install binutils)")
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    _run([ar, "rcsD", str(tmp), *map(str, objects)], tmp, output, f"archiving {output.name}")
    return output


def link(inputs: Sequence[Path | str], output: Path, *, shared: bool = False,
         sanitize: bool = False, libs: Sequence[str] = ()) -> Path:
    """Link objects and libraries into ``output``: an executable, or a shared library."""
    compiler = find_compiler()
    flags = ["-pthread", *(["-fsanitize=address,undefined"] if sanitize else [])]
    if shared:
        flags += ["-shared", f"-Wl,-soname,{output.name}"]
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    output.parent.mkdir(parents=True, exist_ok=True)
    _run([compiler, *flags, *map(str, inputs), *libs, "-o", str(tmp)], tmp, output,
         f"linking {output.name}")
    return output
