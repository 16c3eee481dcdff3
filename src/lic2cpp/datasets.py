"""Training sets: the patches the entropy model is fitted on.

A training set is a uint8 array of RGB patches, shape ``(N, P, P, 3)`` (P = 256 upstream).
It comes in one of three forms:

- a ``.npy`` file holding that array (opened with ``mmap``, so a large set is not read
  into memory until its patches are used);
- a raw headerless file with exactly that layout (its size must be a multiple of
  ``P*P*3``);
- a folder of images (``images.IMAGE_SUFFIXES``), cut into non-overlapping ``P×P`` patches on a
  grid whose offset inside each image is drawn from ``seed``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lic2cpp.errors import LicError
from lic2cpp.images import IMAGE_SUFFIXES, image_size, list_images, read_rgb

NPY_MAGIC = b"\x93NUMPY"


def load_training_set(
    path: str | Path,
    patch_size: int = 256,
    max_patches: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Return the training patches as a uint8 array ``(N, patch_size, patch_size, 3)``.

    ``max_patches`` keeps a random subset (drawn from ``seed``, in file order), so the
    same arguments always give the same patches.
    """
    path = Path(path)
    if patch_size < 1:
        raise LicError(f"patch size must be positive, got {patch_size}")
    if max_patches is not None and max_patches < 1:
        raise LicError(f"--max-patches must be at least 1, got {max_patches}")
    if not path.exists():
        raise LicError(f"training set not found: {path}")
    if path.is_dir():
        return _patches_from_folder(path, patch_size, max_patches, seed)
    if not path.is_file():
        raise LicError(f"training set is neither a file nor a folder: {path}")
    with open(path, "rb") as f:
        magic = f.read(len(NPY_MAGIC))
    if magic == NPY_MAGIC:
        patches = _open_npy(path, patch_size)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise LicError(
            f"training set {path} is a single image; give the folder that holds the images"
        )
    else:
        patches = _open_raw(path, patch_size)
    if len(patches) == 0:
        raise LicError(f"training set {path} holds no patches")
    return _subset(patches, max_patches, seed)


def _open_npy(path: Path, patch_size: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LicError(f"cannot read {path} as a .npy array: {exc}") from exc
    expected = f"uint8 array of shape (N, {patch_size}, {patch_size}, 3)"
    if arr.dtype != np.uint8:
        raise LicError(f"{path}: expected a {expected}, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[1:] != (patch_size, patch_size, 3):
        raise LicError(f"{path}: expected a {expected}, got shape {tuple(arr.shape)}")
    return arr


def _open_raw(path: Path, patch_size: int) -> np.ndarray:
    patch_bytes = patch_size * patch_size * 3
    size = path.stat().st_size
    if size == 0:
        raise LicError(f"training set {path} is empty")
    if size % patch_bytes:
        raise LicError(
            f"{path}: a raw training set must be N×{patch_size}×{patch_size}×3 uint8 "
            f"({patch_bytes} bytes per patch), but its size {size} is not a multiple of that"
        )
    return np.memmap(path, dtype=np.uint8, mode="r",
                     shape=(size // patch_bytes, patch_size, patch_size, 3))


def _subset(patches: np.ndarray, max_patches: int | None, seed: int) -> np.ndarray:
    if max_patches is None or max_patches >= len(patches):
        return patches
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(patches), size=max_patches, replace=False))
    return np.ascontiguousarray(patches[keep])


# --- folders of images -------------------------------------------------------------------

@dataclass(frozen=True)
class PatchSpot:
    """Where one patch comes from: image index and top-left corner."""

    image: int
    x: int
    y: int


def plan_patches(sizes: Iterable[tuple[int, int]], patch_size: int, seed: int
                 ) -> list[PatchSpot]:
    """Non-overlapping patch grid per image, offset at random inside the spare margin.

    An image smaller than a patch in a dimension yields one patch there, padded by
    mirroring (see :func:`cut_patch`), so small images still contribute their content.
    """
    rng = np.random.default_rng(seed)
    spots = []
    for index, (w, h) in enumerate(sizes):
        nx, ny = max(1, w // patch_size), max(1, h // patch_size)
        x0 = int(rng.integers(0, max(0, w - nx * patch_size) + 1))
        y0 = int(rng.integers(0, max(0, h - ny * patch_size) + 1))
        spots += [PatchSpot(index, x0 + i * patch_size, y0 + j * patch_size)
                  for j in range(ny) for i in range(nx)]
    return spots


def cut_patch(image: np.ndarray, spot: PatchSpot, patch_size: int) -> np.ndarray:
    patch = image[spot.y:spot.y + patch_size, spot.x:spot.x + patch_size]
    ph, pw = patch_size - patch.shape[0], patch_size - patch.shape[1]
    if ph or pw:
        # Mirror rather than pad with a constant, which would add fake flat areas and edges;
        # "symmetric" also works for 1-pixel images, and repeats until the patch is full.
        patch = np.pad(patch, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
    return patch


def _patches_from_folder(folder: Path, patch_size: int, max_patches: int | None, seed: int
                         ) -> np.ndarray:
    files = list_images(folder, "training-set folder")
    if not files:
        raise LicError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in training-set folder {folder}"
        )
    spots = plan_patches((image_size(f) for f in files), patch_size, seed)
    if max_patches is not None and max_patches < len(spots):
        rng = np.random.default_rng(seed + 1)
        keep = np.sort(rng.choice(len(spots), size=max_patches, replace=False))
        spots = [spots[i] for i in keep]
    out = np.empty((len(spots), patch_size, patch_size, 3), dtype=np.uint8)
    by_image: dict[int, list[int]] = {}
    for k, spot in enumerate(spots):
        by_image.setdefault(spot.image, []).append(k)
    show = len(by_image) > 4 and progress_enabled()
    for index in tqdm(sorted(by_image), desc="cutting patches", unit="image", disable=not show):
        image = read_rgb(files[index])
        for k in by_image[index]:
            out[k] = cut_patch(image, spots[k], patch_size)
    return out


def check_training_set(path: str | Path, patch_size: int = 256) -> None:
    """Cheap validation before a long build: format and size, no pixels decoded."""
    path = Path(path)
    if path.is_dir():
        if not list_images(path, "training-set folder"):
            raise LicError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) in training-set folder {path}"
            )
        return
    load_training_set(path, patch_size=patch_size)  # a file: mmap'd, only the header read


def progress_enabled() -> bool:
    """Progress bars on an interactive terminal, unless LIC2CPP_NO_PROGRESS is set."""
    return os.environ.get("LIC2CPP_NO_PROGRESS") is None and sys.stderr.isatty()


def training_set_identity(path: str | Path) -> dict[str, object]:
    """What identifies a training set for caching: resolved path, sizes and mtimes.

    Contents are not hashed: an upstream training set is tens of gigabytes. Any write to a
    file (or a touch) changes its mtime and so the identity.
    """
    path = Path(path)
    if not path.exists():
        raise LicError(f"training set not found: {path}")
    path = path.resolve()
    if path.is_dir():
        files = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in list_images(path)]
        return {"path": str(path), "kind": "folder", "files": files}
    st = path.stat()
    return {"path": str(path), "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def looks_like_evaluation_set(path: str | Path) -> bool:
    """True for a path under a folder named like the Kodak evaluation set.

    Only a guard against the obvious mistake; a copy elsewhere cannot be recognised.
    """
    parts = [p.lower() for p in Path(path).resolve().parts]
    return any(p == "kodak" or p.startswith("kodim") for p in parts)
