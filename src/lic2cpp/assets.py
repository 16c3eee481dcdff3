"""The assets shipped inside the package: the default model and its entropy tables.

``data/default_model.pth`` is a ``{"model": net}`` checkpoint trained by ``lic2cpp train`` on
the training photos, ``data/default_entropy.lice`` the tables fitted for it on the same
photos (docs/default-model.md). ``lic2cpp build`` without ``--model`` and ``lic2cpp demo``
use them; nothing else in the package knows where they live.
"""

from __future__ import annotations

from pathlib import Path

from lic2cpp.errors import LicError

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_MODEL = "default_model.pth"
DEFAULT_ENTROPY = "default_entropy.lice"


def default_model_path() -> Path:
    """The default model shipped in the package (a ``{"model": net}`` checkpoint)."""
    path = DATA_DIR / DEFAULT_MODEL
    if not path.is_file():
        raise LicError(f"the default model is missing from the package ({path})")
    return path


def default_entropy_path() -> Path:
    """Entropy tables fitted for the default model on the training photos (``.lice``)."""
    path = DATA_DIR / DEFAULT_ENTROPY
    if not path.is_file():
        raise LicError(f"the default model's entropy tables are missing ({path})")
    return path
