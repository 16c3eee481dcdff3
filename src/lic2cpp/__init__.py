"""lic2cpp: turn a trained CompressAI model into a standalone C++ encoder and decoder."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `from lic2cpp import Codec` without importing numpy and cffi for every CLI command.
    if name == "Codec":
        from lic2cpp.codec_library import Codec

        return Codec
    raise AttributeError(f"module 'lic2cpp' has no attribute {name!r}")
