"""Every kind of bad input tried, with the exact one-line error each gets.

Each case runs the real program (the generated decoder/encoder and lic-run built with
ASan+UBSan, or the lic2cpp command line) on a bad file or command line and checks: a
non-zero exit, exactly the documented line on stderr, no traceback, no sanitizer report.
The same list is the table in docs/security.md; `python3 tests/test_bad_inputs.py`
rewrites it there, and a test fails when the two differ.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security.md"
BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"


@dataclass(frozen=True)
class Case:
    kind: str  # bitstream, image, model, tables, command line
    what: str  # the bad input, in words
    argv: tuple[str, ...]  # program (decoder, encoder, lic-run, lic2cpp) and arguments
    error: str  # the exact line on stderr
    exit: int = 1


def case(kind: str, what: str, command: str, error: str, exit: int = 1) -> Case:
    return Case(kind, what, tuple(command.split()), error, exit)


ARCHS = ("bmshj2018-factorized, bmshj2018-factorized-relu, bmshj2018-hyperprior, "
         "cheng2020-anchor, cheng2020-attn, mbt2018, mbt2018-mean")
RELU = "--arch bmshj2018-factorized-relu"
LIMIT = "is larger than the limit (65535 per side, 1073741824 pixels)"
CODEGEN = "lic2cpp codegen codec/g_a.licm codec/g_s.licm"

CASES = [
    # --- bitstreams: the decoder ------------------------------------------------------
    case("bitstream", "missing file", "decoder missing.bin out.png",
         "decoder: error: cannot open missing.bin: No such file or directory"),
    case("bitstream", "empty file", "decoder empty.bin out.png",
         "decoder: error: empty bitstream"),
    case("bitstream", "a PNG image given as bitstream", "decoder image.png out.png",
         "decoder: error: not a lic2cpp bitstream (bad magic)"),
    case("bitstream", "wrong magic", "decoder magic.bin out.png",
         "decoder: error: not a lic2cpp bitstream (bad magic)"),
    case("bitstream", "header cut at 20 bytes", "decoder short.bin out.png",
         "decoder: error: truncated bitstream (incomplete header)"),
    case("bitstream", "last byte cut", "decoder cut.bin out.png",
         "decoder: error: truncated bitstream (payload shorter than its header says)"),
    case("bitstream", "one byte appended", "decoder long.bin out.png",
         "decoder: error: bitstream has trailing bytes"),
    case("bitstream", "major version 3 (checksum valid)", "decoder v3.bin out.png",
         "decoder: error: unsupported bitstream version 3 (this decoder reads 1.x to 2.x)"),
    case("bitstream", "2.0 stream with band height 0 (checksum valid)",
         "decoder rows0.bin out.png", "decoder: error: corrupt bitstream (band height 0)"),
    case("bitstream", "2.0 sub-stream size beyond the payload (checksum valid)",
         "decoder table.bin out.png",
         "decoder: error: corrupt bitstream (sub-stream sizes exceed the payload)"),
    case("bitstream", "2.0 sub-stream table cut (payload of 2 bytes, checksum valid)",
         "decoder notable.bin out.png",
         "decoder: error: truncated bitstream (sub-stream table)"),
    case("bitstream", "one bit flipped in the payload", "decoder flip.bin out.png",
         "decoder: error: corrupt bitstream (checksum mismatch)"),
    case("bitstream", "another model's bitstream (fingerprint changed, checksum valid)",
         "decoder other.bin out.png",
         "decoder: error: bitstream was made by another model (fingerprint mismatch)"),
    case("bitstream", "coding mode 255 (checksum valid)", "decoder mode.bin out.png",
         "decoder: error: unknown coding mode 255"),
    case("bitstream", "width 65536 in the header (checksum valid)", "decoder wide.bin out.png",
         f"decoder: error: image 65536x20 {LIMIT}"),
    case("bitstream", "width 0 in the header (checksum valid)", "decoder zero.bin out.png",
         "decoder: error: image is empty (0 width or height)"),
    case("bitstream", "latent height disagreeing with the image (checksum valid)",
         "decoder shape.bin out.png",
         "decoder: error: bitstream latent shape does not match the image size and model"),
    case("bitstream", "payload of 0xFF bytes (checksum valid)", "decoder ff.bin out.png",
         "decoder: error: corrupt bitstream (range decoder out of range)"),
    case("bitstream", "payload cut to 10 bytes (sizes, checksum valid)",
         "decoder early.bin out.png",
         "decoder: error: truncated bitstream (payload ended early)"),
    case("bitstream", "1000 zero bytes of payload (checksum valid)", "decoder zeros.bin out.png",
         "decoder: error: corrupt bitstream (unused payload bytes)"),
    # --- images: the encoder ----------------------------------------------------------
    case("image", "missing file", "encoder missing.png out.bin",
         "encoder: error: cannot open missing.png: No such file or directory"),
    case("image", "a folder", "encoder . out.bin", "encoder: error: cannot read ."),
    case("image", "text file named .png", "encoder text.png out.bin",
         "encoder: error: text.png: not a PNG or PPM image"),
    case("image", "empty file", "encoder empty.ppm out.bin",
         "encoder: error: empty.ppm: empty file, not an image"),
    case("image", "PNG cut in half", "encoder cut.png out.bin",
         "encoder: error: cut.png: corrupt PNG (read beyond end of data)"),
    case("image", "PNG with a bad header CRC", "encoder crc.png out.bin",
         "encoder: error: crc.png: invalid PNG (IHDR: CRC error)"),
    case("image", "PNG header of width 0", "encoder zerosize.png out.bin",
         "encoder: error: zerosize.png: invalid PNG (Invalid IHDR data)"),
    case("image", "PNG 70000 x 1", "encoder wide.png out.bin",
         f"encoder: error: wide.png: image 70000x1 {LIMIT}"),
    case("image", "16-bit PNG", "encoder 16bit.png out.bin",
         "encoder: error: 16bit.png: 16-bit PNG is not supported (convert it to 8-bit RGB)"),
    case("image", "RGBA PNG", "encoder alpha.png out.bin",
         "encoder: error: alpha.png: PNG with an alpha channel is not supported "
         "(remove the transparency)"),
    case("image", "PPM 0 x 0", "encoder zero.ppm out.bin",
         "encoder: error: zero.ppm: image is empty (0 width or height)"),
    case("image", "PPM 100000 x 100000 (header only)", "encoder huge.ppm out.bin",
         f"encoder: error: huge.ppm: image 100000x100000 {LIMIT}"),
    case("image", "PPM with a 20-digit width", "encoder overflow.ppm out.bin",
         "encoder: error: overflow.ppm: malformed PPM header (number too large)"),
    case("image", "PPM with a negative width", "encoder negative.ppm out.bin",
         "encoder: error: negative.ppm: malformed PPM header"),
    case("image", "16-bit PPM (maxval 65535)", "encoder deep.ppm out.bin",
         "encoder: error: deep.ppm: 16-bit PPM is not supported (8-bit RGB only)"),
    case("image", "PPM with maxval 0", "encoder maxval0.ppm out.bin",
         "encoder: error: maxval0.ppm: PPM with maxval 0 is not supported (255 only)"),
    case("image", "PPM with pixel data missing", "encoder short.ppm out.bin",
         "encoder: error: short.ppm: truncated PPM file (pixel data missing)"),
    case("image", "ASCII PPM (P3)", "encoder ascii.ppm out.bin",
         "encoder: error: ascii.ppm: only binary RGB PPM (P6) is supported, not P3"),
    case("image", "grayscale PGM (P5)", "encoder gray.pgm out.bin",
         "encoder: error: gray.pgm: only binary RGB PPM (P6) is supported, not P5"),
    # --- models: checkpoints (lic2cpp) and .licm files (codegen, lic-run) ---------------
    case("model", "missing checkpoint", "lic2cpp convert --model missing.pth -o out",
         "lic2cpp convert: error: checkpoint not found: missing.pth"),
    case("model", "text file as checkpoint", "lic2cpp convert --model notes.pth -o out",
         "lic2cpp convert: error: notes.pth is not a PyTorch checkpoint "
         "(Memo value not found at index 544502645)"),
    case("model", "checkpoint cut in half", "lic2cpp convert --model cut.pth -o out",
         "lic2cpp convert: error: cut.pth is not a PyTorch checkpoint "
         "(truncated or corrupt zip archive)"),
    case("model", "state_dict without --arch", "lic2cpp export --model sd.pth -o out",
         "lic2cpp export: error: sd.pth holds a state_dict: give the architecture with --arch "
         f"(known: {ARCHS})"),
    case("model", "unknown --arch", "lic2cpp export --model sd.pth --arch bmshj2099 -o out",
         f"lic2cpp export: error: unknown architecture 'bmshj2099' (known: {ARCHS})"),
    case("model", "GDN state_dict given as the ReLU architecture",
         f"lic2cpp fit --model gdn_sd.pth {RELU} --training-set train.npy -o t.lice",
         "lic2cpp fit: error: checkpoint has 'g_a.1.beta' (36 unexpected keys in all), which "
         "bmshj2018-factorized-relu(N=8, M=12) does not have"),
    case("model", "state_dict with a 0-d tensor for a weight",
         f"lic2cpp convert --model scalar.pth {RELU} -o out",
         "lic2cpp convert: error: 'g_a.0.weight' has shape (), expected a 4-d convolution "
         "weight"),
    case("model", "state_dict with a NaN weight", f"lic2cpp convert --model nan.pth {RELU} -o out",
         "lic2cpp convert: error: 'g_s.0.weight' holds non-finite values (NaN or infinity)"),
    case("model", "pickled full model with --weights-only",
         "lic2cpp convert --model full.pth --weights-only -o out",
         "lic2cpp convert: error: full.pth holds pickled Python objects "
         "(compressai.models.google.FactorizedPriorReLU), refused by --weights-only: "
         "unpickling them can run arbitrary code; save net.state_dict() and load that with "
         "--arch, or drop --weights-only if you trust the file"),
    case("model", "pickle that calls os.system, with --weights-only (not run)",
         f"lic2cpp convert --model evil.pth {RELU} --weights-only -o out",
         "lic2cpp convert: error: evil.pth holds pickled Python objects (posix.system), "
         "refused by --weights-only: unpickling them can run arbitrary code; save "
         "net.state_dict() and load that with --arch, or drop --weights-only if you trust "
         "the file"),
    case("model", "a layer the runtime lacks (Sigmoid in g_s)",
         "lic2cpp convert --model sigmoid.pth -o out",
         "lic2cpp convert: error: g_s.6 (Sigmoid) is not supported by the lic2cpp runtime"),
    case("model", "ONNX file that is not ONNX", "lic2cpp convert junk.onnx -o x.licm",
         "lic2cpp convert: error: junk.onnx is not an ONNX model (DecodeError)"),
    case("model", ".licm with a wrong magic", "lic2cpp codegen magic.licm codec/g_s.licm "
         "codec/entropy.lice -o cg",
         "lic2cpp codegen: error: magic.licm: not a lic2cpp model file (bad magic)"),
    case("model", ".licm cut to 1000 bytes", "lic-run cut.licm y.npy o.npy",
         "lic-run: error: model body size 25204 disagrees with the file size (976 bytes after "
         "the header)"),
    case("model", ".licm with one bit flipped", "lic-run flip.licm y.npy o.npy",
         "lic-run: error: model fingerprint mismatch (corrupt file)"),
    case("model", ".licm with a NaN weight (fingerprint valid)", "lic-run nan.licm y.npy o.npy",
         "lic-run: error: non-finite value in node 0 (conv_transpose2d) weight"),
    case("model", ".licm with a 0-tap kernel (fingerprint valid)",
         "lic2cpp codegen codec/g_a.licm k0.licm codec/entropy.lice -o cg",
         "lic2cpp codegen: error: k0.licm: node 0 (conv_transpose2d) kh = 0 is outside 1..15"),
    case("model", "g_a and g_s swapped",
         "lic2cpp codegen codec/g_s.licm codec/g_a.licm codec/entropy.lice -o cg",
         "lic2cpp codegen: error: g_a must take 3 channels (RGB) and g_s must give 3 channels"),
    case("model", "input with the wrong channel count", "lic-run codec/g_s.licm y3.npy o.npy",
         "lic-run: error: model g_s expects 12 input channels, got 3"),
    # --- tables: .lice files -------------------------------------------------------------
    case("tables", "missing tables", "lic2cpp build -o out --entropy missing.lice",
         "lic2cpp build: error: cannot read entropy model missing.lice: No such file or "
         "directory"),
    case("tables", "wrong magic", f"{CODEGEN} magic.lice -o cg",
         "lic2cpp codegen: error: magic.lice: not an entropy model file (bad magic)"),
    case("tables", "a .licm given as tables", f"{CODEGEN} codec/g_a.licm -o cg",
         "lic2cpp codegen: error: codec/g_a.licm: not an entropy model file (bad magic)"),
    case("tables", "last 3 bytes cut", f"{CODEGEN} cut.lice -o cg",
         "lic2cpp codegen: error: cut.lice: entropy model file has the wrong size "
         "(truncated?)"),
    case("tables", "one bit flipped", f"{CODEGEN} flip.lice -o cg",
         "lic2cpp codegen: error: flip.lice: entropy model fingerprint mismatch (corrupt file)"),
    case("tables", "a frequency of 0 (fingerprint valid)", f"{CODEGEN} freq0.lice -o cg",
         "lic2cpp codegen: error: freq0.lice: entropy model has an invalid probability table"),
    case("tables", "channel order not a permutation (fingerprint valid)",
         f"{CODEGEN} order.lice -o cg",
         "lic2cpp codegen: error: order.lice: entropy model channel order is not a "
         "permutation"),
    case("tables", "tables of another latent size (3 channels for 12)",
         f"{CODEGEN} c3.lice -o cg",
         "lic2cpp codegen: error: channel counts do not match: g_a gives 12, g_s takes 12, "
         "the entropy model has 3"),
    # --- command lines ---------------------------------------------------------------
    case("command line", "decoder without arguments", "decoder",
         "decoder: error: usage: decoder IN.bin OUT.(png|ppm) (see --help)"),
    case("command line", "decoder output of another type", "decoder a.bin out.jpg",
         "decoder: error: output file out.jpg must end in .png or .ppm"),
    case("command line", "decoder output in a missing folder", "decoder a.bin nodir/out.png",
         "decoder: error: cannot write nodir/out.png: No such file or directory"),
    case("command line", "encoder --threads 0", "encoder image.png out.bin --threads 0",
         "encoder: error: --threads needs a number from 1 to 256"),
    case("command line", "encoder unknown option", "encoder image.png out.bin --bogus",
         "encoder: error: unknown option --bogus (see --help)"),
    case("command line", "decoder option without its value", "decoder a.bin out.png --threads",
         "decoder: error: --threads needs a value (see --help)"),
    case("command line", "encoder option without its value", "encoder image.png out.bin --rdoq",
         "encoder: error: --rdoq needs a value (see --help)"),
    case("command line", "lic-run --threads 0", "lic-run codec/g_s.licm y.npy o.npy --threads 0",
         "lic-run: error: --threads needs an integer in 1..256, got '0'"),
    case("command line", "unknown lic2cpp command", "lic2cpp bogus",
         "lic2cpp: error: argument COMMAND: invalid choice: 'bogus' (choose from 'export', "
         "'convert', 'fit', 'codegen', 'build', 'eval', 'train', 'demo') (see lic2cpp --help)",
         exit=2),
    case("command line", "build without -o", "lic2cpp build",
         "lic2cpp build: error: the following arguments are required: -o/--output "
         "(see lic2cpp build --help)", exit=2),
    case("command line", "a number that is not one", "lic2cpp build -o out --max-patches abc",
         "lic2cpp build: error: argument --max-patches: invalid int value: 'abc' "
         "(see lic2cpp build --help)", exit=2),
    case("command line", "both --training-set and --entropy",
         "lic2cpp build -o out --training-set train.npy --entropy codec/entropy.lice",
         "lic2cpp build: error: give --training-set or --entropy, not both"),
    case("command line", "missing training set",
         f"lic2cpp fit --model sd.pth {RELU} --training-set nothere -o t.lice",
         "lic2cpp fit: error: training set not found: nothere"),
    case("command line", "eval of a folder without a build", "lic2cpp eval . --images .",
         "lic2cpp eval: error: encoder not found (run `lic2cpp build -o .` first)"),
    case("command line", "negative --steps", "lic2cpp train --steps -5 --images . -o run",
         "lic2cpp train: error: --steps must be positive"),
]


# ----------------------------------------------------------------------------- inputs

def make_inputs(work: Path, encoder: Path) -> None:
    """Write every bad file the cases name into ``work`` (the working folder)."""
    import numpy as np
    import torch
    from compressai.models import FactorizedPrior, FactorizedPriorReLU
    from PIL import Image
    from test_codec_programs import fix_checksum, random_image

    from lic2cpp import entropy, modelformat

    def put(name: str, data: bytes) -> None:
        (work / name).write_bytes(data)

    # bitstreams, from a real one
    random_image(work / "image.png", 24, 20, seed=7)
    subprocess.run([str(encoder), "image.png", "a.bin"], cwd=work, check=True)
    good = (work / "a.bin").read_bytes()

    def header_edit(offset: int, fmt: str, value: int) -> bytes:
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, value)
        return fix_checksum(data)

    def payload(body: bytes) -> bytes:
        data = bytearray(good[:40] + body)
        struct.pack_into("<I", data, 32, len(body))
        return fix_checksum(data)

    put("empty.bin", b"")
    put("magic.bin", b"LICX" + good[4:])
    put("short.bin", good[:20])
    put("cut.bin", good[:-1])
    put("long.bin", good + b"\0")
    put("v3.bin", header_edit(4, "<B", 3))
    # a 2.0 stream: the latent's rows in bands of one (docs/bitstream.md#payload)
    subprocess.run([str(encoder), "image.png", "b.bin", "--band-rows", "1"], cwd=work,
                   check=True)
    banded = bytearray((work / "b.bin").read_bytes())
    assert banded[4] == 2 and struct.unpack_from("<H", banded, 18)[0] >= 2
    put("rows0.bin", fix_checksum(banded[:22] + b"\0\0" + banded[24:]))
    put("table.bin", fix_checksum(banded[:40] + b"\xff\xff\xff\xff" + banded[44:]))
    cut = banded[:42]
    struct.pack_into("<I", cut, 32, 2)
    put("notable.bin", fix_checksum(cut))
    flipped = bytearray(good)
    flipped[50] ^= 4
    put("flip.bin", bytes(flipped))
    put("other.bin", header_edit(24, "<Q", struct.unpack_from("<Q", good, 24)[0] ^ 0x5A))
    put("mode.bin", header_edit(6, "<B", 255))
    put("wide.bin", header_edit(8, "<I", 65536))
    put("zero.bin", header_edit(8, "<I", 0))
    put("shape.bin", header_edit(18, "<H", 7))
    put("ff.bin", payload(b"\xff" * 65))
    put("early.bin", payload(good[40:50]))
    put("zeros.bin", payload(bytes(1000)))

    # images
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16)).save(work / "16bit.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8), "RGBA").save(
        work / "alpha.png")
    Image.fromarray(np.zeros((1, 70000, 3), dtype=np.uint8)).save(work / "wide.png")
    png = (work / "image.png").read_bytes()
    put("text.png", b"hello, not an image\n")
    put("empty.ppm", b"")
    put("cut.png", png[:len(png) // 2])
    crc = bytearray(png)
    crc[20] ^= 1  # inside IHDR: its CRC no longer matches
    put("crc.png", bytes(crc))
    zero_width = bytearray(png)
    struct.pack_into(">I", zero_width, 16, 0)  # IHDR width, then its CRC made valid again
    struct.pack_into(">I", zero_width, 29, zlib.crc32(bytes(zero_width[12:29])))
    put("zerosize.png", bytes(zero_width))
    put("zero.ppm", b"P6\n0 0\n255\n")
    put("huge.ppm", b"P6\n100000 100000\n255\n")
    put("overflow.ppm", b"P6\n99999999999999999999 1\n255\n")
    put("negative.ppm", b"P6\n-3 2\n255\n" + bytes(18))
    put("deep.ppm", b"P6\n2 2\n65535\n" + bytes(24))
    put("maxval0.ppm", b"P6\n1 1\n0\n" + bytes(3))
    put("short.ppm", b"P6\n4 4\n255\n" + bytes(10))
    put("ascii.ppm", b"P3\n1 1\n255\n0 0 0\n")
    put("gray.pgm", b"P5\n2 2\n255\n" + bytes(4))

    # checkpoints
    torch.manual_seed(0)
    relu = FactorizedPriorReLU(8, 12).eval()
    relu.update(force=True)
    sd = relu.state_dict()
    torch.save(sd, work / "sd.pth")
    torch.save({"model": relu}, work / "full.pth")
    put("notes.pth", b"just some text\n")
    raw = (work / "sd.pth").read_bytes()
    put("cut.pth", raw[:len(raw) // 2])
    gdn = FactorizedPrior(8, 12)
    gdn.update(force=True)
    torch.save(gdn.state_dict(), work / "gdn_sd.pth")
    torch.save({**sd, "g_a.0.weight": torch.tensor(1.0)}, work / "scalar.pth")
    nan = sd["g_s.0.weight"].clone()
    nan[0, 0, 0, 0] = float("nan")
    torch.save({**sd, "g_s.0.weight": nan}, work / "nan.pth")
    torch.save({"state_dict": sd, "x": OsSystem()}, work / "evil.pth")
    sigmoid = FactorizedPriorReLU(8, 12)
    sigmoid.update(force=True)
    sigmoid.g_s[6] = torch.nn.Sigmoid()
    torch.save({"model": sigmoid}, work / "sigmoid.pth")
    put("junk.onnx", b"not onnx")
    np.save(work / "train.npy", np.zeros((1, 256, 256, 3), dtype=np.uint8))

    # .licm files, from the codec's g_s
    gs = (work / "codec" / "g_s.licm").read_bytes()

    def refresh_licm(data: bytes) -> bytes:
        body = data[modelformat.HEADER_SIZE:]
        return data[:8] + struct.pack("<QQ", len(body), modelformat.fingerprint(body)) + body

    name_len = struct.unpack_from("<I", gs, 36)[0]
    node0 = 40 + name_len + (-name_len) % 4  # op, input count, input, then the attributes
    put("magic.licm", b"LICX" + gs[4:])
    put("cut.licm", gs[:1000])
    flipped = bytearray(gs)
    flipped[200] ^= 1
    put("flip.licm", bytes(flipped))
    nan_licm = bytearray(gs)
    struct.pack_into("<f", nan_licm, node0 + 12 + 48, float("nan"))  # first weight
    put("nan.licm", refresh_licm(bytes(nan_licm)))
    k0 = bytearray(gs)
    struct.pack_into("<I", k0, node0 + 12 + 8, 0)  # kh
    put("k0.licm", refresh_licm(bytes(k0)))
    np.save(work / "y.npy", np.zeros((2, 2, 12), np.float32))
    np.save(work / "y3.npy", np.zeros((2, 2, 3), np.float32))

    # tables, from the codec's
    lice = (work / "codec" / "entropy.lice").read_bytes()
    body = entropy.HEADER.size

    def refresh_lice(data: bytes) -> bytes:
        magic, major, minor, _, _ = entropy.HEADER.unpack_from(data)
        rest = data[body:]
        fingerprint = modelformat.fingerprint(rest)
        return entropy.HEADER.pack(magic, major, minor, len(rest), fingerprint) + rest

    put("magic.lice", b"LICX" + lice[4:])
    put("cut.lice", lice[:-3])
    flipped = bytearray(lice)
    flipped[100] ^= 1
    put("flip.lice", bytes(flipped))
    channels = struct.unpack_from("<I", lice, body)[0]
    first_table = body + 12 + 4 * channels + entropy.CHANNEL_HEAD.size
    freq0 = bytearray(lice)
    struct.pack_into("<H", freq0, first_table, 0)
    put("freq0.lice", refresh_lice(bytes(freq0)))
    order = bytearray(lice)
    struct.pack_into("<I", order, body + 12, channels)  # an index past the last channel
    put("order.lice", refresh_lice(bytes(order)))
    latents = np.random.default_rng(0).laplace(0, 1, (4, 3, 4, 4)).astype(np.float32)
    entropy.fit_entropy_model(latents).save(work / "c3.lice")


class OsSystem:
    """Pickles as a call of os.system (never unpickled here: --weights-only refuses it)."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo this should never run",))


# ------------------------------------------------------------------------------ runs

@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, sanitized_codec
         ) -> tuple[Path, dict[str, Path]]:
    from lic2cpp.runtime import lic_run_path

    folder = tmp_path_factory.mktemp("bad-inputs")
    codec = sanitized_codec  # the tiny codec of test_codec_programs.py (conftest.py)
    (folder / "codec").symlink_to(codec.folder, target_is_directory=True)
    make_inputs(folder, codec.encoder)
    programs = {"encoder": codec.encoder, "decoder": codec.decoder,
                "lic-run": lic_run_path(sanitize=True)}
    return folder, programs


def run_case(c: Case, folder: Path, programs: dict[str, Path]) -> tuple[int, str]:
    """(exit status, stderr) of the case, run in ``folder``."""
    if c.argv[0] != "lic2cpp":
        proc = subprocess.run([str(programs[c.argv[0]]), *c.argv[1:]], cwd=folder,
                              capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stderr
    from lic2cpp.cli import main

    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(list(c.argv[1:]))
            except SystemExit as exc:  # argparse
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(cwd)
    return status, err.getvalue()


@pytest.mark.parametrize("c", CASES, ids=[f"{c.kind}: {c.what}" for c in CASES])
def test_bad_input(c: Case, work: tuple[Path, dict[str, Path]]) -> None:
    folder, programs = work
    status, err = run_case(c, folder, programs)
    assert "Traceback" not in err and "Sanitizer" not in err and "runtime error" not in err, err
    assert err == c.error + "\n"
    assert status == c.exit
    assert not (folder / "out.png").exists() and not (folder / "out.bin").exists()


def test_at_least_25_kinds_across_all_inputs() -> None:
    kinds = {c.kind for c in CASES}
    assert kinds == {"bitstream", "image", "model", "tables", "command line"}
    assert len(CASES) >= 25
    assert len({(c.kind, c.what) for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------- docs

def escape(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    lines = ["| # | input | bad input | command | exit | error (stderr, one line) |",
             "|---|---|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        lines.append(f"| {i} | {c.kind} | {escape(c.what)} | `{escape(' '.join(c.argv))}` | "
                     f"{c.exit} | `{escape(c.error)}` |")
    return "\n".join(lines)


def documented() -> str:
    text = DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*)\n" + re.escape(END), text, re.S)
    assert match, f"{DOC} lacks the {BEGIN} ... {END} block"
    return match.group(1)


def test_docs_table_is_current() -> None:
    assert documented() == table(), "run `python3 tests/test_bad_inputs.py` to update docs"


if __name__ == "__main__":
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table() + "\n" + text[end:])
    print(f"wrote {len(CASES)} cases to {DOC}", file=sys.stderr)
