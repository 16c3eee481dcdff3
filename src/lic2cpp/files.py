"""Writing files so that a reader never sees a partial one."""

from __future__ import annotations

from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
