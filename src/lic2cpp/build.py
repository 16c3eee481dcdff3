"""`lic2cpp build`: model + training set -> OUT/encoder and OUT/decoder, every step cached.

Steps, each recorded in ``OUT/manifest.json`` with a key (a hash of the step's inputs) and
the hashes of the files it wrote:

1. ``convert``: the model file's contents, ``--arch`` and the converter's code ->
   ``g_a.licm``, ``g_s.licm``;
2. ``fit``: the model file's contents, ``--arch``, the training set's identity (path,
   sizes, mtimes) and options (``--offsets``, and λ for ``rd``), the fitting code ->
   ``entropy.lice`` and ``fit_stats.json``;
3. ``codegen``: the *contents* of the three files above, the C++ sources and the code
   generator -> ``encoder``, ``decoder``.

A step runs again when its key changed or one of its outputs is missing or was modified.
Because ``codegen`` keys on the contents of its inputs, a refit that gives the same tables
(e.g. after only touching the training set) does not recompile.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp.errors import LicError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ENTROPY_FILE = "entropy.lice"
FIT_STATS = "fit_stats.json"
REPORT = "report.md"
STEP_NAMES = ("convert", "fit", "codegen")

# Python modules whose code decides each step's output (hashed into the step key).
CONVERT_MODULES = ("lic2cpp.load", "lic2cpp.export", "lic2cpp.convert", "lic2cpp.modelformat")
FIT_MODULES = ("lic2cpp.load", "lic2cpp.datasets", "lic2cpp.fit", "lic2cpp.entropy",
               "lic2cpp.offsets", "lic2cpp.rd_offsets")
CODEGEN_MODULES = ("lic2cpp.codegen", "lic2cpp.toolchain")


# --- hashing -----------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def modules_hash(names: tuple[str, ...]) -> str:
    """Hash of the source files of ``names`` (a module not present hashes as absent)."""
    digest = hashlib.sha256()
    for name in names:
        spec = importlib.util.find_spec(name)
        digest.update(name.encode() + b"\0")
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            digest.update(Path(spec.origin).read_bytes())
        else:
            digest.update(b"<absent>")
    return digest.hexdigest()


def cpp_sources_hash() -> str:
    """Hash of every C++ source under cpp/ (runtime, codec, tools)."""
    from lic2cpp.toolchain import cpp_dir

    root = cpp_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix in {".hpp", ".h", ".cpp", ".inc", ".in", ".txt"}:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def key_of(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


# --- manifest ----------------------------------------------------------------------------

def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "steps": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"format": MANIFEST_FORMAT, "steps": {}}  # unreadable: rebuild everything
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return {"format": MANIFEST_FORMAT, "steps": {}}
    data.setdefault("steps", {})
    return data


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / MANIFEST)


def step_is_current(out_dir: Path, record: dict[str, Any] | None, key: str) -> bool:
    if not record or record.get("key") != key:
        return False
    for name, sha in record.get("outputs", {}).items():
        path = out_dir / name
        if not path.is_file() or file_sha256(path) != sha:
            return False
    return True


# --- the build ---------------------------------------------------------------------------

@dataclass
class BuildOptions:
    model: Path
    training_set: Path | None  # None: ``entropy`` gives the tables
    out_dir: Path
    entropy: Path | None = None  # ready-made entropy tables (.lice) instead of a fit
    arch: str | None = None
    max_patches: int | None = None
    seed: int = 0
    patch_size: int = 256
    batch_size: int = 8
    offsets: str = "median"  # see lic2cpp.offsets
    lmbda: float | None = None  # for offsets "rd"; None: the checkpoint's
    force: bool = False
    progress: bool | None = None
    log: Callable[[str], None] = print


@dataclass
class BuildResult:
    encoder: Path
    decoder: Path
    ran: list[str] = field(default_factory=list)  # steps that ran (the others were cached)
    seconds: dict[str, float] = field(default_factory=dict)


def check_model_path(path: Path) -> None:
    if not path.exists():
        raise LicError(f"model file not found: {path}")
    if not path.is_file():
        raise LicError(f"model path is not a file: {path}")


def build(opts: BuildOptions) -> BuildResult:
    """Run convert, fit and codegen in ``opts.out_dir``, each only if out of date."""
    from lic2cpp import __version__
    from lic2cpp.datasets import check_training_set, training_set_identity
    from lic2cpp.fit import check_training_path
    from lic2cpp.offsets import check_mode, resolve_lambda
    from lic2cpp.toolchain import find_compiler

    check_model_path(opts.model)
    check_mode(opts.offsets)
    if (opts.training_set is None) == (opts.entropy is None):
        raise LicError("give either a training set or ready-made entropy tables")
    if opts.training_set is not None:
        check_training_path(opts.training_set)
        check_training_set(opts.training_set, opts.patch_size)  # fail before the slow steps
    elif opts.entropy is not None:
        from lic2cpp.entropy import EntropyModel

        EntropyModel.load(opts.entropy)  # missing or invalid tables: refused before any work
    lmbda, lambda_source = None, None
    if opts.training_set is not None and opts.offsets == "rd":
        lmbda, lambda_source = resolve_lambda(opts.lmbda, opts.model)
    out = opts.out_dir
    if out.exists() and not out.is_dir():
        raise LicError(f"output path exists and is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    manifest.update({
        "lic2cpp": __version__,
        "model": str(opts.model.resolve()),
        "arch": opts.arch,
        "training_set": str(opts.training_set.resolve()) if opts.training_set else None,
        "entropy_source": str(opts.entropy.resolve()) if opts.entropy else None,
    })
    model_sha = file_sha256(opts.model)
    net_cache: list[Any] = []

    def net() -> Any:  # loaded once, and only if a step needs it
        if not net_cache:
            from lic2cpp.load import load_model

            net_cache.append(load_model(opts.model, opts.arch))
        return net_cache[0]

    result = BuildResult(encoder=out / "encoder", decoder=out / "decoder")

    def step(index: int, name: str, inputs: dict[str, Any], action: Callable[[], list[str]]
             ) -> None:
        key = key_of(inputs)
        record = manifest["steps"].get(name)
        label = f"[{index}/{len(STEP_NAMES)}] {name}"
        if not opts.force and step_is_current(out, record, key):
            opts.log(f"{label}: up to date")
            return
        opts.log(f"{label} ...")
        start = time.perf_counter()
        outputs = action()
        seconds = time.perf_counter() - start
        manifest["steps"][name] = {
            "key": key,
            "inputs": inputs,
            "outputs": {o: file_sha256(out / o) for o in outputs},
            "seconds": round(seconds, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_manifest(out, manifest)  # after every step: an interrupted build keeps its work
        result.ran.append(name)
        result.seconds[name] = seconds
        opts.log(f"{label}: done in {seconds:.1f} s")

    def do_convert() -> list[str]:
        from lic2cpp.convert import convert_model

        ga, gs = convert_model(net(), out)
        return [_relative(out, ga), _relative(out, gs)]

    def do_fit() -> list[str]:
        from lic2cpp.fit import fit_latents, summarise_model

        if opts.entropy is not None:  # given tables: checked, copied, nothing estimated
            from lic2cpp.entropy import EntropyModel

            opts.log(f"  using the given tables {opts.entropy} (no fit)")
            given = EntropyModel.load(opts.entropy)  # refuses a file that is not valid tables
            shutil.copyfile(opts.entropy, out / ENTROPY_FILE)
            stats = {"model": summarise_model(net()), "training_patches": 0,
                     "patch_size": opts.patch_size, "latent_per_patch": None,
                     "estimate": None, "offsets": given_offsets(net(), given)}
            (out / FIT_STATS).write_text(json.dumps(stats, indent=2) + "\n")
            return [ENTROPY_FILE, FIT_STATS]
        assert opts.training_set is not None
        fitted = fit_latents(net(), opts.training_set, max_patches=opts.max_patches,
                             seed=opts.seed, patch_size=opts.patch_size,
                             batch_size=opts.batch_size, offsets=opts.offsets, lmbda=lmbda,
                             lambda_source=lambda_source, progress=opts.progress)
        fitted.entropy_model.save(out / ENTROPY_FILE)
        stats = fit_statistics(fitted, opts)
        (out / FIT_STATS).write_text(json.dumps(stats, indent=2, default=_jsonable) + "\n")
        return [ENTROPY_FILE, FIT_STATS]

    def do_codegen() -> list[str]:
        from lic2cpp.codegen import build_codec

        opts.log("  generating and compiling the encoder and decoder (this takes a while)")
        enc, dec = build_codec(out / ga_name, out / gs_name, out / ENTROPY_FILE, out)
        for made, want in ((Path(enc), result.encoder), (Path(dec), result.decoder)):
            if made.resolve() != want.resolve():
                raise LicError(f"codegen wrote {made}, expected {want}")
        return ["encoder", "decoder"]

    step(1, "convert", {
        "model_sha256": model_sha, "arch": opts.arch, "lic2cpp": __version__,
        "code": modules_hash(CONVERT_MODULES),
    }, do_convert)
    ga_name, gs_name = list(manifest["steps"]["convert"]["outputs"])
    if opts.training_set is not None:
        fit_inputs = {
            "model_sha256": model_sha, "arch": opts.arch, "lic2cpp": __version__,
            "training_set": training_set_identity(opts.training_set),
            "max_patches": opts.max_patches, "seed": opts.seed, "patch_size": opts.patch_size,
            "offsets": opts.offsets, "lambda": lmbda, "code": modules_hash(FIT_MODULES),
        }
    else:
        assert opts.entropy is not None
        fit_inputs = {"model_sha256": model_sha, "arch": opts.arch, "lic2cpp": __version__,
                      "entropy_sha256": file_sha256(opts.entropy),
                      "code": modules_hash(FIT_MODULES)}
    step(2, "fit", fit_inputs, do_fit)
    step(3, "codegen", {
        "g_a": manifest["steps"]["convert"]["outputs"][ga_name],
        "g_s": manifest["steps"]["convert"]["outputs"][gs_name],
        "entropy": manifest["steps"]["fit"]["outputs"][ENTROPY_FILE],
        "lic2cpp": __version__, "compiler": find_compiler(),
        "cpp": cpp_sources_hash(), "code": modules_hash(CODEGEN_MODULES),
    }, do_codegen)
    write_manifest(out, manifest)
    (out / REPORT).write_text(render_report(out, manifest))
    return result


def given_offsets(net: Any, tables: Any) -> dict[str, Any]:
    """What is known of given tables' offsets: whether they are the model's medians."""
    from lic2cpp.offsets import model_medians

    try:
        medians = model_medians(net, tables.num_channels)
    except LicError:
        return {"mode": "given", "equal_medians": False}
    return {"mode": "given", "equal_medians": bool(np.array_equal(medians, tables.offsets))}


def _relative(out: Path, path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError as exc:
        raise LicError(f"step wrote {path} outside the output folder {out}") from exc


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays in the statistics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fit_statistics(fitted: Any, opts: BuildOptions) -> dict[str, Any]:
    """Model summary, latent shape and the entropy estimate on the training latents."""
    n, c, h, w = fitted.latents.shape
    return {
        "model": fitted.summary,
        "training_patches": int(n),
        "patch_size": opts.patch_size,
        "latent_per_patch": [int(c), int(h), int(w)],
        "estimate": fitted.entropy_model.estimate_bits(fitted.latents),
        "offsets": fitted.offsets,
        "channels": channel_summary(fitted.entropy_model),
    }


def channel_summary(model: Any) -> dict[str, Any]:
    """Per-channel offset and predecessor in the coding order, where the model exposes them."""
    info: dict[str, Any] = {}
    if hasattr(model, "offsets"):
        info["offsets"] = [float(m) for m in model.offsets]
    if hasattr(model, "predecessors"):
        info["coded_after"] = [int(p) for p in model.predecessors()]
    return info


# --- the report --------------------------------------------------------------------------

def render_report(out: Path, manifest: dict[str, Any]) -> str:
    stats = json.loads((out / FIT_STATS).read_text())
    model = stats["model"]
    p = stats["patch_size"]
    down = model.get("downsampling", 16)
    c, h, w = stats["latent_per_patch"] or (model["M"], p // down, p // down)
    lines = [
        "# lic2cpp build report",
        "",
        "## Model",
        f"- file: `{manifest['model']}`"
        + (f" (arch `{manifest['arch']}`)" if manifest.get("arch") else ""),
        f"- architecture: {model['arch']}, N = {model['N']}, M = {model['M']}",
        f"- parameters: {model['params']:,} (g_a {model['params_g_a']:,}, "
        f"g_s {model['params_g_s']:,})",
        f"- latent: {c} channels at 1/{down} of the image size "
        f"({c}×{h}×{w} for a {p}×{p} patch; the encoder pads images to a multiple of {down})",
        "",
        *render_training(manifest, stats),
        "",
        "## Steps",
        "",
        "| step | seconds (last run) | finished |",
        "|---|---|---|",
    ]
    for name in STEP_NAMES:
        rec = manifest["steps"].get(name, {})
        lines.append(f"| {name} | {rec.get('seconds', '')} | {rec.get('finished', '')} |")
    lines += ["", "Outputs: `encoder`, `decoder` (standalone executables).", ""]
    return "\n".join(lines)


def render_training(manifest: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    from lic2cpp.fit import describe_offsets

    if stats["estimate"] is None:
        lines = ["## Entropy tables", "",
                 f"- given, not fitted here: `{manifest.get('entropy_source')}` (no training "
                 "set, so no estimate)"]
        if stats.get("offsets"):
            lines.append(f"- quantisation offsets: {describe_offsets(stats['offsets'])}")
        return lines

    p = stats["patch_size"]
    return [
        "## Training set",
        f"- `{manifest['training_set']}`: {stats['training_patches']} patches of {p}×{p}",
        "",
        "## Quantisation offsets",
        f"- {describe_offsets(stats['offsets'])}" if stats.get("offsets") else "- not recorded",
        "",
        "## Entropy estimate on the training latents (ideal code length)",
        "",
        *render_estimate(stats["estimate"], pixels=stats["training_patches"] * p * p,
                         channel_info=stats.get("channels")),
    ]


def render_estimate(est: dict[str, Any], pixels: int,
                    channel_info: dict[str, Any] | None = None) -> list[str]:
    """Markdown for EntropyModel.estimate_bits' result: totals, then per channel."""
    total_ctx = est.get("bits_ctx")
    total_plain = est.get("bits_plain")
    channel_info = channel_info or {}
    lines: list[str] = []
    if total_ctx is None or total_plain is None:
        # Unknown layout: show it as it is rather than guessing.
        return ["```", json.dumps(est, indent=1, default=_jsonable)[:20000], "```"]
    gain = 100.0 * (1.0 - total_ctx / total_plain) if total_plain else 0.0
    lines += [
        "| | bits | bits per pixel |",
        "|---|---|---|",
        f"| per-channel CDFs, no contexts | {total_plain:,.0f} | {total_plain / pixels:.4f} |",
        f"| with contexts | {total_ctx:,.0f} | {total_ctx / pixels:.4f} |",
        "",
        f"Contexts save {gain:.2f}% of the bits.",
        "",
    ]
    per_ctx = est.get("per_channel_ctx")
    per_plain = est.get("per_channel_plain")
    if per_ctx is not None and per_plain is not None:
        offsets = channel_info.get("offsets") or [None] * len(per_ctx)
        pred = channel_info.get("coded_after") or [None] * len(per_ctx)
        lines += ["Per channel (bits summed over the training set; channels coded in the "
                  "fitted order, each after the channel that best predicts it):", "",
                  "| channel | offset | coded after | bits, no contexts | bits, contexts "
                  "| saving |", "|---|---|---|---|---|---|"]
        for ch, (a, b) in enumerate(zip(per_plain, per_ctx, strict=True)):
            saving = f"{100.0 * (1.0 - b / a):.1f}%" if a else "–"
            offset = "" if offsets[ch] is None else f"{offsets[ch]:.4f}"
            after = "" if pred[ch] is None or pred[ch] < 0 else str(pred[ch])
            lines.append(f"| {ch} | {offset} | {after} | {a:,.1f} | {b:,.1f} | {saving} |")
    return lines


# --- command line ------------------------------------------------------------------------

def _demo_attr(name: str) -> Callable[[], Any]:
    """A function of lic2cpp.demo, the owner of the shipped default model."""
    try:
        from lic2cpp import demo
    except ModuleNotFoundError as exc:
        raise LicError("no --model given and no default model is available "
                       "(lic2cpp.demo is not installed); pass --model") from exc
    getter = getattr(demo, name, None)
    if getter is None:
        raise LicError(f"no --model given and lic2cpp.demo has no {name}(); pass --model")
    return getter


def default_model_path() -> Path:
    """The shipped default model."""
    return Path(_demo_attr("default_model_path")())


def default_entropy_path() -> Path:
    """The entropy tables shipped with the default model (fitted on training photos)."""
    return Path(_demo_attr("default_entropy_path")())


def register(subparsers: argparse._SubParsersAction) -> None:
    from lic2cpp.fit import add_training_arguments

    p = subparsers.add_parser(
        "build",
        help="model + training set -> standalone encoder and decoder (all steps, cached)",
        description="Convert the model's transforms, fit the entropy model on the training "
                    "set, generate and compile OUT/encoder and OUT/decoder. Each step is "
                    "cached in OUT/manifest.json and redone only when its inputs change. "
                    "Writes OUT/report.md. With neither --model nor --training-set, builds "
                    "the shipped default model with its shipped entropy tables.",
    )
    p.add_argument("--model", default=None,
                   help="CompressAI checkpoint (.pth); default: the shipped default model")
    p.add_argument("--training-set", default=None, metavar="PATH",
                   help=".npy / raw N×256×256×3 uint8 file, or a folder of images "
                        "(required unless --entropy is given or --model is left out)")
    p.add_argument("--entropy", default=None, metavar="FILE",
                   help="use these entropy tables (.lice, from `lic2cpp fit`) instead of "
                        "fitting on a training set")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (encoder, decoder, report.md, intermediate files)")
    p.add_argument("--force", action="store_true", help="redo every step")
    add_training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lic2cpp.fit import offsets_option

    model = Path(args.model) if args.model else default_model_path()
    training_set = Path(args.training_set) if args.training_set else None
    entropy = Path(args.entropy) if args.entropy else None
    if training_set is not None and entropy is not None:
        raise LicError("give --training-set or --entropy, not both")
    if training_set is None and entropy is None:
        if args.model:
            raise LicError("--training-set is required (or --entropy with fitted tables)")
        entropy = default_entropy_path()
    if entropy is not None and (args.offsets is not None or args.lmbda is not None):
        raise LicError("--offsets/--lambda apply to a fit; given tables carry their own "
                       "offsets (give --training-set to fit)")
    opts = BuildOptions(
        model=model, training_set=training_set, entropy=entropy, out_dir=Path(args.output),
        arch=args.arch, max_patches=args.max_patches, seed=args.seed,
        patch_size=args.patch_size, batch_size=args.batch_size,
        offsets=offsets_option(args), lmbda=args.lmbda, force=args.force,
    )
    start = time.perf_counter()
    result = build(opts)
    total = time.perf_counter() - start
    what = ", ".join(result.ran) if result.ran else "nothing (all steps up to date)"
    print(f"built {result.encoder} and {result.decoder} in {total:.1f} s; ran: {what}")
    print(f"report: {opts.out_dir / REPORT}")
    return 0
