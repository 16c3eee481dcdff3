"""The codec as a library (docs/library.md): the C interface from C (under ASan/UBSan), from
CMake (find_package and add_subdirectory) and from Python (lic2cpp.Codec), each against the
`encoder`/`decoder` programs byte for byte; tiled decoding and encoding, exactly equal to one
piece for many tilings; an 8192 x 8192 image decoded within 256 MiB of peak memory.

Two codecs: a tiny random network with GDN, a stride-1 residual block (ADD) and fused and
unfused activations in g_s (every kind of node the tiling geometry handles), and the shipped
default model (`lic2cpp build -o OUT`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_codec_programs import fix_checksum

from lic2cpp import Codec
from lic2cpp.codec_library import parse_size
from lic2cpp.codegen import LIBRARY_FILES, build_codec
from lic2cpp.entropy import EntropyModel, fit_entropy_model
from lic2cpp.errors import LicError
from lic2cpp.modelformat import ModelFile, Node, read_licm, write_licm

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = 12
MIB = 1 << 20


# --- codecs ---------------------------------------------------------------------------------

def conv(kind: str, cin: int, cout: int, rng: np.random.Generator, gain: float, k: int = 5,
         stride: int = 2) -> Node:
    p = k // 2
    attrs = dict(cin=cin, cout=cout, kh=k, kw=k, stride_h=stride, stride_w=stride, pad_top=p,
                 pad_left=p, pad_bottom=p, pad_right=p)
    if kind == "conv2d":
        shape = (cout, cin, k, k)
    else:
        attrs.update(out_pad_h=stride - 1, out_pad_w=stride - 1)
        shape = (cin, cout, k, k)
    w = rng.normal(0, gain / np.sqrt(cin * k * k), shape).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    return Node(kind, [], attrs, {"weight": w, "bias": b})


def gdn(c: int, inverse: bool, rng: np.random.Generator) -> Node:
    beta = (1.0 + rng.uniform(0, 0.5, c)).astype(np.float32)
    gamma = rng.uniform(0, 0.2, (c, c)).astype(np.float32)
    return Node("gdn", [], {"channels": c, "inverse": int(inverse)}, {"beta": beta, "gamma": gamma})


def write_graph_model(folder: Path, seed: int) -> tuple[Path, Path]:
    """g_a: conv-GDN x2, conv-ReLU, conv. g_s: convT, IGDN, convT, a residual block of two
    stride-1 3x3 convolutions (ReLU fused into the first) added to its input, IGDN, convT,
    leaky ReLU read by two nodes (not fused), convT."""
    rng = np.random.default_rng(seed)
    ga = [conv("conv2d", 3, 8, rng, 2.0), gdn(8, False, rng), conv("conv2d", 8, 8, rng, 2.0),
          gdn(8, False, rng), conv("conv2d", 8, 8, rng, 2.0), Node("relu", []),
          conv("conv2d", 8, CHANNELS, rng, 40.0)]
    for i, n in enumerate(ga):
        n.inputs = [i]
    gs = [conv("conv_transpose2d", CHANNELS, 8, rng, 1.0),         # 0 -> v1
          gdn(8, True, rng),                                        # v2
          conv("conv_transpose2d", 8, 8, rng, 1.0),                 # v3
          conv("conv2d", 8, 8, rng, 1.0, k=3, stride=1),            # v4
          Node("relu", []),                                         # v5 (fused)
          conv("conv2d", 8, 8, rng, 1.0, k=3, stride=1),            # v6
          Node("add", []),                                          # v7 = v6 + v3
          gdn(8, True, rng),                                        # v8
          conv("conv_transpose2d", 8, 8, rng, 1.0),                 # v9
          Node("leaky_relu", [], {"alpha": 0.1}, {}),               # v10, read twice
          Node("add", []),                                          # v11 = v10 + v10
          conv("conv_transpose2d", 8, 3, rng, 1.0)]                 # v12
    for i, n in enumerate(gs):
        n.inputs = [i]
    gs[6].inputs = [6, 3]
    gs[10].inputs = [10, 10]
    paths = folder / "g_a.licm", folder / "g_s.licm"
    write_licm(paths[0], ModelFile("g_a", 3, CHANNELS, ga))
    write_licm(paths[1], ModelFile("g_s", CHANNELS, 3, gs))
    return paths


def build_graph_codec(folder: Path, sanitize: bool = False, int16: bool = False) -> Path:
    """The codec of write_graph_model; with ``int16`` its decoder runs an int16 g_s
    (docs/int16.md) calibrated on latents like the ones the tables are fitted on."""
    ga, gs = write_graph_model(folder, seed=1)
    rng = np.random.default_rng(1)
    latents = rng.laplace(0, 1.5, (30, CHANNELS, 8, 8)).astype(np.float32)
    fit_entropy_model(latents).save(folder / "entropy.lice")
    decoder_net = None
    if int16:
        from lic2cpp.int16 import Calibration, quantize_model

        gs16, _ = quantize_model(read_licm(gs), calib=Calibration(latents.transpose(0, 2, 3, 1)))
        decoder_net = folder / "g_s_int16.licm"
        write_licm(decoder_net, gs16)
    out = folder / ("out-asan" if sanitize else "out-int16" if int16 else "out")
    build_codec(ga, gs, folder / "entropy.lice", out, sanitize=sanitize, decoder_net=decoder_net)
    return out


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_graph_codec(tmp_path_factory.mktemp("graph"))


@pytest.fixture(scope="module")
def graph16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_graph_codec(tmp_path_factory.mktemp("graph16"), int16=True)


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lic2cpp.cli import main

    out = tmp_path_factory.mktemp("default") / "out"
    assert main(["build", "-o", str(out)]) == 0
    return out


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic pattern with a little texture, any size, in row chunks (memory)."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 1.5, 6)
    x = np.arange(w, dtype=np.float32)
    out = np.empty((h, w, 3), np.uint8)
    for y0 in range(0, h, 512):
        y = np.arange(y0, min(h, y0 + 512), dtype=np.float32)[:, None]
        r = 128 + 100 * np.sin(x / (300 * f[0])) * np.cos(y / (410 * f[1]))
        g = 128 + 90 * np.sin((x + y) / (520 * f[2])) + 10 * np.sin(x / (7 * f[3]))
        b = 128 + 80 * np.cos(x / (700 * f[4]) - y / (330 * f[5]))
        out[y0:y0 + len(y)] = np.clip(np.stack(np.broadcast_arrays(r, g, b), -1), 0, 255)
    return out


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


def peak_rss(cmd: list) -> int:
    """Peak resident memory of a program, in bytes, measured by GNU time (a child of this
    process would inherit this process's peak: Linux keeps ru_maxrss across exec)."""
    proc = run(["/usr/bin/time", "-f", "peak %M", *cmd])
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1].split()[-1]) * 1024


def write_ppm(path: Path, rgb: np.ndarray) -> Path:
    h, w = rgb.shape[:2]
    path.write_bytes(b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb).tobytes())
    return path


def read_ppm(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# --- the build's outputs --------------------------------------------------------------------

def test_build_writes_the_library(default: Path) -> None:
    for rel in LIBRARY_FILES:
        assert (default / rel).is_file(), rel
    # only the C interface is exported, so several codecs can live in one process
    nm = run(["nm", "-D", "--defined-only", default / "lib" / "liblic2cpp_codec.so"]).stdout
    names = [line.split()[-1] for line in nm.splitlines() if line.strip()]
    assert names and all(n.startswith("lic2cpp_") for n in names), names
    assert "lic2cpp_decode_rows" in names
    # the programs link only the half they use: the decoder holds no g_a; the encoder holds
    # g_a and, for RDOQ (docs/rdoq.md), the float g_s
    dec, enc = (default / "decoder").read_bytes(), (default / "encoder").read_bytes()
    ga, gs = (default / "g_a.licm").read_bytes(), (default / "g_s.licm").read_bytes()
    assert gs[24:4096] in dec and ga[24:4096] not in dec
    assert ga[24:4096] in enc and gs[24:4096] in enc
    assert "liblic2cpp_codec" in (default / "report.md").read_text()


# --- C ----------------------------------------------------------------------------------------

def test_c_interface_under_sanitizers(tmp_path: Path, graph: Path) -> None:
    out = build_graph_codec(graph.parent, sanitize=True)
    exe = tmp_path / "capi_check"
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler"
    proc = run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1",
                "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                f"-I{out / 'include'}", ROOT / "tests" / "cpp" / "capi_check.c",
                out / "lib" / "liblic2cpp_codec.a", "-lstdc++", "-lm", "-pthread", "-o", exe])
    assert proc.returncode == 0, proc.stderr
    proc = run([exe])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    cases = dict(line[5:].split(": ", 1) for line in proc.stdout.splitlines()
                 if line.startswith("case "))
    assert cases["empty"] == "bad bitstream: empty bitstream"
    assert cases["truncated"] == ("bad bitstream: truncated bitstream (payload shorter than its "
                                  "header says)")
    assert cases["flipped"] == "bad bitstream: corrupt bitstream (checksum mismatch)"
    assert cases["huge_image"] == ("bad image: image 70000x1 is larger than the limit (65535 per "
                                   "side, 1073741824 pixels)")
    assert cases["small_buffer"] == ("buffer too small: the output buffer (109508 bytes) is too "
                                     "small for a 211x173 image")
    assert cases["budget"].startswith("memory budget too small: the memory budget (")
    assert "needs at least" in cases["budget"]
    assert cases["aborted"] == "aborted by the callback: decoding stopped by the row callback"
    assert cases["null_rgb"].startswith("invalid argument: ")
    assert cases["rdoq_nan"] == "invalid argument: the RDOQ lambda must be a finite number"
    assert cases["rdoq_tiles"].startswith("bad image: RDOQ codes an image in one piece: this "
                                          "211x173 image needs ")
    # the program says the same about the same input
    (tmp_path / "huge.ppm").write_bytes(b"P6\n70000 1\n255\n" + bytes(210000))
    prog = run([out / "encoder", tmp_path / "huge.ppm", tmp_path / "x.bin"])
    assert prog.stderr.strip().endswith(cases["huge_image"].split(": ", 1)[1])


@pytest.mark.parametrize("link", ["static", "shared"])
def test_cmake_package(default: Path, tmp_path: Path, link: str) -> None:
    """A C program configured and built with CMake against OUT/ gives the programs' bytes:
    static through find_package, shared through add_subdirectory."""
    cmake = shutil.which("cmake")
    assert cmake and shutil.which("ninja"), "cmake and ninja are installed by scripts/setup.sh"
    where = ([f"-DCMAKE_PREFIX_PATH={default}"] if link == "static"
             else [f"-DLIC2CPP_SUBDIR={default}"])
    build = tmp_path / "build"
    proc = run([cmake, "-S", ROOT / "tests" / "cmake_consumer", "-B", build, "-G", "Ninja",
                f"-DLIC2CPP_LINK={link}", *where])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run([cmake, "--build", build])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exe = build / "consumer"
    src = write_ppm(tmp_path / "in.ppm", smooth(117, 203, seed=3))
    assert run([exe, "encode", src, tmp_path / "lib.bin"]).returncode == 0
    assert run([default / "encoder", src, tmp_path / "prog.bin"]).returncode == 0
    assert (tmp_path / "lib.bin").read_bytes() == (tmp_path / "prog.bin").read_bytes()
    assert run([exe, "decode", tmp_path / "prog.bin", tmp_path / "lib.ppm"]).returncode == 0
    assert run([default / "decoder", tmp_path / "prog.bin", tmp_path / "prog.ppm"]).returncode == 0
    assert (tmp_path / "lib.ppm").read_bytes() == (tmp_path / "prog.ppm").read_bytes()
    # and in tiles, through the library's budget
    least = Codec(default).plan((tmp_path / "prog.bin").read_bytes())["least"]
    assert run([exe, "decode", tmp_path / "prog.bin", tmp_path / "tiled.ppm", least]
               ).returncode == 0
    assert (tmp_path / "tiled.ppm").read_bytes() == (tmp_path / "prog.ppm").read_bytes()
    if link == "shared":
        assert "liblic2cpp_codec.so" in run(["ldd", exe]).stdout


# --- Python -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(1, 1), (16, 16), (203, 117), (640, 480)])
def test_python_module_equals_programs(default: Path, tmp_path: Path,
                                       size: tuple[int, int]) -> None:
    w, h = size
    img = smooth(h, w, seed=w)
    codec = Codec(default)
    data = codec.encode(img)
    src = write_ppm(tmp_path / "in.ppm", img)
    assert run([default / "encoder", src, tmp_path / "a.bin"]).returncode == 0
    assert data == (tmp_path / "a.bin").read_bytes()
    assert run([default / "decoder", tmp_path / "a.bin", tmp_path / "a.ppm", "--dump-latent",
                tmp_path / "y.npy"]).returncode == 0
    out = codec.decode(data)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    assert np.array_equal(out, read_ppm(tmp_path / "a.ppm"))
    assert np.array_equal(codec.latent(data), np.load(tmp_path / "y.npy"))
    assert codec.info(data) == (w, h)
    assert codec.fingerprint == int.from_bytes(data[24:32], "little")
    # any row stride, and other threads counts, give the same bytes
    wide = np.zeros((h, w + 5, 3), np.uint8)
    wide[:, 2:w + 2] = img
    assert Codec(default, threads=3).encode(wide[:, 2:w + 2]) == data
    assert Codec(default, threads=2).encode(np.asfortranarray(img)) == data


def test_python_errors_are_the_programs(default: Path, graph: Path, tmp_path: Path) -> None:
    codec = Codec(default)
    good = codec.encode(smooth(40, 56))
    other = Codec(graph).encode(smooth(40, 56))
    bad = {"empty": b"", "magic": b"LICX" + good[4:], "short": good[:30],
           "truncated": good[:-1], "trailing": good + b"\0", "flipped": good[:50] + bytes(
               [good[50] ^ 1]) + good[51:],
           "version": fix_checksum(bytearray(good[:4] + b"\x03" + good[5:])),
           "other model": other,
           "huge": fix_checksum(bytearray(good[:8] + (70000).to_bytes(4, "little") + good[12:]))}
    for name, data in bad.items():
        (tmp_path / "bad.bin").write_bytes(data)
        proc = run([default / "decoder", tmp_path / "bad.bin", tmp_path / "o.png"])
        assert proc.returncode == 1 and proc.stderr.startswith("decoder: error: "), name
        message = proc.stderr.strip()[len("decoder: error: "):]
        with pytest.raises(LicError) as exc:
            codec.decode(data)
        assert str(exc.value) == message, name
        assert not (tmp_path / "o.png").exists()
    assert "another model" in str(pytest.raises(LicError, codec.decode, other).value)
    with pytest.raises(LicError, match="H x W x 3 uint8"):
        codec.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(LicError, match="H x W x 3 uint8"):
        codec.encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(LicError, match="empty"):
        codec.encode(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(LicError, match="larger than the limit"):
        codec.encode(np.broadcast_to(np.uint8(0), (1, 70000, 3)))
    with pytest.raises(LicError, match="no codec library"):
        Codec(tmp_path)
    with pytest.raises(LicError, match="threads"):
        Codec(default, threads=0)
    with pytest.raises(LicError, match="invalid memory size"):
        Codec(default, max_memory="lots")
    assert parse_size("256M") == 256 * MIB and parse_size("2g") == 2 << 30
    assert parse_size("512KiB") == 512 << 10 and parse_size(1000) == 1000


def test_two_codecs_in_one_process(default: Path, graph: Path) -> None:
    a, b = Codec(default), Codec(graph)
    img = smooth(48, 64, seed=5)
    da, db = a.encode(img), b.encode(img)
    assert a.fingerprint != b.fingerprint
    assert a.decode(da).shape == b.decode(db).shape == (48, 64, 3)
    for codec, data in ((a, db), (b, da)):
        with pytest.raises(LicError, match="another model"):
            codec.decode(data)


def test_gil_is_released(default: Path) -> None:
    """While one thread is inside a long decode, the main thread keeps running Python."""
    codec = Codec(default)
    data = codec.encode(smooth(1024, 1024))
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(codec.decode(data)))
    worker.start()
    seen = 0
    while worker.is_alive():
        frame = sys._current_frames().get(worker.ident or 0)
        # the worker's innermost Python frame is Codec.decode while it is in the C call: this
        # thread runs meanwhile, so the call does not hold the GIL
        if frame is not None and frame.f_code is Codec.decode.__code__:
            seen += 1
        time.sleep(0.002)
    worker.join()
    assert result and result[0].shape == (1024, 1024, 3)
    assert seen >= 5, seen


# --- tiles ------------------------------------------------------------------------------------

def budgets_between(least: int, whole: int, n: int) -> list[int]:
    return sorted({int(least * (whole / least) ** (i / (n - 1))) for i in range(n)})


@pytest.mark.parametrize("name, size, least_tilings", [
    ("graph", (150, 110), 4), ("graph", (33, 97), 2), ("graph16", (150, 110), 4),
    ("default", (700, 500), 4)])
def test_tiled_decoding_is_exact(name: str, size: tuple[int, int], least_tilings: int,
                                 graph: Path, graph16: Path, default: Path) -> None:
    """Every budget from the least that works to one piece gives other tiles and the same
    pixels, through the buffer and through row bands (33 x 97: a latent of 7 x 3 cells,
    narrower than a window's halo; graph16: an int16 g_s, its exact integer pixels)."""
    folder = {"graph": graph, "graph16": graph16, "default": default}[name]
    w, h = size
    data = Codec(folder).encode(smooth(h, w, seed=h))
    whole = Codec(folder).decode(data)
    # bands of 16 latent rows (bitstream 2.0) unless the latent is shorter (then 1.0); the
    # same latent in one band (1.x) decodes to the same pixels
    latent_h = int.from_bytes(data[18:20], "little")
    assert data[4:6] == (b"\x02\x00" if latent_h > 16 else b"\x01\x00")
    one_band = Codec(folder, band_rows=65535).encode(smooth(h, w, seed=h))
    assert one_band[4:6] == b"\x01\x00" and (one_band == data) == (latent_h <= 16)
    assert np.array_equal(Codec(folder).decode(one_band), whole)
    if name == "graph16":  # the int16 g_s is the one that runs (same bitstreams as float)
        assert not np.array_equal(whole, Codec(graph).decode(data))
    plan = Codec(folder).plan(data)
    assert (plan["tiles_down"], plan["tiles_across"]) == (1, 1)
    tilings = set()
    for budget in budgets_between(plan["least"], plan["whole"], 9):
        codec = Codec(folder, max_memory=budget, threads=1 + budget % 2)
        p = codec.plan(data)
        assert p["working_set"] <= budget
        tilings.add((p["tiles_down"], p["tiles_across"], p["window_height"], p["window_width"]))
        assert np.array_equal(codec.decode(data), whole), p
        bands: list[np.ndarray] = []
        codec.decode_rows(data, lambda y, rows, bands=bands: bands.append(rows.copy()))
        assert np.array_equal(np.concatenate(bands), whole), p
    assert len(tilings) >= least_tilings, tilings
    assert any(t[0] > 1 for t in tilings), tilings
    if least_tilings > 2:
        assert any(t[0] > 1 and t[1] > 1 for t in tilings), tilings
    with pytest.raises(LicError, match="too small to decode this"):
        Codec(folder, max_memory=plan["least"] - 1).decode_rows(data, lambda y, rows: None)


@pytest.mark.parametrize("name, size", [("graph", (150, 110)), ("default", (520, 390))])
def test_tiled_encoding_is_exact(name: str, size: tuple[int, int], graph: Path,
                                 default: Path) -> None:
    folder = graph if name == "graph" else default
    w, h = size
    img = smooth(h, w, seed=w)
    whole = Codec(folder).encode(img)
    plan = Codec(folder).plan_encode(w, h)
    tilings = set()
    for budget in budgets_between(plan["least"], plan["whole"], 6):
        codec = Codec(folder, max_memory=budget)
        p = codec.plan_encode(w, h)
        tilings.add((p["tiles_down"], p["tiles_across"]))
        assert codec.encode(img) == whole, p
    assert len(tilings) >= 3 and (1, 1) in tilings, tilings


@pytest.mark.parametrize("name", ["graph", "graph16"])
def test_rdoq_through_the_library(name: str, graph: Path, graph16: Path,
                                  tmp_path: Path) -> None:
    """RDOQ through the C interface (lic2cpp_set_rdoq, docs/rdoq.md): the bytes of
    `encoder --rdoq`, any thread count; D + λR measured independently (Python's code length
    of the decoded latent, the decoded pixels) below plain rounding's; with an int16 decoder
    the search's distortion is exactly that decoder's output."""
    folder = graph if name == "graph" else graph16
    lam = 0.002
    img = smooth(60, 90, seed=3)
    tables = EntropyModel.load(folder.parent / "entropy.lice")
    plain_codec, codec = Codec(folder, rdoq=0), Codec(folder, rdoq=lam)
    assert codec.default_rdoq_lambda == 0
    plain, data = plain_codec.encode(img), codec.encode(img)
    assert plain == Codec(folder).encode(img)  # the build's default: plain rounding
    assert plain_codec.rdoq_report()["lambda"] == 0 and plain_codec.rdoq_report()["passes"] == 0
    rep = codec.rdoq_report()
    assert rep["lambda"] == lam and rep["passes"] > 0 and rep["changed"] > 0
    assert Codec(folder, rdoq=lam, threads=3).encode(img) == data
    src = write_ppm(tmp_path / "in.ppm", img)
    proc = run([folder / "encoder", src, tmp_path / "r.bin", "--rdoq", str(lam)])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.bin").read_bytes() == data

    def cost(stream: bytes) -> tuple[float, float, float]:
        bits = tables.estimate_bits(plain_codec.latent(stream).transpose(2, 0, 1)[None])
        d = plain_codec.decode(stream) / 255.0 - img / 255.0
        sse = float((d * d).sum())
        return bits["bits_ctx"] + lam * 255.0 ** 2 / 3.0 * sse, bits["bits_ctx"], sse

    j_plain, bits_plain, sse_plain = cost(plain)
    j, bits, sse = cost(data)
    assert j < j_plain, (j, j_plain)
    assert rep["bits_plain"] == pytest.approx(bits_plain, rel=1e-9)
    assert rep["bits"] == pytest.approx(bits, rel=1e-9)
    if name == "graph16":  # the int16 decoder's own 8-bit pixels (summed in float32)
        assert rep["sse_plain"] == pytest.approx(sse_plain, rel=1e-7)
        assert rep["sse"] == pytest.approx(sse, rel=1e-7)
    # banded coding (bitstream 2.0) with RDOQ: Codec(band_rows=, rdoq=) is the program's
    # `--band-rows --rdoq`, and the unchanged decoder reads it back
    banded_codec = Codec(folder, band_rows=1, rdoq=lam)
    banded = banded_codec.encode(img)
    proc = run([folder / "encoder", src, tmp_path / "b.bin", "--rdoq", str(lam),
                "--band-rows", "1"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.bin").read_bytes() == banded != data
    y_banded = plain_codec.latent(banded)
    assert y_banded.shape[0] > 1
    # the decoded latent is the one the search chose (its banded code length)
    banded_bits = tables.estimate_bits(y_banded.transpose(2, 0, 1)[None], band_rows=1)
    assert banded_codec.rdoq_report()["bits"] == pytest.approx(banded_bits["bits_ctx"], rel=1e-9)
    with pytest.raises(LicError, match="rdoq must be a finite"):
        Codec(folder, rdoq=float("nan"))
    with pytest.raises(LicError, match="rdoq_sweeps"):
        Codec(folder, rdoq=lam, rdoq_sweeps=-2)


def test_rdoq_refuses_tiles(graph: Path, tmp_path: Path) -> None:
    """RDOQ codes an image in one piece: a budget that tiles g_a is a one-line refusal."""
    w, h = 150, 110
    plan = Codec(graph).plan_encode(w, h)
    codec = Codec(graph, max_memory=plan["least"], rdoq=0.002)
    assert codec.plan_encode(w, h)["tiles_down"] * codec.plan_encode(w, h)["tiles_across"] > 1
    with pytest.raises(LicError, match="RDOQ codes an image in one piece"):
        codec.encode(smooth(h, w))
    src = write_ppm(tmp_path / "in.ppm", smooth(h, w))
    proc = run([graph / "encoder", src, tmp_path / "x.bin", "--rdoq", "0.002", "--max-memory",
                str(plan["least"])])
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("encoder: error: RDOQ codes an image in one piece"), err
    assert not (tmp_path / "x.bin").exists()


def test_decoder_program_in_tiles(graph: Path, tmp_path: Path) -> None:
    """`decoder --max-memory` streams PNG and PPM files with the pixels of a one-piece
    decode, with the scalar kernels too; a budget too small is a one-line error."""
    img = smooth(900, 1500, seed=2)
    data = Codec(graph).encode(img)
    (tmp_path / "a.bin").write_bytes(data)
    whole = Codec(graph).decode(data)
    assert Codec(graph).plan(data)["whole"] > 40 * MIB  # so that 40M needs tiles
    for env in ({}, {"LIC_FORCE_SCALAR": "1"}):
        env = {**os.environ, **env}
        ref = run([graph / "decoder", tmp_path / "a.bin", tmp_path / "ref.ppm"], env=env)
        assert ref.returncode == 0, ref.stderr
        for out in ("t.png", "t.ppm"):
            proc = run([graph / "decoder", tmp_path / "a.bin", tmp_path / out, "--max-memory",
                        "40M", "--threads", "2"], env=env)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == ref.stdout
            assert np.array_equal(read_ppm(tmp_path / out), read_ppm(tmp_path / "ref.ppm"))
            assert not list(tmp_path.glob("*.tmp-lic2cpp"))
        if not env.get("LIC_FORCE_SCALAR"):
            peak = peak_rss([graph / "decoder", tmp_path / "a.bin", tmp_path / "t.png",
                             "--max-memory", "40M"])
            assert peak < 40 * MIB, f"peak RSS {peak / MIB:.1f} MiB"
            assert np.array_equal(read_ppm(tmp_path / "ref.ppm"), whole)
    # Budgets from 1 MiB up, by 512 KiB: first less than the program itself takes, then
    # too small for this image (naming the least that works), then enough -- nothing else.
    outcomes = []
    for kib in range(1024, 64 << 10, 512):
        proc = run([graph / "decoder", tmp_path / "a.bin", tmp_path / "x.png", "--max-memory",
                    f"{kib}K"])
        if proc.returncode == 0:
            outcomes.append("ok")
            break
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()
        if "less than the decoder itself takes" in proc.stderr:
            outcomes.append("program")
        else:
            assert "is too small for this 1500x900 image: decoding it needs at least" in proc.stderr
            outcomes.append("image")
    assert outcomes[0] == "program" and outcomes[-1] == "ok" and "image" in outcomes, outcomes
    assert outcomes == sorted(outcomes, key=["program", "image", "ok"].index), outcomes
    proc = run([graph / "decoder", tmp_path / "a.bin", tmp_path / "x.png", "--max-memory", "lots"])
    assert proc.returncode == 1 and "--max-memory needs a size such as 256M" in proc.stderr


def test_huge_image_within_256_mib(default: Path, tmp_path: Path) -> None:
    """8192 x 8192 (beyond bitstream 1.0's 2^24 pixels; in one band: written as 1.1): encoded
    in tiles, decoded by `decoder --max-memory 256M` with a peak RSS under 256 MiB, and equal
    to a decode in other tiles."""
    n = 8192
    img = smooth(n, n, seed=8)
    data = Codec(default, threads=2, band_rows=65535).encode(img)
    assert data[4:6] == b"\x01\x01"  # version 1.1
    (tmp_path / "big.bin").write_bytes(data)
    budget = 256 * MIB
    peak = peak_rss([default / "decoder", tmp_path / "big.bin", tmp_path / "big.png",
                     "--max-memory", "256M", "--threads", "2"])
    assert peak < budget, f"peak RSS {peak / MIB:.1f} MiB"
    out = np.asarray(Image.open(tmp_path / "big.png"))
    assert out.shape == (n, n, 3)
    mse = np.mean((out[::4, ::4].astype(np.float64) - img[::4, ::4]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25  # a faithful decode (measured 28.9 dB), not noise
    # the top band again in other tiles (the library, a larger budget): the same pixels
    codec = Codec(default, max_memory=512 * MIB)
    other = codec.plan(data)
    assert other["tiles_down"] * other["tiles_across"] > 1
    plan_256 = Codec(default, max_memory=budget).plan(data)
    assert (other["window_height"], other["window_width"]) != (plan_256["window_height"],
                                                               plan_256["window_width"])
    got: list[np.ndarray] = []
    codec.decode_rows(data, lambda y, rows: got.append(rows.copy()) or True)  # first band only
    assert got and got[0].shape[0] >= 512
    assert np.array_equal(got[0], out[:got[0].shape[0]])
