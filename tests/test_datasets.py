"""Training-set formats (.npy, raw, folder of images) and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lic2cpp.datasets import (
    load_training_set,
    plan_patches,
    training_set_identity,
)
from lic2cpp.errors import LicError

P = 32  # small patches keep the tests fast; the code paths are the same as for 256


def random_patches(n: int, p: int = P, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, p, p, 3), dtype=np.uint8)


def save_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


# --- .npy --------------------------------------------------------------------------------

def test_npy_is_memory_mapped_and_exact(tmp_path: Path) -> None:
    data = random_patches(5)
    np.save(tmp_path / "set.npy", data)
    out = load_training_set(tmp_path / "set.npy", patch_size=P)
    assert isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, data)


def test_npy_subset_is_seeded_and_made_of_original_rows(tmp_path: Path) -> None:
    data = random_patches(20)
    np.save(tmp_path / "set.npy", data)
    a = load_training_set(tmp_path / "set.npy", patch_size=P, max_patches=6, seed=3)
    b = load_training_set(tmp_path / "set.npy", patch_size=P, max_patches=6, seed=3)
    c = load_training_set(tmp_path / "set.npy", patch_size=P, max_patches=6, seed=4)
    assert a.shape == (6, P, P, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rows = [next(i for i in range(20) if np.array_equal(data[i], patch)) for patch in a]
    assert rows == sorted(set(rows))  # distinct rows, kept in file order


def test_npy_max_patches_above_size_keeps_all(tmp_path: Path) -> None:
    np.save(tmp_path / "set.npy", random_patches(3))
    assert len(load_training_set(tmp_path / "set.npy", patch_size=P, max_patches=10)) == 3


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, P, P, 3), dtype=np.float32), "dtype float32"),
        (np.zeros((2, P, P, 4), dtype=np.uint8), "shape (2, 32, 32, 4)"),
        (np.zeros((P, P, 3), dtype=np.uint8), "shape (32, 32, 3)"),
        (np.zeros((2, 16, 16, 3), dtype=np.uint8), "shape (2, 16, 16, 3)"),
        (np.zeros((0, P, P, 3), dtype=np.uint8), "no patches"),
    ],
)
def test_npy_wrong_dtype_or_shape(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(LicError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_training_set(tmp_path / "bad.npy", patch_size=P)


def test_npy_corrupt_header(tmp_path: Path) -> None:
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(LicError, match="cannot read"):
        load_training_set(tmp_path / "bad.npy", patch_size=P)


# --- raw ---------------------------------------------------------------------------------

def test_raw_file_layout(tmp_path: Path) -> None:
    data = random_patches(4)
    (tmp_path / "set.raw").write_bytes(data.tobytes())
    out = load_training_set(tmp_path / "set.raw", patch_size=P)
    np.testing.assert_array_equal(out, data)
    sub = load_training_set(tmp_path / "set.raw", patch_size=P, max_patches=2, seed=0)
    assert sub.shape == (2, P, P, 3)


def test_raw_default_patch_size_is_256(tmp_path: Path) -> None:
    data = random_patches(2, p=256)
    (tmp_path / "set.bin").write_bytes(data.tobytes())
    np.testing.assert_array_equal(load_training_set(tmp_path / "set.bin"), data)


def test_raw_bad_size(tmp_path: Path) -> None:
    (tmp_path / "set.raw").write_bytes(random_patches(2).tobytes() + b"x")
    with pytest.raises(LicError, match="not a multiple"):
        load_training_set(tmp_path / "set.raw", patch_size=P)


def test_raw_empty(tmp_path: Path) -> None:
    (tmp_path / "set.raw").write_bytes(b"")
    with pytest.raises(LicError, match="empty"):
        load_training_set(tmp_path / "set.raw", patch_size=P)


# --- folders -----------------------------------------------------------------------------

def find_offset(image: np.ndarray, patch: np.ndarray) -> tuple[int, int]:
    """Top-left corner of ``patch`` inside ``image`` (brute force, for the tests)."""
    h, w = patch.shape[:2]
    for y in range(image.shape[0] - h + 1):
        for x in range(image.shape[1] - w + 1):
            if np.array_equal(image[y:y + h, x:x + w], patch):
                return x, y
    raise AssertionError("patch not found in image")


def test_folder_patches_are_non_overlapping_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (75, 110, 3), dtype=np.uint8)  # 3x2 patches + margins
    save_png(tmp_path / "a.png", big)
    Image.fromarray(big[:40, :40]).save(tmp_path / "b.ppm")
    (tmp_path / "notes.txt").write_text("not an image")
    out = load_training_set(tmp_path, patch_size=P, seed=0)
    assert out.shape == (3 * 2 + 1, P, P, 3) and out.dtype == np.uint8
    corners = [find_offset(big, patch) for patch in out[:6]]
    xs = sorted({x for x, _ in corners})
    ys = sorted({y for _, y in corners})
    assert len(xs) == 3 and len(ys) == 2
    assert all(b - a == P for a, b in zip(xs, xs[1:], strict=False))
    assert all(b - a == P for a, b in zip(ys, ys[1:], strict=False))
    assert xs[0] + 3 * P <= 110 and ys[0] + 2 * P <= 75
    assert find_offset(big[:40, :40], out[6]) is not None


def test_folder_is_deterministic_per_seed(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for i in range(3):
        save_png(tmp_path / f"{i}.png", rng.integers(0, 256, (50, 90, 3), dtype=np.uint8))
    a = load_training_set(tmp_path, patch_size=P, seed=11)
    b = load_training_set(tmp_path, patch_size=P, seed=11)
    np.testing.assert_array_equal(a, b)
    offsets = {s: plan_patches([(90, 50)] * 3, P, s) for s in range(8)}
    assert len({tuple(v) for v in offsets.values()}) > 1  # the seed moves the grid


def test_folder_max_patches(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    for i in range(3):
        save_png(tmp_path / f"{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    full = load_training_set(tmp_path, patch_size=P, seed=2)
    sub = load_training_set(tmp_path, patch_size=P, max_patches=5, seed=2)
    assert full.shape[0] == 12 and sub.shape[0] == 5
    assert all(any(np.array_equal(s, f) for f in full) for s in sub)


def test_small_image_is_mirrored_to_a_full_patch(tmp_path: Path) -> None:
    small = np.random.default_rng(8).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    save_png(tmp_path / "s.png", small)
    (patch,) = load_training_set(tmp_path, patch_size=P)
    np.testing.assert_array_equal(patch[:10, :20], small)
    np.testing.assert_array_equal(patch[10:20, :20], small[::-1])  # mirrored downwards
    np.testing.assert_array_equal(patch[:10, 20:32], small[:, ::-1][:, :12])


def test_one_pixel_image(tmp_path: Path) -> None:
    save_png(tmp_path / "p.png", np.array([[[1, 2, 3]]], dtype=np.uint8))
    (patch,) = load_training_set(tmp_path, patch_size=P)
    assert (patch == np.array([1, 2, 3], dtype=np.uint8)).all()


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(LicError, match="no images"):
        load_training_set(tmp_path, patch_size=P)


def test_corrupt_image_in_folder(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(LicError, match="broken.png"):
        load_training_set(tmp_path, patch_size=P)


def test_missing_path_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(LicError, match="not found"):
        load_training_set(tmp_path / "nope.npy")
    np.save(tmp_path / "set.npy", random_patches(2))
    with pytest.raises(LicError, match="max-patches"):
        load_training_set(tmp_path / "set.npy", patch_size=P, max_patches=0)
    with pytest.raises(LicError, match="single image"):
        load_training_set(save_png(tmp_path / "one.png", random_patches(1)[0]), patch_size=P)


# --- identity --------------------------------------------------------------------------

def test_identity_follows_writes_and_touches(tmp_path: Path) -> None:
    np.save(tmp_path / "set.npy", random_patches(2))
    first = training_set_identity(tmp_path / "set.npy")
    assert training_set_identity(tmp_path / "set.npy") == first
    st = os.stat(tmp_path / "set.npy")
    os.utime(tmp_path / "set.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert training_set_identity(tmp_path / "set.npy") != first
