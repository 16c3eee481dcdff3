"""Shared test fixtures: where the read-only data and checkpoints live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
KODAK = SHARED / "data" / "kodak"
PHOTOS = SHARED / "data" / "photos"

RELU_CKPT = MODELS / "fp_relu_128_192.pth"
GDN_CKPT = MODELS / "fp_gdn_128_192.pth"
GDN_INIT_CKPT = MODELS / "fp_gdn_128_192_init.pth"
# lic2cpp's own small ScaleHyperprior(32, 48), tests/data/README.md
SHP_CKPT = ROOT / "tests" / "data" / "shp_32_48.pth"


@pytest.fixture(scope="session")
def sanitized_codec(tmp_path_factory: pytest.TempPathFactory):
    """The tiny encoder/decoder of test_codec_programs.py built with ASan+UBSan (slow to
    compile, so once per session for every test that runs the programs)."""
    from test_codec_programs import Codec

    return Codec(tmp_path_factory.mktemp("codec"), seed=0)


@pytest.fixture(scope="session")
def relu_net():
    import torch

    return torch.load(RELU_CKPT, weights_only=False)["model"].eval()


@pytest.fixture(scope="session")
def gdn_net():
    import torch

    return torch.load(GDN_CKPT, weights_only=False)["model"].eval()
