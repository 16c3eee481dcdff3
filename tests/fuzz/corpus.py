"""The fuzz targets' built-in model and seed corpora, generated (nothing large is committed).

- The tiny model: ``g_a`` (2 stride-2 convolutions, 3 -> 8 -> 4 channels) and ``g_s``
  (every operator of the runtime: transposed convolutions, inverse GDN, leaky ReLU, a
  convolution, ReLU and a residual add), downsampling factor 4, and entropy tables fitted
  on its latents of crops of the training photos. Small enough that decoding a bitstream
  of a 64 x 64 image takes well under a millisecond, so a fuzz execution stays fast.
- ``model.inc``: the three files as C++ byte arrays, compiled into the decoder target.
- Seeds, per target: bitstreams the real encoder (built by ``lic2cpp codegen`` from the
  tiny model) makes of photo crops of several sizes, a flat and a noisy image; ``.licm``
  and ``.lice`` files (the tiny ones, the shipped default tables, a one-operator model
  per operator); PNG and PPM files of every kind the encoder meets (RGB, gray, palette,
  alpha, 16-bit, interlaced, P3/P5/P6, comments).

Run by tests/fuzz/run.py; ``python3 tests/fuzz/corpus.py OUT`` writes it all to OUT.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"  # training images only, never Kodak
LATENT_CHANNELS = 4
MULTIPLE = 4


def _conv(kind: str, cin: int, cout: int, k: int, stride: int, rng: np.random.Generator,
          gain: float, inp: int) -> object:
    from lic2cpp.modelformat import Node

    pad = k // 2
    attrs = dict(cin=cin, cout=cout, kh=k, kw=k, stride_h=stride, stride_w=stride,
                 pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad)
    if kind == "conv2d":
        shape = (cout, cin, k, k)
    else:
        attrs.update(out_pad_h=stride - 1, out_pad_w=stride - 1)
        shape = (cin, cout, k, k)
    w = rng.normal(0, gain / np.sqrt(cin * k * k), shape).astype(np.float32)
    b = rng.normal(0, 0.05, cout).astype(np.float32)
    return Node(kind, [inp], attrs, {"weight": w, "bias": b})


def tiny_networks(seed: int = 0) -> tuple[object, object]:
    """(g_a, g_s) as lic2cpp.modelformat.ModelFile."""
    from lic2cpp.modelformat import ModelFile, Node

    rng = np.random.default_rng(seed)
    c, n = LATENT_CHANNELS, 8
    g_a = ModelFile("fuzz_g_a", 3, c, [
        _conv("conv2d", 3, n, 3, 2, rng, 2.0, 0),
        Node("relu", [1]),
        _conv("conv2d", n, c, 3, 2, rng, 20.0, 2),
    ])
    gdn = Node("gdn", [1], {"channels": n, "inverse": 1},
               {"beta": rng.uniform(0.5, 1.5, n).astype(np.float32),
                "gamma": rng.uniform(0.0, 0.1, (n, n)).astype(np.float32)})
    g_s = ModelFile("fuzz_g_s", c, 3, [
        _conv("conv_transpose2d", c, n, 3, 2, rng, 0.3, 0),  # value 1
        gdn,  # 2
        Node("leaky_relu", [2], {"alpha": 0.1}),  # 3
        _conv("conv2d", n, n, 3, 1, rng, 1.0, 3),  # 4
        Node("relu", [4]),  # 5
        Node("add", [5, 2]),  # 6
        _conv("conv_transpose2d", n, 3, 3, 2, rng, 1.0, 6),  # 7
    ])
    return g_a, g_s


def _run_g_a(g_a: object, images: np.ndarray) -> np.ndarray:
    """g_a on uint8 NHWC images with torch (conv2d + ReLU only), float32 NCHW latents."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    for node in g_a.nodes:
        if node.op == "relu":
            x = F.relu(x)
            continue
        a = node.attrs
        x = F.conv2d(x, torch.from_numpy(node.tensors["weight"]),
                     torch.from_numpy(node.tensors["bias"]), stride=int(a["stride_h"]),
                     padding=int(a["pad_top"]))
    return x.numpy()


def photo_crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [count, size, size, 3] crops of the training photos (smooth noise when the
    shared data is not there)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = sorted(PHOTOS.glob("*.png")) if PHOTOS.is_dir() else []
    out = np.zeros((count, size, size, 3), np.uint8)
    for i in range(count):
        if files:
            with Image.open(files[i % len(files)]) as im:
                rgb = np.asarray(im.convert("RGB"))
            y = int(rng.integers(0, rgb.shape[0] - size))
            x = int(rng.integers(0, rgb.shape[1] - size))
            out[i] = rgb[y:y + size, x:x + size]
        else:
            base = rng.integers(0, 256, (size // 8 + 2, size // 8 + 2, 3)).astype(np.uint8)
            out[i] = np.asarray(Image.fromarray(base).resize((size, size), Image.BILINEAR))
    return out


def write_model(out: Path) -> dict[str, Path]:
    """g_a.licm, g_s.licm, entropy.lice and model.inc in ``out``."""
    from lic2cpp.entropy import fit_entropy_model
    from lic2cpp.modelformat import encode_licm

    out.mkdir(parents=True, exist_ok=True)
    g_a, g_s = tiny_networks()
    paths = {"g_a": out / "g_a.licm", "g_s": out / "g_s.licm", "tables": out / "entropy.lice"}
    paths["g_a"].write_bytes(encode_licm(g_a))
    paths["g_s"].write_bytes(encode_licm(g_s))
    latents = _run_g_a(g_a, photo_crops(24, 64))
    fit_entropy_model(latents).save(paths["tables"])
    lines = ["// Generated by tests/fuzz/corpus.py: the fuzz targets' tiny model.",
             "#pragma once", "#include <cstddef>", "#include <cstdint>",
             f"constexpr uint32_t kFuzzMultiple = {MULTIPLE};"]
    for name, path in (("kFuzzGa", paths["g_a"]), ("kFuzzGs", paths["g_s"]),
                       ("kFuzzTables", paths["tables"])):
        data = path.read_bytes()
        body = ",".join(str(b) for b in data)
        lines.append(f"alignas(8) constexpr uint8_t {name}[] = {{{body}}};")
    paths["inc"] = out / "model.inc"
    paths["inc"].write_text("\n".join(lines) + "\n")
    return paths


# ---------------------------------------------------------------------------- seeds

def _png(img: object, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def image_seeds() -> dict[str, bytes]:
    """Small PNG and PPM files of every kind the encoder's readers meet."""
    from PIL import Image

    rgb = photo_crops(1, 16, seed=3)[0]
    gray = rgb.mean(axis=2).astype(np.uint8)
    seeds = {
        "rgb.png": _png(Image.fromarray(rgb)),
        "rgb_1x1.png": _png(Image.fromarray(rgb[:1, :1])),
        "rgb_interlaced.png": _interlaced_png(rgb),
        "gray.png": _png(Image.fromarray(gray, "L")),
        "palette.png": _png(Image.fromarray(rgb).convert("P")),
        "rgba.png": _png(Image.fromarray(np.dstack([rgb, gray]), "RGBA")),
        "gray_alpha.png": _png(Image.fromarray(np.dstack([gray, gray]), "LA")),
        "gray16.png": _png(Image.fromarray(gray.astype(np.uint16) * 257)),
        "bilevel.png": _png(Image.fromarray(gray > 128)),
        "p6.ppm": b"P6\n16 16\n255\n" + rgb.tobytes(),
        "p6_comment.ppm": b"P6\n# a comment\n16 # w\n16\n255\n" + rgb.tobytes(),
        "p6_1x1.ppm": b"P6 1 1 255\n" + rgb[:1, :1].tobytes(),
        "p6_16bit.ppm": b"P6\n2 2\n65535\n" + bytes(24),
        "p5.pgm": b"P5\n16 16\n255\n" + gray.tobytes(),
        "p3.ppm": b"P3\n1 1\n255\n1 2 3\n",
    }
    return seeds


def _interlaced_png(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced PNG (Pillow cannot write one), built chunk by chunk."""
    import zlib

    h, w, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def licm_seeds(model: dict[str, Path]) -> dict[str, bytes]:
    """The tiny networks and one small model per operator."""
    from lic2cpp.modelformat import ModelFile, Node, encode_licm

    rng = np.random.default_rng(5)
    seeds = {"g_a.licm": model["g_a"].read_bytes(), "g_s.licm": model["g_s"].read_bytes()}
    conv = _conv("conv2d", 2, 3, 3, 1, rng, 1.0, 0)
    seeds["conv.licm"] = encode_licm(ModelFile("conv", 2, 3, [conv]))
    convt = _conv("conv_transpose2d", 2, 3, 5, 3, rng, 1.0, 0)
    seeds["convt.licm"] = encode_licm(ModelFile("convt", 2, 3, [convt]))
    for inverse in (0, 1):
        gdn = Node("gdn", [0], {"channels": 2, "inverse": inverse},
                   {"beta": np.ones(2, np.float32), "gamma": np.full((2, 2), 0.1, np.float32)})
        seeds[f"gdn{inverse}.licm"] = encode_licm(ModelFile("gdn", 2, 2, [gdn]))
    seeds["act.licm"] = encode_licm(ModelFile("act", 1, 1, [
        _conv("conv2d", 1, 1, 1, 1, rng, 1.0, 0), Node("relu", [1]),
        Node("leaky_relu", [2], {"alpha": 0.2}), Node("add", [3, 1])]))
    return seeds


def lice_seeds(model: dict[str, Path]) -> dict[str, bytes]:
    from lic2cpp.entropy import fit_entropy_model

    rng = np.random.default_rng(6)
    one = rng.laplace(0, 3.0, (8, 1, 4, 4)).astype(np.float32)
    one[0, 0, 0, 0] = 500.0  # escapes
    dead = np.zeros((4, 2, 2, 2), np.float32)
    return {
        "tiny.lice": model["tables"].read_bytes(),
        "default.lice": (ROOT / "src" / "lic2cpp" / "data" / "default_entropy.lice").read_bytes(),
        "one_channel.lice": fit_entropy_model(one).to_bytes(),
        "dead.lice": fit_entropy_model(dead).to_bytes(),
    }


def bitstream_seeds(model: dict[str, Path], work: Path) -> dict[str, bytes]:
    """Bitstreams the tiny model's real encoder makes (built with lic2cpp codegen)."""
    from PIL import Image

    from lic2cpp.codegen import build_codec

    encoder, _ = build_codec(model["g_a"], model["g_s"], model["tables"], work / "codec")
    crops = photo_crops(6, 64, seed=7)
    images = {
        "1x1": crops[0][:1, :1], "5x3": crops[1][:3, :5], "16x16": crops[2][:16, :16],
        "33x17": crops[3][:17, :33], "64x48": crops[4][:48], "64x64": crops[5],
        "flat": np.full((24, 24, 3), 128, np.uint8),
        "noise": np.random.default_rng(8).integers(0, 256, (20, 28, 3), dtype=np.uint8),
    }
    seeds = {}
    for name, rgb in images.items():
        src, dst = work / f"{name}.png", work / f"{name}.bin"
        Image.fromarray(np.ascontiguousarray(rgb)).save(src)
        subprocess.run([str(encoder), str(src), str(dst)], check=True, capture_output=True)
        seeds[f"{name}.bin"] = dst.read_bytes()
    # bitstream 2.0: the latent in bands of 1 and 2 rows (sub-stream tables)
    for name, rows in (("64x64", 1), ("64x48", 2), ("33x17", 1)):
        src, dst = work / f"{name}.png", work / f"{name}-bands{rows}.bin"
        subprocess.run([str(encoder), str(src), str(dst), "--band-rows", str(rows)], check=True,
                       capture_output=True)
        seeds[dst.name] = dst.read_bytes()
    return seeds


def write_all(out: Path) -> dict[str, Path]:
    """The model and every target's seed folder under ``out``; returns the model paths."""
    model = write_model(out / "model")
    corpora = {
        "decoder": bitstream_seeds(model, out / "work"),
        "licm": licm_seeds(model),
        "lice": lice_seeds(model),
        "image": image_seeds(),
    }
    for target, seeds in corpora.items():
        folder = out / "seeds" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
    return model


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: corpus.py OUT")
    write_all(Path(sys.argv[1]))
