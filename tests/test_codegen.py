"""lic2cpp.codegen without compiling: downsampling factor, generated source, input checks, CLI.

The compiled programs themselves are tested in test_codec_programs.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_codec_programs import CHANNELS, write_tiny_model

from lic2cpp.cli import main
from lic2cpp.codegen import build_codec, embedded_source, png_link_args
from lic2cpp.entropy import fit_entropy_model
from lic2cpp.errors import LicError


def test_generated_source_embeds_files_not_text(tmp_path: Path) -> None:
    text = embedded_source(tmp_path / "net.licm", tmp_path / "t.lice", 16, 1, 2, 3, "decoder")
    assert f'.incbin "{(tmp_path / "net.licm").resolve()}"' in text
    assert "16u, 0x1ull, 0x2ull" in text
    assert len(text) < 4000  # no weights as C++ initialisers
    with pytest.raises(LicError):
        embedded_source(Path('/tmp/a"b'), tmp_path / "t.lice", 16, 1, 2, 3, "decoder")


def test_static_png_preferred() -> None:
    args = png_link_args()
    assert args[-1] == "-lm"
    if Path("/usr/lib/x86_64-linux-gnu/libpng16.a").is_file():
        assert args[0].endswith("libpng16.a")


def test_build_codec_checks_inputs_before_compiling(tmp_path: Path) -> None:
    ga, gs = write_tiny_model(tmp_path, seed=2)
    wrong = fit_entropy_model(np.random.default_rng(0).normal(
        size=(4, CHANNELS + 1, 4, 4)).astype(np.float32))
    wrong.save(tmp_path / "wrong.lice")
    with pytest.raises(LicError, match="channel counts do not match"):
        build_codec(ga, gs, tmp_path / "wrong.lice", tmp_path / "out")
    with pytest.raises(LicError, match="not found"):
        build_codec(ga, gs, tmp_path / "missing.lice", tmp_path / "out")
    (tmp_path / "junk.lice").write_bytes(b"junk")
    with pytest.raises(LicError):
        build_codec(ga, gs, tmp_path / "junk.lice", tmp_path / "out")
    with pytest.raises(LicError):  # g_s given as g_a: 12 input channels, not RGB
        build_codec(gs, gs, tmp_path / "wrong.lice", tmp_path / "out")
    assert not (tmp_path / "out" / "encoder").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["codegen", "--help"])
    assert exc.value.code == 0
    assert "entropy" in capsys.readouterr().out
    ga, gs = write_tiny_model(tmp_path, seed=3)
    assert main(["codegen", str(ga), str(gs), str(tmp_path / "none.lice"), "-o",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "error" in err and len(err.strip().splitlines()) == 1
