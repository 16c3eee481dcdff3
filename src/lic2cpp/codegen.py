"""`lic2cpp codegen`: g_a.licm + g_s.licm + entropy.lice -> a C library and the programs.

Writes, in the output folder (docs/library.md):

- ``lib/liblic2cpp_codec.a`` and ``lib/liblic2cpp_codec.so``: the codec with its networks
  and tables compiled in, behind the C interface ``include/lic2cpp.h``;
- ``lib/cmake/lic2cpp_codec/`` and ``CMakeLists.txt``: the CMake package (``find_package``
  and ``add_subdirectory``);
- ``encoder`` and ``decoder``: the programs, thin users of the static library.

The generated C++ sources hold no weights as text: the model and table files are pulled in
byte for byte by the assembler (``.incbin``), which compiles 12 MB in well under a second,
and the library reads them through ``lic::codec::embedded_encoder()``/``embedded_decoder()``.
The embedded copies are content-addressed files in the lic2cpp cache, and each generated
source names the files' fingerprints, so the toolchain's content-hash cache can safely reuse
a compiled object. The library's other objects do not depend on the model: they are
compiled once and reused by every build.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lic2cpp import __version__
from lic2cpp.entropy import EntropyModel
from lic2cpp.entropy import header_fingerprint as lice_fingerprint
from lic2cpp.errors import LicError
from lic2cpp.files import write_bytes_atomic
from lic2cpp.hyper import MAGIC as HYPER_MAGIC
from lic2cpp.hyper import HyperTables
from lic2cpp.modelformat import ModelFile, downsampling_factor, output_side, read_licm
from lic2cpp.modelformat import fingerprint as fnv1a64
from lic2cpp.modelformat import header_fingerprint as licm_fingerprint
from lic2cpp.toolchain import archive, cache_dir, compile_object, cpp_dir, link

STATIC_LIB_DIRS = [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/usr/lib"),
                   Path("/usr/local/lib")]


def png_link_args() -> list[str]:
    """libpng, zlib and (when its header is installed: the C++ then uses it to read PNGs
    faster) libdeflate, statically when their archives exist (the programs then stand
    alone)."""
    deflate = Path("/usr/include/libdeflate.h").is_file()
    for d in STATIC_LIB_DIRS:
        png, z, ld = d / "libpng16.a", d / "libz.a", d / "libdeflate.a"
        if png.is_file() and z.is_file() and (ld.is_file() or not deflate):
            return [str(png), str(z), *([str(ld)] if deflate else []), "-lm"]
    return ["-lpng16", "-lz", *(["-ldeflate"] if deflate else []), "-lm"]


LIB_NAME = "lic2cpp_codec"
HEADER = "lic2cpp.h"
# Files of a build, relative to the output folder (the programs aside).
LIBRARY_FILES = (f"lib/lib{LIB_NAME}.a", f"lib/lib{LIB_NAME}.so", f"include/{HEADER}",
                 f"lib/cmake/{LIB_NAME}/{LIB_NAME}Config.cmake",
                 f"lib/cmake/{LIB_NAME}/{LIB_NAME}ConfigVersion.cmake", "CMakeLists.txt")
CAPI_SOURCES = ("codec.cpp", "encode.cpp", "decode.cpp")


def program_main(role: str) -> Path:
    """The C++ main file of the ``encoder`` or ``decoder`` program."""
    return cpp_dir() / "codec" / "programs" / f"{role}_main.cpp"


def compiled_sources() -> list[Path]:
    """The C++ files a build compiles (besides the generated ones): the C interface's
    implementation and the programs' main files."""
    capi = cpp_dir() / "codec" / "capi"
    return [*(capi / name for name in CAPI_SOURCES), program_main("encoder"),
            program_main("decoder")]


def _blob(path: Path) -> tuple[Path, bytes]:
    """A content-addressed copy of ``path`` in the cache (so .incbin never sees a changed file)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:24]
    dest = cache_dir() / "blobs" / f"{digest}{path.suffix}"
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
    return dest, data


def _asm_path(path: Path) -> str:
    text = str(path.resolve())
    if any(ch in text for ch in '"\\\n') or ")lic" in text:
        raise LicError(f"unsupported character in the cache path {text}")
    return text


def _incbin(sym: str, path: Path) -> str:
    return f"""  .balign 64
  .global {sym}_begin
  .hidden {sym}_begin
{sym}_begin:
  .incbin "{_asm_path(path)}"
  .global {sym}_end
  .hidden {sym}_end
{sym}_end:
"""


def embedded_source(network: Path, tables: Path, multiple: int, ga_fp: int, gs_fp: int,
                    tables_fp: int, role: str, aux: Path | None = None,
                    synthesis: Path | None = None, decoder_network: Path | None = None,
                    rdoq_lambda: float = 0.0) -> str:
    """The generated C++ file defining lic::codec::embedded_{role}() for one codec half.

    ``aux`` is a hyperprior encoder's h_a. The encoder half also carries, for RDOQ, the
    model's float ``synthesis`` network, the ``decoder_network`` when the decoder runs
    another one (int16), and its default RDOQ λ (0: plain rounding).
    """
    blobs = {"network": network, "tables": tables, "aux": aux, "synthesis": synthesis,
             "decoder_network": decoder_network}
    syms = {key: f"lic2cpp_{role}_{key}" for key in blobs}
    asm = "".join(_incbin(syms[k], path) for k, path in blobs.items() if path is not None)
    externs = "".join(f'extern "C" const std::uint8_t {syms[k]}_begin[], {syms[k]}_end[];\n'
                      for k, path in blobs.items() if path is not None)

    def span(key: str) -> str:
        if blobs[key] is None:
            return "nullptr, 0"
        s = syms[key]
        return f"{s}_begin,\n                  static_cast<std::size_t>({s}_end - {s}_begin)"

    return f"""// Generated by lic2cpp.codegen for the {role}: do not edit.
// network {network.name}, tables {tables.name} (fingerprint {tables_fp:#018x}),
// g_a {ga_fp:#018x}, g_s {gs_fp:#018x}, downsampling factor {multiple}.
#include <cstddef>
#include <cstdint>

#include "codec/capi/embedded.hpp"

__asm__(R"lic(
  .pushsection .rodata.lic2cpp, "a"
{asm}  .popsection
)lic");

{externs}
namespace lic::codec {{

Embedded embedded_{role}() {{
  return Embedded{{{span("network")},
                  {span("tables")},
                  {span("aux")},
                  {multiple}u, {ga_fp:#x}ull, {gs_fp:#x}ull,
                  {span("synthesis")},
                  {span("decoder_network")},
                  {float(rdoq_lambda)!r}}};
}}

}}  // namespace lic::codec
"""


def load_tables(path: Path) -> EntropyModel | HyperTables:
    """Entropy tables by their magic: ``.lice`` context tables or ``.lich`` hyperprior
    tables."""
    if path.read_bytes()[:4] == HYPER_MAGIC:
        return HyperTables.load(path)
    return EntropyModel.load(path)


def tables_fingerprint(data: bytes) -> int:
    if data[:4] == HYPER_MAGIC:
        return int.from_bytes(data[16:24], "little")
    return lice_fingerprint(data)


def _check_models(ga: ModelFile, gs: ModelFile, tables: EntropyModel | HyperTables) -> None:
    c = tables.latent_channels if isinstance(tables, HyperTables) else tables.num_channels
    if ga.in_channels != 3 or gs.out_channels != 3:
        raise LicError("g_a must take 3 channels (RGB) and g_s must give 3 channels")
    if ga.out_channels != c or gs.in_channels != c:
        raise LicError(f"channel counts do not match: g_a gives {ga.out_channels}, g_s takes "
                       f"{gs.in_channels}, the entropy model has {c}")


def _upsampling(model: ModelFile) -> int:
    """Output side / input side of a synthesis transform (for a 64-pixel input)."""
    sides = [64]
    for node in model.nodes:
        sides.append(output_side(node, sides[node.inputs[0]]))
    return sides[-1] // 64


def _check_substitute(role: str, float_model: ModelFile, other: ModelFile) -> None:
    """A network the program runs instead of the model's float one (an int16 version,
    docs/int16.md) must have the same channels and sizes: it codes the same latent."""
    same = (other.in_channels == float_model.in_channels
            and other.out_channels == float_model.out_channels)
    if role == "encoder":
        same = same and downsampling_factor(other) == downsampling_factor(float_model)
    else:
        same = same and _upsampling(other) == _upsampling(float_model)
    if not same:
        raise LicError(f"the {role}'s network {other.name!r} does not have the shape of the "
                       "model's float one (channels, scale factor)")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _install(src: Path, dest: Path) -> None:
    """Copies ``src`` over ``dest`` atomically (a reader never sees a partial file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copy2(src, tmp)
    tmp.replace(dest)


def cmake_files(fingerprint: int) -> dict[str, str]:
    """The CMake package's files, from the templates in ``cpp/cmake/``."""
    values = {"@VERSION@": __version__, "@FINGERPRINT@": f"{fingerprint:#018x}",
              "@LIB_NAME@": LIB_NAME}
    files = {}
    for rel, template in ((f"lib/cmake/{LIB_NAME}/{LIB_NAME}Config.cmake", "Config.cmake.in"),
                          (f"lib/cmake/{LIB_NAME}/{LIB_NAME}ConfigVersion.cmake",
                           "ConfigVersion.cmake.in"),
                          ("CMakeLists.txt", "CMakeLists.txt.in")):
        text = (cpp_dir() / "cmake" / template).read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        files[rel] = text
    return files


def _check_h_a(h_a: Path | None, tables: EntropyModel | HyperTables) -> Path | None:
    """A hyperprior's tables need the h_a they were made for; context tables none."""
    if not isinstance(tables, HyperTables):
        if h_a is not None:
            raise LicError("h_a is only used with hyperprior tables (.lich)")
        return None
    if h_a is None:
        raise LicError("hyperprior tables need the h_a network (--h-a h_a.licm)")
    h_a = Path(h_a)
    if not h_a.is_file():
        raise LicError(f"input file not found: {h_a}")
    if licm_fingerprint(h_a.read_bytes()) != tables.h_a_fingerprint:
        raise LicError(f"{h_a} is not the h_a the hyperprior tables were made for")
    return h_a


def build_codec(ga_licm: Path, gs_licm: Path, entropy_path: Path, out_dir: Path, *,
                sanitize: bool = False, encoder_net: Path | None = None,
                decoder_net: Path | None = None, h_a: Path | None = None,
                rdoq_lambda: float = 0.0) -> tuple[Path, Path]:
    """Generate the sources and build the library, the CMake package and the programs.

    Returns the paths of ``out_dir/encoder`` and ``out_dir/decoder``. ``g_a``/``g_s`` are the
    model's float networks: they name the model in every bitstream (the fingerprint).
    ``encoder_net``/``decoder_net`` are networks the library runs instead (the int16 ones,
    docs/int16.md); bitstreams stay interchangeable between the float and the int16 builds
    of the same model. With ``sanitize`` (tests) everything is built with
    AddressSanitizer/UndefinedBehaviorSanitizer and only the static library, the header and
    the programs are written. ``entropy_path`` is a ``.lice`` file, or a hyperprior's ``.lich``
    (with its ``h_a``, built into the encoder half). With context tables (``.lice``) the
    encoder half also carries the float ``g_s`` (and ``decoder_net``) for RDOQ;
    ``rdoq_lambda`` > 0 makes RDOQ at that λ its default (docs/rdoq.md). Hyperprior tables
    have no RDOQ (``rdoq_lambda`` must be 0).
    """
    if not (rdoq_lambda >= 0 and math.isfinite(rdoq_lambda)):
        raise LicError(f"--rdoq must be a finite λ >= 0, got {rdoq_lambda}")
    ga_licm, gs_licm, entropy_path = Path(ga_licm), Path(gs_licm), Path(entropy_path)
    for p in (ga_licm, gs_licm, entropy_path, encoder_net, decoder_net):
        if p is not None and not Path(p).is_file():
            raise LicError(f"input file not found: {p}")
    ga, gs = read_licm(ga_licm), read_licm(gs_licm)
    tables = load_tables(entropy_path)
    _check_models(ga, gs, tables)
    if encoder_net is not None:
        _check_substitute("encoder", ga, read_licm(encoder_net))
    if decoder_net is not None:
        _check_substitute("decoder", gs, read_licm(decoder_net))
    h_a = _check_h_a(h_a, tables)
    multiple = downsampling_factor(ga)
    ga_blob, _ = _blob(Path(encoder_net) if encoder_net is not None else ga_licm)
    gs_blob, _ = _blob(Path(decoder_net) if decoder_net is not None else gs_licm)
    gs_float_blob, _ = _blob(gs_licm)
    tab_blob, tab_bytes = _blob(entropy_path)
    aux_blob = _blob(h_a)[0] if h_a is not None else None
    ga_fp = licm_fingerprint(ga_licm.read_bytes())
    gs_fp = licm_fingerprint(gs_licm.read_bytes())
    tab_fp = tables_fingerprint(tab_bytes)

    out_dir = Path(out_dir)
    suffix = "-asan" if sanitize else ""
    sources: list[tuple[Path, str]] = []
    rdoq = not isinstance(tables, HyperTables)  # RDOQ needs the context tables' exact rate
    if rdoq_lambda and not rdoq:
        raise LicError("RDOQ (--rdoq) needs context tables (.lice): a hyperprior model has "
                       "no RDOQ")
    for role, blob, aux in (("encoder", ga_blob, aux_blob), ("decoder", gs_blob, None)):
        gen = out_dir / "src" / f"lic2cpp_{role}.cpp"
        extra: dict = {}
        if role == "encoder" and rdoq:
            extra = {"synthesis": gs_float_blob, "rdoq_lambda": rdoq_lambda,
                     "decoder_network": gs_blob if decoder_net is not None else None}
        _write_if_changed(gen, embedded_source(blob, tab_blob, multiple, ga_fp, gs_fp, tab_fp,
                                               role, aux, **extra))
        sources.append((gen, f"lic2cpp_{role}{suffix}"))
    capi = cpp_dir() / "codec" / "capi"
    sources += [(capi / name, f"capi_{Path(name).stem}{suffix}") for name in CAPI_SOURCES]
    mains = [(program_main(role), f"{role}_main{suffix}") for role in ("encoder", "decoder")]
    # The two halves of the C interface are the long compilations: side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(compile_object, src, name, sanitize=sanitize)
                for src, name in sources + mains]
        objects = [job.result() for job in jobs]
    lib_objects, main_objects = objects[:len(sources)], objects[len(sources):]

    static = archive(lib_objects, out_dir / "lib" / f"lib{LIB_NAME}.a")
    _install(cpp_dir() / "codec" / "capi" / HEADER, out_dir / "include" / HEADER)
    if not sanitize:
        exports = cpp_dir() / "codec" / "capi" / "exports.map"
        link(lib_objects, out_dir / "lib" / f"lib{LIB_NAME}.so", shared=True,
             libs=[f"-Wl,--version-script={exports}"])
        for rel, text in cmake_files(_codec_fingerprint(ga_fp, gs_fp, tab_fp)).items():
            _write_if_changed(out_dir / rel, text)
    results = []
    for role, obj in zip(("encoder", "decoder"), main_objects, strict=True):
        exe = out_dir / role
        link([obj, static], exe, sanitize=sanitize, libs=png_link_args())
        results.append(exe)
    return results[0], results[1]


def _codec_fingerprint(ga_fp: int, gs_fp: int, tables_fp: int) -> int:
    """The bitstream's model fingerprint (docs/bitstream.md): FNV-1a 64 of the three."""
    return fnv1a64(b"".join(v.to_bytes(8, "little") for v in (ga_fp, gs_fp, tables_fp)))


def run(args: argparse.Namespace) -> int:
    enc, dec = build_codec(Path(args.g_a), Path(args.g_s), Path(args.entropy), Path(args.out),
                           sanitize=args.sanitize, h_a=Path(args.h_a) if args.h_a else None,
                           rdoq_lambda=args.rdoq)
    print(f"wrote {enc} and {dec}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "codegen",
        help="compile the codec library and the standalone encoder and decoder from .licm "
             "networks and entropy tables",
        description="Generate the C++ sources with the networks (g_a.licm, g_s.licm) and the "
                    "entropy tables (entropy.lice) built in, and compile the C library "
                    "(OUT/lib, OUT/include/lic2cpp.h, a CMake package) and the programs "
                    "OUT/encoder and OUT/decoder. They need no Python and no model file.",
    )
    p.add_argument("g_a", help="analysis transform, .licm (from `lic2cpp convert`)")
    p.add_argument("g_s", help="synthesis transform, .licm")
    p.add_argument("entropy", help="entropy tables: .lice (from `lic2cpp fit`) or a "
                                   "hyperprior's .lich (from `lic2cpp build`)")
    p.add_argument("--h-a", default=None, metavar="H_A.licm",
                   help="the hyperprior's h_a network (needed with .lich tables)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--rdoq", type=float, default=0.0, metavar="LAMBDA",
                   help="make RDOQ at this λ (training-loss units, λ·255²·MSE + bpp) the "
                        "encoder's default; 0 (default): plain rounding")
    p.add_argument("--sanitize", action="store_true",
                   help="build with AddressSanitizer/UndefinedBehaviorSanitizer (for testing)")
    p.set_defaults(func=run)
