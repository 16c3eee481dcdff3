"""The shipped default model and its entropy tables (lic2cpp.assets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from compressai.models import FactorizedPriorReLU

from lic2cpp import assets
from lic2cpp.cli import main
from lic2cpp.entropy import EntropyModel
from lic2cpp.errors import LicError
from lic2cpp.load import load_model

MAX_SHIPPED_BYTES = 8 * 1024 * 1024


def test_default_model_is_shipped_small_and_loadable() -> None:
    path = assets.default_model_path()
    assert path.stat().st_size + assets.default_entropy_path().stat().st_size <= MAX_SHIPPED_BYTES
    net = load_model(path)
    assert isinstance(net, FactorizedPriorReLU)
    ckpt = torch.load(path, weights_only=False)
    # trained by `lic2cpp train` on the photos, never on Kodak
    assert "photos" in ckpt["config"]["images"]
    assert "kodak" not in ckpt["config"]["images"].lower()
    tables = EntropyModel.load(assets.default_entropy_path())
    assert tables.num_channels == net.g_a[-1].out_channels


def test_missing_assets_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(assets, "DATA_DIR", tmp_path)
    with pytest.raises(LicError, match="default model is missing"):
        assets.default_model_path()
    with pytest.raises(LicError, match="entropy tables are missing"):
        assets.default_entropy_path()
    # `lic2cpp build` without --model asks assets for the default model
    assert main(["build", "-o", str(tmp_path / "out")]) == 1
    assert "default model is missing" in capsys.readouterr().err
    (tmp_path / assets.DEFAULT_MODEL).write_bytes(b"x")
    (tmp_path / assets.DEFAULT_ENTROPY).write_bytes(b"y")
    assert assets.default_model_path() == tmp_path / "default_model.pth"
    assert assets.default_entropy_path() == tmp_path / "default_entropy.lice"
