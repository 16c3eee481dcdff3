"""`lic2cpp build`: model + training set -> OUT/encoder and OUT/decoder, every step cached.

Steps, each recorded in ``OUT/manifest.json`` with a key (a hash of the step's inputs) and
the hashes of the files it wrote:

1. ``convert``: the model file's contents, ``--arch`` and the converter's code ->
   ``g_a.licm``, ``g_s.licm``;
2. ``fit``: the model file's contents, ``--arch``, the training set's identity (path,
   sizes, mtimes) and options (``--offsets``, and λ for ``rd``), the fitting code ->
   ``entropy.lice`` and ``fit_stats.json``;
3. ``int16`` (only with ``--int16``): the model file, the quantizers file, the training set
   (calibration) and the options -> ``g_s_int16.licm`` (and ``g_a_int16.licm`` with
   ``--int16 both``) and ``int16.json`` (docs/int16.md);
4. ``codegen``: the *contents* of the files above, the C++ sources and the code
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
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp import __version__, codegen
from lic2cpp.assets import default_entropy_path, default_model_path
from lic2cpp.convert import convert_model
from lic2cpp.datasets import check_training_set, load_training_set, training_set_identity
from lic2cpp.entropy import EntropyModel
from lic2cpp.errors import LicError
from lic2cpp.fit import (
    add_training_arguments,
    check_training_path,
    describe_offsets,
    fit_latents,
    offsets_option,
    summarise_model,
)
from lic2cpp.hyper import (
    KIND_NAMES,
    fit_hybrid,
    hyper_kind,
    int16_hyper_synthesis,
    is_hyperprior,
    training_symbols,
)
from lic2cpp.hyper import hyper_tables as build_hyper_tables
from lic2cpp.load import load_model, model_transforms
from lic2cpp.modelformat import read_licm
from lic2cpp.offsets import check_mode, model_medians, resolve_lambda
from lic2cpp.prior import model_prior
from lic2cpp.toolchain import cpp_dir, find_compiler, source_closure

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ENTROPY_FILE = "entropy.lice"
FIT_STATS = "fit_stats.json"
REPORT = "report.md"
STEP_NAMES = ("convert", "fit", "int16", "codegen")
INT16_REPORT = "int16.json"
INT16_MODES = ("decoder", "both")

# Python modules whose code decides each step's output (hashed into the step key).
CONVERT_MODULES = ("lic2cpp.load", "lic2cpp.export", "lic2cpp.convert", "lic2cpp.modelformat")
FIT_MODULES = ("lic2cpp.load", "lic2cpp.datasets", "lic2cpp.images", "lic2cpp.fit",
               "lic2cpp.entropy", "lic2cpp.offsets", "lic2cpp.rd_offsets", "lic2cpp.prior",
               "lic2cpp.hyper", "lic2cpp.int16", "lic2cpp.fixedpoint", "lic2cpp.modelformat")
# How the latent is coded (docs/pipeline.md#priors): tables fitted on the training set, the
# model's own quantised CDFs, or a hyperprior model's own coding (docs/hyperprior.md).
PRIORS = ("fitted", "model", "hyper", "hybrid")
# The default for a hyperprior model given a training set: whichever of these spends the
# fewest bits on it (without a training set: hyper).
AUTO_HYPER = "auto"
HYPER_FILE = "hyper.lich"
# Training patches the hyperprior's code length is estimated on (the numpy int16 h_s is
# slow), and those its int16 h_s is calibrated on.
HYPER_ESTIMATE_PATCHES = 64
HYPER_CALIBRATION_PATCHES = 16
CODEGEN_MODULES = ("lic2cpp.codegen", "lic2cpp.modelformat", "lic2cpp.entropy",
                   "lic2cpp.hyper", "lic2cpp.toolchain")
INT16_MODULES = ("lic2cpp.int16", "lic2cpp.fixedpoint", "lic2cpp.modelformat", "lic2cpp.load",
                 "lic2cpp.fit", "lic2cpp.datasets", "lic2cpp.images")


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
    """Hash of the C++ sources the library and the programs compile (and only those)."""
    root = cpp_dir()
    digest = hashlib.sha256()
    extra = [root / "codec" / "capi" / "exports.map", *sorted((root / "cmake").glob("*.in"))]
    for path in [*source_closure(codegen.compiled_sources()), *extra]:
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
    # one of PRIORS; None: "hyper" for a hyperprior model, else "fitted"
    prior: str | None = None
    arch: str | None = None
    weights_only: bool = False  # torch.load(weights_only=True): state_dicts only
    max_patches: int | None = None
    seed: int = 0
    patch_size: int = 256
    batch_size: int = 8
    offsets: str = "median"  # see lic2cpp.offsets
    lmbda: float | None = None  # for offsets "rd"; None: the checkpoint's
    force: bool = False
    progress: bool | None = None
    log: Callable[[str], None] = print
    int16: str | None = None  # None (float), "decoder" or "both" (docs/int16.md)
    quantizers: Path | None = None  # upstream quantizers pickle for --int16
    calib_patches: int = 16
    headroom_bits: int = 1
    rdoq: float = 0.0  # the encoder's default RDOQ λ (0: plain rounding; docs/rdoq.md)


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


def check_inputs(opts: BuildOptions) -> None:
    """Refuse bad inputs before any slow step."""
    check_model_path(opts.model)
    check_mode(opts.offsets)
    if opts.prior is not None and opts.prior not in PRIORS:
        raise LicError(f"unknown prior '{opts.prior}' (known: {', '.join(PRIORS)})")
    if opts.prior in ("model", "hyper", "hybrid"):
        if opts.entropy is not None:
            raise LicError(f"--prior {opts.prior} makes its own tables: --entropy does not "
                           "apply")
        if opts.prior == "hybrid" and opts.training_set is None:
            raise LicError("--prior hybrid fits tables: give --training-set")
    elif opts.training_set is not None and opts.entropy is not None:
        raise LicError("give either a training set or ready-made entropy tables, not both")
    elif opts.prior == "fitted" and opts.training_set is None and opts.entropy is None:
        raise LicError("give either a training set or ready-made entropy tables")
    if opts.training_set is not None:
        check_training_path(opts.training_set)
        check_training_set(opts.training_set, opts.patch_size)
    elif opts.entropy is not None:
        EntropyModel.load(opts.entropy)  # missing or invalid tables
    if opts.int16 is not None and opts.int16 not in INT16_MODES:
        raise LicError(f"--int16 must be one of {', '.join(INT16_MODES)}, not {opts.int16!r}")
    if not (opts.rdoq >= 0 and math.isfinite(opts.rdoq)):
        raise LicError(f"--rdoq must be a finite λ >= 0 (0: plain rounding), got {opts.rdoq}")
    if opts.int16 == "both" and opts.training_set is None:
        raise LicError("--int16 both calibrates g_a on training patches: give --training-set")
    if opts.quantizers is not None and not opts.quantizers.is_file():
        raise LicError(f"quantizers file not found: {opts.quantizers}")
    if opts.out_dir.exists() and not opts.out_dir.is_dir():
        raise LicError(f"output path exists and is not a folder: {opts.out_dir}")


class BuildRun:
    """One build in progress: the options, the manifest and the steps that ran."""

    def __init__(self, opts: BuildOptions) -> None:
        self.opts = opts
        self.lmbda, self.lambda_source = None, None
        if opts.training_set is not None and opts.offsets == "rd":
            self.lmbda, self.lambda_source = resolve_lambda(opts.lmbda, opts.model)
        self.out = opts.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.manifest = read_manifest(self.out)
        self.manifest.update({
            "lic2cpp": __version__,
            "model": str(opts.model.resolve()),
            "arch": opts.arch,
            "training_set": str(opts.training_set.resolve()) if opts.training_set else None,
            "entropy_source": str(opts.entropy.resolve()) if opts.entropy else None,
            "prior": opts.prior,  # as asked; the step records say what was used
        })
        self.model_sha = file_sha256(opts.model)
        self.result = BuildResult(encoder=self.out / "encoder", decoder=self.out / "decoder")
        self._net: Any = None

    def net(self) -> Any:
        """The model, loaded once, and only if a step needs it."""
        if self._net is None:
            self._net = load_model(self.opts.model, self.opts.arch,
                                   weights_only=self.opts.weights_only)
        return self._net

    def prior(self) -> str:
        """The prior asked for, or the default for the model (which loads it): "fitted"
        for a factorized-prior model; for a hyperprior model "hyper" without a training
        set, else AUTO_HYPER (the fit step picks the smallest of hyper, hybrid, fitted)."""
        if self.opts.prior is not None:
            return self.opts.prior
        if self.opts.entropy is not None:
            return "fitted"
        if self.manifest.get("model_is_hyperprior", {}).get("sha") != self.model_sha:
            self.manifest["model_is_hyperprior"] = {"sha": self.model_sha,
                                                    "value": is_hyperprior(self.net())}
        if self.manifest["model_is_hyperprior"]["value"]:
            return "hyper" if self.opts.training_set is None else AUTO_HYPER
        if self.opts.training_set is None:
            raise LicError("--training-set is required (or --entropy with fitted tables, "
                           "or --prior model)")
        return "fitted"

    def tables_file(self) -> str:
        """What the fit step wrote: a hyperprior's .lich, or .lice context tables."""
        outputs = self.manifest["steps"]["fit"]["outputs"]
        return HYPER_FILE if HYPER_FILE in outputs else ENTROPY_FILE

    def step(self, index: int, name: str, inputs: dict[str, Any],
             action: Callable[[], list[str]]) -> None:
        """Run ``action`` unless its recorded key and outputs are current; record it."""
        key = key_of(inputs)
        steps = len(STEP_NAMES) if self.opts.int16 else len(STEP_NAMES) - 1
        label = f"[{index}/{steps}] {name}"
        if not self.opts.force and step_is_current(self.out, self.manifest["steps"].get(name),
                                                   key):
            self.opts.log(f"{label}: up to date")
            return
        self.opts.log(f"{label} ...")
        start = time.perf_counter()
        outputs = action()
        seconds = time.perf_counter() - start
        self.manifest["steps"][name] = {
            "key": key,
            "inputs": inputs,
            "outputs": {o: file_sha256(self.out / o) for o in outputs},
            "seconds": round(seconds, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_manifest(self.out, self.manifest)  # after every step: a stop keeps the work
        self.result.ran.append(name)
        self.result.seconds[name] = seconds
        self.opts.log(f"{label}: done in {seconds:.1f} s")

    # --- step 1: convert

    def convert_inputs(self) -> dict[str, Any]:
        return {"model_sha256": self.model_sha, "arch": self.opts.arch, "lic2cpp": __version__,
                "code": modules_hash(CONVERT_MODULES)}

    def convert(self) -> list[str]:
        paths = convert_model(self.net(), self.out, transforms=model_transforms(self.net()))
        return [_relative(self.out, p) for p in paths]

    # --- step 2: fit (or copy the given tables)

    def fit_inputs(self) -> dict[str, Any]:
        opts = self.opts
        prior = self.prior()
        common = {"model_sha256": self.model_sha, "arch": opts.arch, "lic2cpp": __version__,
                  "prior": prior}
        if prior in ("hyper", "hybrid", AUTO_HYPER):
            common["networks"] = self.manifest["steps"]["convert"]["outputs"]
        if prior in ("model", "hyper") and opts.training_set is None:
            return {**common, "code": modules_hash(FIT_MODULES)}
        if opts.training_set is None:
            assert opts.entropy is not None
            return {**common, "entropy_sha256": file_sha256(opts.entropy),
                    "code": modules_hash(FIT_MODULES)}
        return {**common, "training_set": training_set_identity(opts.training_set),
                "max_patches": opts.max_patches, "seed": opts.seed,
                "patch_size": opts.patch_size, "offsets": opts.offsets, "lambda": self.lmbda,
                "code": modules_hash(FIT_MODULES)}

    def fit(self) -> list[str]:
        opts = self.opts
        if self.prior() == "model":
            return self.model_tables()
        if self.prior() in ("hyper", "hybrid", AUTO_HYPER):
            return self.hyper_tables()
        if opts.entropy is not None:
            return self.copy_tables(opts.entropy)
        assert opts.training_set is not None
        fitted = self.fit_context_tables()
        fitted.entropy_model.save(self.out / ENTROPY_FILE)
        stats = fit_statistics(fitted, opts)
        (self.out / FIT_STATS).write_text(json.dumps(stats, indent=2, default=_jsonable) + "\n")
        return [ENTROPY_FILE, FIT_STATS]

    def fit_context_tables(self) -> Any:
        """The fitted context tables (``--prior fitted``) on the training set. A hyperprior
        model's bottleneck belongs to z, so its y has no medians: ``--offsets median`` (the
        default) means the training means there."""
        opts = self.opts
        assert opts.training_set is not None
        offsets = opts.offsets
        if offsets == "median" and is_hyperprior(self.net()):
            offsets = "mean"
        return fit_latents(self.net(), opts.training_set, max_patches=opts.max_patches,
                           seed=opts.seed, patch_size=opts.patch_size,
                           batch_size=opts.batch_size, offsets=offsets, lmbda=self.lmbda,
                           lambda_source=self.lambda_source, progress=opts.progress)

    def model_tables(self) -> list[str]:
        """--prior model: the bottleneck's own tables; with a training set, both priors'
        code lengths on it for the report."""
        opts = self.opts
        tables = model_prior(self.net())
        tables.save(self.out / ENTROPY_FILE)
        stats: dict[str, Any] = {"model": summarise_model(self.net()), "training_patches": 0,
                                 "patch_size": opts.patch_size, "latent_per_patch": None,
                                 "estimate": None, "prior": "model"}
        if opts.training_set is not None:
            fitted = self.fit_context_tables()
            stats = fit_statistics(fitted, opts)
            stats["prior"] = "model"
            stats["estimate_model_prior"] = tables.estimate_bits(fitted.latents)
        (self.out / FIT_STATS).write_text(json.dumps(stats, indent=2, default=_jsonable) + "\n")
        return [ENTROPY_FILE, FIT_STATS]

    def copy_tables(self, tables: Path) -> list[str]:
        """Given tables: checked, copied, nothing estimated."""
        self.opts.log(f"  using the given tables {tables} (no fit)")
        given = EntropyModel.load(tables)  # refuses a file that is not valid tables
        shutil.copyfile(tables, self.out / ENTROPY_FILE)
        stats = {"model": summarise_model(self.net()), "training_patches": 0,
                 "patch_size": self.opts.patch_size, "latent_per_patch": None,
                 "estimate": None, "offsets": given_offsets(self.net(), given)}
        (self.out / FIT_STATS).write_text(json.dumps(stats, indent=2) + "\n")
        return [ENTROPY_FILE, FIT_STATS]

    # --- step 3 (with --int16): the fixed-point networks

    def int16_inputs(self) -> dict[str, Any]:
        opts = self.opts
        return {"model_sha256": self.model_sha, "arch": opts.arch, "mode": opts.int16,
                "quantizers_sha256": file_sha256(opts.quantizers) if opts.quantizers else None,
                "training_set": (training_set_identity(opts.training_set)
                                 if opts.training_set else None),
                "calib_patches": opts.calib_patches, "headroom_bits": opts.headroom_bits,
                "patch_size": opts.patch_size,
                "seed": opts.seed, "networks": self.manifest["steps"]["convert"]["outputs"],
                "tables": self.manifest["steps"]["fit"]["outputs"],
                "lic2cpp": __version__, "code": modules_hash(INT16_MODULES)}

    def latent_offsets(self) -> np.ndarray | None:
        """The offsets the codec rounds the latent around (the fitted context tables'), so
        that g_s is calibrated on the latents it will decode; None for a hyperprior's
        tables (their means come from h_s)."""
        if self.tables_file() != ENTROPY_FILE:
            return None
        return EntropyModel.load(self.out / ENTROPY_FILE).offsets

    def int16(self) -> list[str]:
        from lic2cpp.int16 import int16_analysis, int16_synthesis
        from lic2cpp.modelformat import read_licm, write_licm

        opts = self.opts
        ga_name, gs_name = self.licm_names()
        gs16, report = int16_synthesis(
            self.net(), read_licm(self.out / gs_name), checkpoint=opts.model,
            quantizers_file=opts.quantizers, training_set=opts.training_set,
            patches=opts.calib_patches, seed=opts.seed, headroom_bits=opts.headroom_bits,
            progress=bool(opts.progress), patch_size=opts.patch_size,
            offsets=self.latent_offsets())
        write_licm(self.out / INT16_GS, gs16)
        for line in report.summary().splitlines():
            opts.log(f"  g_s {line.strip()}")
        info: dict[str, Any] = {"mode": opts.int16, "g_s": report_dict(report)}
        outputs = [INT16_GS]
        if opts.int16 == "both":
            assert opts.training_set is not None
            ga16, ga_report = int16_analysis(
                self.net(), read_licm(self.out / ga_name), opts.training_set,
                patches=opts.calib_patches, seed=opts.seed, headroom_bits=opts.headroom_bits,
                progress=bool(opts.progress), patch_size=opts.patch_size)
            write_licm(self.out / INT16_GA, ga16)
            for line in ga_report.summary().splitlines():
                opts.log(f"  g_a {line.strip()}")
            info["g_a"] = report_dict(ga_report)
            outputs.append(INT16_GA)
        (self.out / INT16_REPORT).write_text(json.dumps(info, indent=2) + "\n")
        return [*outputs, INT16_REPORT]

    def hyper_tables(self) -> list[str]:
        """A hyperprior model's tables: the int16 h_s calibrated (on training patches, or
        on z drawn from the model's bottleneck) and the .lich; for "hybrid" (and the
        default with a training set) the y tables fitted on the training symbols. With a
        training set, every candidate's code length on it; the default keeps the smallest
        (possibly the fitted context tables, written as entropy.lice)."""
        opts, net, prior = self.opts, self.net(), self.prior()
        hyper_kind(net)  # refuses a model that is not a hyperprior model, naming it
        float_hs = read_licm(self.out / "h_s.licm")
        int16_hs, report = int16_hyper_synthesis(net, float_hs, opts.training_set,
                                                 HYPER_CALIBRATION_PATCHES, opts.seed)
        tables = build_hyper_tables(net, int16_hs, (self.out / "h_a.licm").read_bytes())
        stats: dict[str, Any] = {
            "model": summarise_model(net), "prior": prior, "training_patches": 0,
            "patch_size": opts.patch_size, "latent_per_patch": None, "estimate": None,
            "hyper": {"kind": KIND_NAMES[tables.kind], "int16": report.summary(),
                      "out_shift": tables.out_shift, "scales": tables.num_scales}}
        fitted = None
        if opts.training_set is not None:
            fitted, estimates = self.hyper_estimates(tables, prior)
            stats.update(estimates)
        chosen = prior
        if prior == AUTO_HYPER:
            costs = {k: stats["estimates"][k]["bits"] for k in ("hyper", "hybrid", "fitted")}
            chosen = min(costs, key=lambda k: costs[k])
        stats["prior"] = chosen
        stats["asked"] = opts.prior or "default"
        if chosen == "fitted":
            assert fitted is not None
            fitted.entropy_model.save(self.out / ENTROPY_FILE)
            written = ENTROPY_FILE
        else:
            if chosen == "hyper":
                tables.fitted = tables.fitted_lo = None
            tables.save(self.out / HYPER_FILE)
            written = HYPER_FILE
        (self.out / FIT_STATS).write_text(json.dumps(stats, indent=2, default=_jsonable) + "\n")
        return [written, FIT_STATS]

    def hyper_estimates(self, tables: Any, prior: str) -> tuple[Any, dict[str, Any]]:
        """Fit what ``prior`` needs and measure the candidates on the training patches:
        hyper (the model's own CDFs), hybrid (fitted on every patch: ``tables.fitted``),
        fitted context tables (fitted on every patch). With "hyper" alone, on a seeded
        subset of HYPER_ESTIMATE_PATCHES (the numpy int16 h_s is slow)."""
        opts, net = self.opts, self.net()
        assert opts.training_set is not None
        fitted = self.fit_context_tables()
        patches = np.asarray(load_training_set(opts.training_set, patch_size=opts.patch_size,
                                               max_patches=opts.max_patches, seed=opts.seed))
        pick = np.arange(len(patches))
        if prior == "hyper" and len(patches) > HYPER_ESTIMATE_PATCHES:
            pick = np.sort(np.random.default_rng(opts.seed).choice(
                len(patches), HYPER_ESTIMATE_PATCHES, replace=False))
        qy, index, z_bits = training_symbols(net, tables, patches[pick], bool(opts.progress))
        qz0 = np.zeros((tables.hyper_channels, 1, 1), dtype=np.int64)  # z counted apart

        def y_bits() -> float:
            return sum(tables.code_length(qz0, qy[k], index[k])[1] for k in range(len(qy)))

        z_total = float(z_bits.sum())
        hyper_y = y_bits()
        estimates = {"hyper": {"bits": z_total + hyper_y, "bits_z": z_total, "bits_y": hyper_y}}
        if prior != "hyper":
            fit_hybrid(tables, qy, index)
            hybrid_y = y_bits()
            estimates["hybrid"] = {"bits": z_total + hybrid_y, "bits_z": z_total,
                                   "bits_y": hybrid_y}
        ctx = fitted.entropy_model.estimate_bits(fitted.latents[pick])
        estimates["fitted"] = {"bits": ctx["bits_ctx"], "bits_plain": ctx["bits_plain"]}
        return fitted, {"training_patches": len(patches), "estimate_patches": len(pick),
                        "latent_per_patch": list(fitted.latents.shape[1:]),
                        "estimates": estimates}

    # --- step 4: codegen

    def licm_names(self) -> tuple[str, str]:
        return "g_a.licm", "g_s.licm"

    def int16_networks(self) -> tuple[Path | None, Path | None]:
        """The int16 networks the encoder and decoder run (None: the float ones)."""
        if self.opts.int16 is None:
            return None, None
        return (self.out / INT16_GA if self.opts.int16 == "both" else None,
                self.out / INT16_GS)

    def codegen_inputs(self) -> dict[str, Any]:
        steps = self.manifest["steps"]
        ga_name, gs_name = self.licm_names()
        inputs = {
            "g_a": steps["convert"]["outputs"][ga_name],
            "g_s": steps["convert"]["outputs"][gs_name],
            "entropy": steps["fit"]["outputs"][self.tables_file()],
            "lic2cpp": __version__, "compiler": find_compiler(),
            "cpp": cpp_sources_hash(), "code": modules_hash(CODEGEN_MODULES),
        }
        if self.opts.int16 is not None:
            inputs["int16"] = {k: v for k, v in steps["int16"]["outputs"].items()
                               if k != INT16_REPORT}
        if self.tables_file() == HYPER_FILE:
            inputs["h_a"] = steps["convert"]["outputs"]["h_a.licm"]
        if self.opts.rdoq:
            inputs["rdoq"] = self.opts.rdoq
        return inputs

    def codegen(self) -> list[str]:
        self.opts.log("  generating and compiling the encoder and decoder (this takes a while)")
        ga_name, gs_name = self.licm_names()
        enc16, dec16 = self.int16_networks()
        h_a = self.out / "h_a.licm" if self.tables_file() == HYPER_FILE else None
        # codegen.build_codec looked up at call time: the tests stand in a recorder for it.
        enc, dec = codegen.build_codec(self.out / ga_name, self.out / gs_name,
                                       self.out / self.tables_file(), self.out,
                                       encoder_net=enc16, decoder_net=dec16,
                                       h_a=h_a, rdoq_lambda=self.opts.rdoq)
        for made, want in ((Path(enc), self.result.encoder), (Path(dec), self.result.decoder)):
            if made.resolve() != want.resolve():
                raise LicError(f"codegen wrote {made}, expected {want}")
        return ["encoder", "decoder", *codegen.LIBRARY_FILES]

    def finish(self) -> None:
        write_manifest(self.out, self.manifest)
        (self.out / REPORT).write_text(render_report(self.out, self.manifest))


def build(opts: BuildOptions) -> BuildResult:
    """Run convert, fit and codegen in ``opts.out_dir``, each only if out of date."""
    check_inputs(opts)
    run = BuildRun(opts)
    run.step(1, "convert", run.convert_inputs(), run.convert)
    run.step(2, "fit", run.fit_inputs(), run.fit)
    if opts.int16 is not None:
        run.step(3, "int16", run.int16_inputs(), run.int16)
    else:
        run.manifest["steps"].pop("int16", None)  # a float build: no int16 networks
    run.step(4 if opts.int16 else 3, "codegen", run.codegen_inputs(), run.codegen)
    run.finish()
    return run.result


INT16_GS = "g_s_int16.licm"
INT16_GA = "g_a_int16.licm"


def report_dict(report: Any) -> dict[str, Any]:
    """An Int16Report as JSON: source, expected PSNR loss, per-node shifts."""
    return {"source": report.source, "expected_psnr_loss_db": report.expected_psnr_loss,
            "psnr_float": report.psnr_float, "psnr_int16": report.psnr_int16,
            "patches": report.patches,
            "nodes": [{"node": r.node, "op": r.op, "out_shift": r.out_shift,
                       "weight_shift": r.weight_shift, "lowered_bits": r.lowered_bits,
                       "snr_db": r.error_db} for r in report.nodes]}


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


def given_offsets(net: Any, tables: Any) -> dict[str, Any]:
    """What is known of given tables' offsets: whether they are the model's medians."""
    try:
        medians = model_medians(net, tables.num_channels)
    except LicError:
        return {"mode": "given", "equal_medians": False}
    return {"mode": "given", "equal_medians": bool(np.array_equal(medians, tables.offsets))}


def channel_summary(model: Any) -> dict[str, Any]:
    """Per-channel mean and predecessor in the coding order, where the model exposes them."""
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
        if name not in manifest["steps"]:
            continue
        rec = manifest["steps"][name]
        lines.append(f"| {name} | {rec.get('seconds', '')} | {rec.get('finished', '')} |")
    lines += ["", "Outputs: `encoder`, `decoder` (standalone executables); the C library "
              "`lib/liblic2cpp_codec.a`, `lib/liblic2cpp_codec.so` with `include/lic2cpp.h` and "
              "its CMake package (docs/library.md).", ""]
    lines += render_int16(out, manifest)
    return "\n".join(lines)


def render_int16(out: Path, manifest: dict[str, Any]) -> list[str]:
    """The int16 section of the report: where the shifts came from, the expected loss."""
    if "int16" not in manifest["steps"] or not (out / INT16_REPORT).is_file():
        return []
    info = json.loads((out / INT16_REPORT).read_text())
    what = "decoder" if info["mode"] == "decoder" else "encoder and decoder"
    lines = ["## int16 fixed point", "",
             f"The {what} run{'s' if info['mode'] == 'decoder' else ''} in 16-bit fixed "
             "point (docs/int16.md); bitstreams are those of the float codec.", ""]
    for net in ("g_s", "g_a"):
        if net not in info:
            continue
        r = info[net]
        lines.append(f"- {net}: quantizers {r['source']}")
        if r["expected_psnr_loss_db"] is not None:
            lines.append(f"  - expected PSNR loss vs float: {r['expected_psnr_loss_db']:.4f} dB "
                         f"on {r['patches']} training patches")
        lowered = [n for n in r["nodes"] if n["lowered_bits"]]
        if lowered:
            lines.append("  - weight shifts lowered for the int32 worst case: " + ", ".join(
                f"node {n['node']} by {n['lowered_bits']}" for n in lowered))
    return [*lines, ""]


def render_training(manifest: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    if stats.get("prior") == "model":
        return render_model_prior(manifest, stats)
    if "hyper" in stats:
        return render_hyper(manifest, stats)
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


PRIOR_LABELS = {
    "hyper": "hyper: the model's own CDFs (z, and y by the int16 h_s's scale index)",
    "hybrid": "hybrid: as hyper, y with tables fitted per (scale index, context)",
    "fitted": "fitted context tables (h_a, h_s unused)",
}


def render_hyper(manifest: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    h = stats["hyper"]
    asked = stats.get("asked", "default")
    how = ("the default: the smallest on the training set" if asked == "default"
           else f"`--prior {asked}`")
    lines = ["## Entropy coding", "",
             f"- model: {h['kind']}; int16 h_s, output shift {h['out_shift']} (scales and "
             f"means in steps of 2^-{h['out_shift']}), {h['scales']} Gaussian CDFs "
             "(docs/hyperprior.md)",
             "- " + h["int16"].replace("\n", "\n  "),
             f"- prior used: **{stats['prior']}** ({how})"]
    if not stats.get("estimates"):
        return lines + ["- no training set given, so no estimate"]
    p = stats["patch_size"]
    n = stats["estimate_patches"]
    pixels = n * p * p
    lines += [f"- training set `{manifest['training_set']}`: {stats['training_patches']} "
              f"patches of {p}×{p}; ideal code lengths on {n} of them:", "",
              "| prior | bits | bits per pixel |", "|---|---|---|"]
    for key, est in stats["estimates"].items():
        used = " (used)" if key == stats["prior"] else ""
        parts = f" (z {est['bits_z']:,.0f} + y {est['bits_y']:,.0f})" if "bits_z" in est else ""
        lines.append(f"| {PRIOR_LABELS[key]}{used}{parts} | {est['bits']:,.0f} | "
                     f"{est['bits'] / pixels:.4f} |")
    return lines + [""]


def render_model_prior(manifest: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    lines = ["## Entropy tables", "",
             "- prior: **model** — the entropy bottleneck's own quantised CDFs, one per "
             "channel, no contexts (`--prior model`)"]
    if stats["estimate"] is None:
        return lines + ["- no training set given, so no estimate"]
    p = stats["patch_size"]
    pixels = stats["training_patches"] * p * p
    own = stats["estimate_model_prior"]["bits_ctx"]
    fitted = stats["estimate"]["bits_ctx"]
    return lines + [
        f"- training set `{manifest['training_set']}`: {stats['training_patches']} patches "
        f"of {p}×{p}", "",
        "| prior | bits on the training set | bits per pixel |", "|---|---|---|",
        f"| model (used) | {own:,.0f} | {own / pixels:.4f} |",
        f"| fitted (`--prior fitted`) | {fitted:,.0f} | {fitted / pixels:.4f} |", ""]


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

def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--prior", choices=PRIORS, default=None,
                   help="how the latent is coded: 'fitted' context tables fitted on the "
                        "training set (the default for factorized-prior models); 'model' "
                        "the model's own entropy-bottleneck CDFs (no training set needed, "
                        "CompressAI's rate); 'hyper' a hyperprior model's own coding with "
                        "an int16 h_s (a training set is optional); 'hybrid' the same with "
                        "y tables fitted on the training set. Default for a hyperprior "
                        "model: the smallest of hyper, hybrid and fitted on the training "
                        "set (hyper without one)")
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("--int16", nargs="?", const="decoder", choices=INT16_MODES, default=None,
                   help="int16 fixed-point networks (docs/int16.md): the decoder (default), or "
                        "both the encoder and the decoder; shifts from the checkpoint or "
                        "--quantizers, else calibrated on the training set")
    p.add_argument("--quantizers", default=None, metavar="FILE",
                   help="pickle with upstream's 'quantizers' dict {param name: shift} for "
                        "--int16")
    p.add_argument("--rdoq", type=float, default=0.0, metavar="LAMBDA",
                   help="make RDOQ at this λ the encoder's default (rate-distortion optimised "
                        "quantisation, training-loss units λ·255²·MSE + bpp; slower "
                        "encoding; `encoder --rdoq 0` still gives plain rounding). Default 0")
    p.add_argument("--calib-patches", type=int, default=16, metavar="N",
                   help="training patches for int16 calibration and its PSNR estimate "
                        "(default 16)")
    add_training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = Path(args.model) if args.model else default_model_path()
    training_set = Path(args.training_set) if args.training_set else None
    entropy = Path(args.entropy) if args.entropy else None
    if training_set is not None and entropy is not None:
        raise LicError("give --training-set or --entropy, not both")
    if training_set is None and entropy is None and not args.model:
        entropy = default_entropy_path()
    if entropy is not None and (args.offsets is not None or args.lmbda is not None):
        raise LicError("--offsets/--lambda apply to a fit; given tables carry their own "
                       "offsets (give --training-set to fit)")
    opts = BuildOptions(
        model=model, training_set=training_set, entropy=entropy, out_dir=Path(args.output),
        arch=args.arch, weights_only=args.weights_only, max_patches=args.max_patches,
        seed=args.seed, patch_size=args.patch_size, batch_size=args.batch_size,
        force=args.force, int16=args.int16, offsets=offsets_option(args), lmbda=args.lmbda,
        quantizers=Path(args.quantizers) if args.quantizers else None,
        calib_patches=args.calib_patches, rdoq=args.rdoq,
        prior=args.prior,
    )
    start = time.perf_counter()
    result = build(opts)
    total = time.perf_counter() - start
    what = ", ".join(result.ran) if result.ran else "nothing (all steps up to date)"
    print(f"built {result.encoder} and {result.decoder} in {total:.1f} s; ran: {what}")
    print(f"report: {opts.out_dir / REPORT}")
    return 0
