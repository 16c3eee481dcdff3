"""`lic2cpp build` end to end on a tiny model: the executables match PyTorch, every step is
cached by its inputs, `lic2cpp eval` measures what the files say, and errors are one line.

One real build (convert + fit + codegen, about a minute on 2 cores) is shared by the tests
of this module; the caching test works on a copy of it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lic2cpp.build
import lic2cpp.codegen
from lic2cpp.build import MANIFEST, BuildOptions, build
from lic2cpp.cli import main

PATCH = 64  # small training patches: the code paths are those of 256


def tiny_net(seed: int = 0) -> torch.nn.Module:
    """FactorizedPriorReLU(8, 16), random init, rescaled so that the latents span several
    integers and the output is not clipped flat (a bare random init codes all zeros)."""
    from compressai.models import FactorizedPriorReLU

    torch.manual_seed(seed)
    net = FactorizedPriorReLU(N=8, M=16).eval()
    with torch.no_grad():
        net.g_a[-1].weight.mul_(100.0)
        net.g_s[-1].weight.mul_(10.0)
        net.g_s[-1].bias.fill_(0.5)
    net.update(force=True)
    return net


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """Gradients plus noise: structure for the transforms, any size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255.0 / max(w, 1), yy * 255.0 / max(h, 1),
                     (xx + yy) * 127.0 / max(h + w, 1)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def training_patches(seed: int) -> np.ndarray:
    return np.stack([smooth_image(PATCH, PATCH, seed + i) for i in range(6)])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("build")
    torch.save({"model": tiny_net()}, root / "tiny.pth")
    np.save(root / "set.npy", training_patches(0))
    out = root / "out"
    with pytest.MonkeyPatch.context() as m:
        # The code's hashes are taken once: an edit elsewhere in the tree while the tests
        # run must not look like a change of inputs (test_code_hashes covers them).
        cpp_hash = lic2cpp.build.cpp_sources_hash()
        m.setattr(lic2cpp.build, "cpp_sources_hash", lambda: cpp_hash)
        module_hashes: dict[tuple[str, ...], str] = {}
        real_modules_hash = lic2cpp.build.modules_hash
        m.setattr(lic2cpp.build, "modules_hash",
                  lambda names: module_hashes.setdefault(names, real_modules_hash(names)))
        result = build(BuildOptions(model=root / "tiny.pth", training_set=root / "set.npy",
                                    out_dir=out, patch_size=PATCH, progress=False,
                                    log=lambda _: None))
        assert result.ran == ["convert", "fit", "codegen"]
        yield {"root": root, "model": root / "tiny.pth", "set": root / "set.npy", "out": out}


def test_code_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step keys follow the C++ sources and the Python modules."""
    shutil.copytree(Path(lic2cpp.build.__file__).parents[2] / "cpp", tmp_path / "cpp")
    monkeypatch.setenv("LIC2CPP_CPP_DIR", str(tmp_path / "cpp"))
    before = lic2cpp.build.cpp_sources_hash()
    assert lic2cpp.build.cpp_sources_hash() == before
    # Only what the codec programs compile counts: lic-run's source is not part of it.
    tool = tmp_path / "cpp" / "tools" / "lic_run.cpp"
    tool.write_text(tool.read_text() + "\n// changed\n")
    assert lic2cpp.build.cpp_sources_hash() == before
    for header in (tmp_path / "cpp" / "codec" / "decoder.hpp",
                   tmp_path / "cpp" / "lic" / "kernels" / "f32-igemm" / "scalar.hpp"):
        header.write_text(header.read_text() + "\n// changed\n")
        assert lic2cpp.build.cpp_sources_hash() != before
        before = lic2cpp.build.cpp_sources_hash()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod_a.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    first = lic2cpp.build.modules_hash(("mod_a", "mod_missing"))
    (tmp_path / "pkg" / "mod_a.py").write_text("X = 2\n")
    assert lic2cpp.build.modules_hash(("mod_a", "mod_missing")) != first


def test_report_and_manifest(built: dict[str, Path]) -> None:
    out = built["out"]
    for name in ("encoder", "decoder", "g_a.licm", "g_s.licm", "entropy.lice", MANIFEST):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    net = tiny_net()
    params = sum(p.numel() for p in net.parameters())
    assert "FactorizedPriorReLU, N = 8, M = 16" in report
    assert f"parameters: {params:,}" in report
    assert "16×4×4 for a 64×64 patch" in report
    assert "6 patches of 64×64" in report
    assert "| 15 |" in report  # one row per latent channel
    assert "with contexts" in report and "no contexts" in report


def check_against_pytorch(out: Path, model: Path, tmp_path: Path, h: int, w: int, ext: str
                          ) -> None:
    """Encode and decode a smooth h×w image with OUT's executables; the decoded pixels must
    be PyTorch's g_s on the decoder's own de-quantised latent (to 1 in 8 bits), and that
    latent CompressAI's round(g_a(x) - median) + median on the edge-padded image (the
    default offsets are the entropy bottleneck's medians)."""
    from lic2cpp.entropy import EntropyModel

    net = torch.load(model, weights_only=False)["model"].eval()
    means = net.entropy_bottleneck.quantiles[:, 0, 1].detach().numpy()
    assert np.array_equal(EntropyModel.load(out / "entropy.lice").offsets, means)
    img = smooth_image(h, w, seed=h)
    src = tmp_path / f"in{h}{ext}"
    Image.fromarray(img).save(src)
    subprocess.run([str(out / "encoder"), str(src), str(tmp_path / "x.bin")],
                   check=True, capture_output=True)
    subprocess.run([str(out / "decoder"), str(tmp_path / "x.bin"),
                    str(tmp_path / "x.png"), "--dump-latent", str(tmp_path / "y.npy")],
                   check=True, capture_output=True)
    latent = np.load(tmp_path / "y.npy")
    ph, pw = -(-h // 16), -(-w // 16)
    assert latent.shape == (ph, pw, 16) and latent.dtype == np.float32
    with torch.no_grad():
        x_hat = net.g_s(torch.from_numpy(latent).permute(2, 0, 1)[None])
    ref = np.floor(x_hat[0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy().astype(
        np.float64) * 255 + 0.5)
    decoded = np.asarray(Image.open(tmp_path / "x.png").convert("RGB"), dtype=np.float64)
    assert decoded.shape == (h, w, 3)
    assert np.abs(decoded - ref).max() <= 1
    assert len(np.unique(decoded)) > (1 if h * w == 1 else 10)  # not a flat image
    padded = np.pad(img, ((0, ph * 16 - h), (0, pw * 16 - w), (0, 0)), mode="edge")
    with torch.no_grad():
        y = net.g_a(torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255)
    y_hat = np.rint(y[0].permute(1, 2, 0).numpy() - means) + means
    assert np.mean(np.abs(latent - y_hat) > 1e-4) <= 0.01
    assert len(np.unique(np.rint(latent - means))) > 2  # the latent is not trivial


def test_executables_match_pytorch(built: dict[str, Path], tmp_path: Path) -> None:
    """Odd sizes exercise the padding and the crop."""
    for (h, w), ext in (((48, 64), ".png"), ((37, 23), ".ppm"), ((1, 1), ".png")):
        check_against_pytorch(built["out"], built["model"], tmp_path, h, w, ext)


def test_eval_cli_end_to_end(built: dict[str, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    sizes = {"a.png": (176, 192), "b.png": (40, 56)}
    for name, (h, w) in sizes.items():
        Image.fromarray(smooth_image(h, w, seed=w)).save(images / name)
    rc = main(["eval", str(built["out"]), "--images", str(images),
               "--csv", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "rd.png")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "a.png" in table and "average" in table and " bits, PSNR " in table
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [(r["image"], r["codec"]) for r in rows] == [
        ("a.png", "lic2cpp"), ("a.png", "compressai"), ("b.png", "lic2cpp"),
        ("b.png", "compressai"), ("AVERAGE", "lic2cpp"), ("AVERAGE", "compressai")]
    for row in rows[:4:2]:  # lic2cpp rows: bpp from the file the encoder writes
        h, w = sizes[row["image"]]
        subprocess.run([str(built["out"] / "encoder"), str(images / row["image"]),
                        str(tmp_path / "x.bin")], check=True)
        size = (tmp_path / "x.bin").stat().st_size
        assert int(row["bytes"]) == size
        assert float(row["bpp"]) == pytest.approx(8 * size / (h * w))
        subprocess.run([str(built["out"] / "decoder"), str(tmp_path / "x.bin"),
                        str(tmp_path / "x.png")], check=True, capture_output=True)
        dec = np.asarray(Image.open(tmp_path / "x.png").convert("RGB"), dtype=np.float64)
        ref = np.asarray(Image.open(images / row["image"]), dtype=np.float64)
        mse = np.mean((dec - ref) ** 2)
        assert float(row["psnr"]) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert rows[0]["ms_ssim"] != "nan" and rows[2]["ms_ssim"] == "nan"  # 40 px < 161
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_rdoq_end_to_end(built: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(smooth_image(48, 64, seed=3)).save(images / "a.png")
    rc = main(["eval", str(built["out"]), "--images", str(images), "--no-compressai",
               "--rdoq", "0.0003,0.003", "--threads", "2", "--csv", str(tmp_path / "r.csv"),
               "--plot", str(tmp_path / "rd.png")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "rdoq=0.0003" in table and "RDOQ at the PSNR of plain rounding" in table
    rows = {r["codec"]: r for r in csv.DictReader(open(tmp_path / "r.csv"))
            if r["image"] == "a.png"}
    assert set(rows) == {"lic2cpp", "lic2cpp rdoq=0.0003", "lic2cpp rdoq=0.003"}
    for lam in ("0", "0.0003", "0.003"):  # each row is what the encoder writes with --rdoq
        subprocess.run([str(built["out"] / "encoder"), str(images / "a.png"),
                        str(tmp_path / "x.bin"), "--rdoq", lam], check=True)
        codec = "lic2cpp" if lam == "0" else f"lic2cpp rdoq={lam}"
        assert int(rows[codec]["bytes"]) == (tmp_path / "x.bin").stat().st_size
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    rc = main(["eval", str(built["out"]), "--images", str(images), "--rdoq", "0.001,-1"])
    assert rc == 1 and "--rdoq" in capsys.readouterr().err


def test_build_caching(built: dict[str, Path], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs last among the tests that use the build: it changes the inputs in place (the
    compiler cache keys on the generated sources' paths, so a copy would recompile) and
    restores them."""
    out, train, model = built["out"], built["set"], built["model"]
    original_set = train.read_bytes()
    logs: list[str] = []

    def run(training_set: Path = train) -> list[str]:
        opts = BuildOptions(model=model, training_set=training_set, out_dir=out,
                            patch_size=PATCH, progress=False, log=logs.append)
        return build(opts).ran

    encoder_mtime = (out / "encoder").stat().st_mtime_ns
    codegen_key = json.loads((out / MANIFEST).read_text())["steps"]["codegen"]["key"]
    assert run() == []  # nothing changed: nothing to do
    assert "[1/3] convert: up to date" in logs and "[3/3] codegen: up to date" in logs
    assert (out / "encoder").stat().st_mtime_ns == encoder_mtime

    # Another training-set path: only the fit runs; same tables, so no codegen.
    shutil.copy2(train, tmp_path / "copy.npy")
    assert run(tmp_path / "copy.npy") == ["fit"]
    assert run() == ["fit"]

    # Ready-made tables instead of a fit (`--entropy`): the same tables, so no codegen.
    shutil.copy2(out / "entropy.lice", tmp_path / "given.lice")
    given = BuildOptions(model=model, training_set=None, entropy=tmp_path / "given.lice",
                         out_dir=out, patch_size=PATCH, progress=False, log=logs.append)
    assert build(given).ran == ["fit"]
    assert "given, not fitted here" in (out / "report.md").read_text()
    assert run() == ["fit"]
    assert "6 patches of 64×64" in (out / "report.md").read_text()

    st = train.stat()  # touch: the identity changes, the refit gives the same tables
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    entropy_sha = sha(out / "entropy.lice")
    assert run() == ["fit"]
    assert sha(out / "entropy.lice") == entropy_sha

    # New content: fit and codegen (compilation replaced by a recorder, to save a minute).
    calls: list[tuple[Path, ...]] = []

    def fake_codec(ga: Path, gs: Path, entropy: Path, out_dir: Path,
                   **options: object) -> tuple[Path, Path]:
        calls.append((Path(ga), Path(gs), Path(entropy)))
        for name in ("encoder", "decoder", *lic2cpp.codegen.LIBRARY_FILES):
            (Path(out_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / name).write_text(f"placeholder {len(calls)}")
        return Path(out_dir) / "encoder", Path(out_dir) / "decoder"

    model_bytes = model.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(lic2cpp.codegen, "build_codec", fake_codec)
        # The offsets are part of the fit's key, λ too for rd; the report names them.
        def run_offsets(mode: str, lmbda: float | None = None) -> list[str]:
            return build(BuildOptions(model=model, training_set=train, out_dir=out,
                                      patch_size=PATCH, offsets=mode, lmbda=lmbda,
                                      progress=False, log=logs.append)).ran

        assert run_offsets("mean") == ["fit", "codegen"]
        assert "- mean (the training latents' per-channel means)" in (
            out / "report.md").read_text()
        assert run_offsets("rd", 0.01) == ["fit", "codegen"]
        assert "λ = 0.01 from --lambda" in (out / "report.md").read_text()
        assert run_offsets("rd", 0.01) == []
        assert "fit" in run_offsets("rd", 0.02)
        assert run() == ["fit", "codegen"]  # back to the medians: the first tables
        assert sha(out / "entropy.lice") == entropy_sha
        assert "- median (the model's entropy-bottleneck medians" in (
            out / "report.md").read_text()
        calls.clear()
        np.save(train, training_patches(100))
        assert run() == ["fit", "codegen"]
        assert sha(out / "entropy.lice") != entropy_sha
        assert calls == [(out / "g_a.licm", out / "g_s.licm", out / "entropy.lice")]
        # A new model changes everything downstream.
        torch.save({"model": tiny_net(seed=1)}, model)
        assert run() == ["convert", "fit", "codegen"]
        assert len(calls) == 2
        model.write_bytes(model_bytes)
        assert run() == ["convert", "fit", "codegen"]

    # Back to the first training set: the real codegen again, with the first build's key
    # (the same inputs), and working executables.
    train.write_bytes(original_set)
    assert run() == ["fit", "codegen"]
    assert json.loads((out / MANIFEST).read_text())["steps"]["codegen"]["key"] == codegen_key
    check_against_pytorch(out, model, tmp_path, 40, 24, ".png")
    # A deleted or modified output is rebuilt by its step alone.
    (out / "decoder").unlink()
    assert run() == ["codegen"]
    (out / "g_s.licm").write_bytes(b"garbage")
    assert run() == ["convert"]  # the same g_s.licm again, so no codegen
    # --force redoes everything.
    forced = build(BuildOptions(model=model, training_set=train, out_dir=out, force=True,
                                patch_size=PATCH, progress=False, log=logs.append))
    assert forced.ran == ["convert", "fit", "codegen"]
    assert json.loads((out / MANIFEST).read_text())["steps"]["codegen"]["key"] == codegen_key


@pytest.mark.parametrize("case", ["missing model", "missing set", "bad raw set", "out is file",
                                  "empty folder"])
def test_build_cli_errors_are_one_line(case: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """Each error is found before the model is loaded (it is not a model here)."""
    (tmp_path / "m.pth").write_bytes(b"not read")
    np.save(tmp_path / "set.npy", training_patches(0))
    model, train, out = str(tmp_path / "m.pth"), str(tmp_path / "set.npy"), str(tmp_path / "o")
    if case == "missing model":
        model = str(tmp_path / "none.pth")
    elif case == "missing set":
        train = str(tmp_path / "none.npy")
    elif case == "bad raw set":
        (tmp_path / "set.raw").write_bytes(b"\0" * 12345)
        train = str(tmp_path / "set.raw")
    elif case == "out is file":
        (tmp_path / "o").write_text("x")
    else:
        (tmp_path / "empty").mkdir()
        train = str(tmp_path / "empty")
    rc = main(["build", "--model", model, "--training-set", train, "-o", out,
               "--patch-size", str(PATCH)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("lic2cpp build: error:"), err


def test_build_cli_needs_one_source_of_tables(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    # a factorized-prior model codes with fitted tables by default: they need a source
    torch.save({"model": tiny_net()}, tmp_path / "m.pth")
    base = ["build", "--model", str(tmp_path / "m.pth"), "-o", str(tmp_path / "o")]
    for extra, message in (([], "--training-set is required"),
                           (["--training-set", "a", "--entropy", "b"], "not both"),
                           (["--entropy", str(tmp_path / "none.lice")], "cannot read"),
                           (["--entropy", str(tmp_path / "m.pth")], "m.pth"),
                           (["--entropy", "b", "--offsets", "mean"], "carry their own offsets"),
                           (["--training-set", "a", "--lambda", "0.1"], "only used with")):
        assert main(base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_build_cli_in_a_subprocess_missing_model(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lic2cpp", "build", "--model",
                           str(tmp_path / "m.pth"), "--training-set", str(tmp_path),
                           "-o", str(tmp_path / "o")], capture_output=True, text=True)
    lines = [ln for ln in proc.stderr.splitlines() if "Warning" not in ln and
             not ln.startswith("  warnings.warn")]  # torch's import-time deprecation notice
    assert proc.returncode == 1
    assert lines == [f"lic2cpp build: error: model file not found: {tmp_path / 'm.pth'}"]
