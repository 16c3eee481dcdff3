"""Train an image compression model that converts to the C++ runtime.

The model is CompressAI's factorized prior (Ballé et al. 2017) with runtime-friendly
activations, or one of its two hyperprior models (``--arch bmshj2018-hyperprior``,
``mbt2018-mean``) as CompressAI defines them. Training samples random crops of a folder of
images, minimises CompressAI's rate-distortion loss ``lambda * 255^2 * MSE + bpp`` plus the
entropy bottleneck's auxiliary loss (its own optimizer), and checkpoints everything needed
to resume bit for bit: weights, both optimizers, the step, the RNG states of torch, numpy,
python and the crop sampler.

Checkpoints are ``{"model": net, ...}`` (the upstream convention), so ``lic2cpp.load``
and ``torch.load(p, weights_only=False)["model"]`` read them directly.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lic2cpp.errors import LicError
from lic2cpp.images import list_images, read_rgb
from lic2cpp.load import compressai_package, load_model
from lic2cpp.qat import QatController

if TYPE_CHECKING:
    from compressai.models import CompressionModel

ACTIVATIONS = ("relu", "leaky_relu", "gdn")
# --arch: the factorized prior (with --activation), or a hyperprior model (CompressAI's
# classes as they are: GDN transforms, h_a/h_s, a Gaussian conditional).
ARCHS = ("factorized", "bmshj2018-hyperprior", "mbt2018-mean")
HYPER_MULTIPLE = 64  # a hyperprior's z is 1/64 of the image
SCHEDULES = ("cosine", "step", "constant")
CSV_FIELDS = ["step", "split", "elapsed_s", "lr", "loss", "mse", "bpp", "psnr", "aux_loss"]
# The network divides the image by 16 (four stride-2 layers).
NET_MULTIPLE = 16


@dataclass
class TrainConfig:
    """Every setting that shapes a run; stored in each checkpoint."""

    images: str
    out_dir: str
    n: int = 128
    m: int = 192
    activation: str = "relu"
    arch: str = "factorized"
    lmbda: float = 0.0067
    patch_size: int = 128
    batch_size: int = 8
    steps: int = 10000
    lr: float = 5e-4
    lr_min: float = 1e-5
    lr_schedule: str = "cosine"
    warmup: int = 100
    aux_lr: float = 1e-3
    clip_grad: float = 1.0
    val_count: int = 5
    val_every: int = 500
    val_size: int = 512
    log_every: int = 50
    save_every: int = 250
    seed: int = 0
    int16: bool = False
    qat_start: int = 0
    settle_steps: int = 5000
    settle_lr: float = 1e-2
    init: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- model


def build_model(n: int, m: int, activation: str = "relu", arch: str = "factorized"
                ) -> CompressionModel:
    """A model with the given channel counts: a factorized prior with ``activation``, or
    CompressAI's ``ScaleHyperprior`` / ``MeanScaleHyperprior`` (``arch``).

    ``relu`` is CompressAI's own ``FactorizedPriorReLU``. The others keep CompressAI's
    ``FactorizedPrior`` class (so checkpoints unpickle without lic2cpp) and swap its
    transforms for plain ``nn.Sequential`` stacks: ``leaky_relu`` everywhere, or ``gdn``
    (GDN in the encoder only; the decoder, which the int16 runtime runs, stays ReLU).
    """
    cai = compressai_package()
    if arch == "bmshj2018-hyperprior":
        return cai.models.ScaleHyperprior(n, m)
    if arch == "mbt2018-mean":
        return cai.models.MeanScaleHyperprior(n, m)
    if arch != "factorized":
        raise LicError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    if activation == "relu":
        return cai.models.FactorizedPriorReLU(n, m)
    if activation not in ACTIVATIONS:
        raise LicError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    net = cai.models.FactorizedPrior(n, m)
    conv, deconv = cai.models.utils.conv, cai.models.utils.deconv

    def act(ch: int) -> nn.Module:
        return nn.LeakyReLU(0.01) if activation == "leaky_relu" else nn.ReLU()

    enc_act = (lambda ch: cai.layers.GDN(ch)) if activation == "gdn" else act  # noqa: E731
    net.g_a = nn.Sequential(
        conv(3, n), enc_act(n), conv(n, n), enc_act(n), conv(n, n), enc_act(n), conv(n, m)
    )
    net.g_s = nn.Sequential(
        deconv(m, n), act(n), deconv(n, n), act(n), deconv(n, n), act(n), deconv(n, 3)
    )
    return net


def initial_model(path: Path) -> CompressionModel:
    """A trained model to fine-tune from (``--init``), e.g. before ``--int16`` training."""
    net = load_model(path)
    if not hasattr(net, "entropy_bottleneck") or not hasattr(net, "aux_loss"):
        raise LicError(f"--init {path}: not a CompressAI compression model")
    return net


def main_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in net.named_parameters() if not name.endswith(".quantiles")]


def aux_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in net.named_parameters() if name.endswith(".quantiles")]


# ----------------------------------------------------------------------------- data


def split_images(folder: Path, val_count: int) -> tuple[list[Path], list[Path]]:
    """The last ``val_count`` images (sorted by name) are held out for validation."""
    paths = list_images(folder, "training images")
    if not paths:
        raise LicError(f"training images: no images in {folder}")
    if val_count < 0 or val_count >= len(paths):
        raise LicError(
            f"--val-count {val_count} leaves no training images ({len(paths)} in {folder})"
        )
    cut = len(paths) - val_count
    return paths[:cut], paths[cut:]


class CropSampler:
    """Random crops with random flips, from images held in memory.

    Its only state is a numpy generator, saved in checkpoints so a resumed run draws
    exactly the crops an uninterrupted one would have.
    """

    def __init__(self, images: list[np.ndarray], patch: int, seed: int) -> None:
        small = [i for i, im in enumerate(images) if min(im.shape[:2]) < patch]
        if small:
            raise LicError(f"training image #{small[0]} is smaller than the {patch}px patch")
        self.images = images
        self.patch = patch
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.patch, self.patch, 3), dtype=np.uint8)
        for k in range(size):
            im = self.images[int(self.rng.integers(len(self.images)))]
            y = int(self.rng.integers(im.shape[0] - self.patch + 1))
            x = int(self.rng.integers(im.shape[1] - self.patch + 1))
            crop = im[y : y + self.patch, x : x + self.patch]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[k] = crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)

    def state(self) -> Mapping[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state


def net_multiple(arch: str) -> int:
    """What image sides must be a multiple of for a training forward pass."""
    return NET_MULTIPLE if arch == "factorized" else HYPER_MULTIPLE


def center_crop(im: np.ndarray, size: int, multiple: int = NET_MULTIPLE) -> np.ndarray:
    """Center crop to at most ``size`` square, rounded down to ``multiple``."""
    h = min(size, im.shape[0]) // multiple * multiple
    w = min(size, im.shape[1]) // multiple * multiple
    y, x = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
    return im[y : y + h, x : x + w]


# ----------------------------------------------------------------------------- loss


def rd_terms(
    net: nn.Module, x: torch.Tensor, lmbda: float, forward: Any = None
) -> dict[str, torch.Tensor]:
    """Rate-distortion loss terms; ``forward`` replaces ``net(x)`` (the int16 QAT forward)."""
    out = (forward or net)(x)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(
        torch.log(lk).sum() for lk in out["likelihoods"].values()
    ) / (-math.log(2) * num_pixels)
    mse = torch.mean((out["x_hat"] - x) ** 2)
    loss = lmbda * 255**2 * mse + bpp
    return {"loss": loss, "mse": mse, "bpp": bpp, "x_hat": out["x_hat"]}


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on [0, 1] samples (floored at 1e-12: 120 dB)."""
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def validate(
    net: nn.Module, images: list[np.ndarray], lmbda: float, forward: Any = None
) -> dict[str, float]:
    """Average loss, bpp (from the likelihoods of the rounded latent) and PSNR.

    PSNR is measured on the 8-bit output, as a decoder would write it.
    """
    was_training = net.training
    net.eval()
    sums = {"loss": 0.0, "mse": 0.0, "bpp": 0.0, "psnr": 0.0}
    for im in images:
        x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 255
        terms = rd_terms(net, x, lmbda, forward)
        x8 = (terms["x_hat"].clamp(0, 1) * 255).round() / 255
        mse8 = float(torch.mean((x8 - x) ** 2))
        sums["loss"] += float(terms["loss"])
        sums["mse"] += mse8
        sums["bpp"] += float(terms["bpp"])
        sums["psnr"] += psnr_from_mse(mse8)
    net.train(was_training)
    return {k: v / max(len(images), 1) for k, v in sums.items()}


# ----------------------------------------------------------------------------- schedule


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): warm-up, then the schedule.

    ``step`` schedule: full rate for 70% of the run, /5 until 90%, /25 after.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr if t < 0.7 else cfg.lr / 5 if t < 0.9 else cfg.lr / 25
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(t, 1.0)))


# ----------------------------------------------------------------------------- checkpoints


def rng_states(sampler: CropSampler) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "sampler": sampler.state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_states(states: dict[str, Any], sampler: CropSampler) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    sampler.set_state(states["sampler"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write then rename, so an interrupted save never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def settle_quantiles(net: CompressionModel, steps: int, lr: float) -> float:
    """Fit the entropy bottleneck's quantiles alone; returns the final auxiliary loss.

    During training the quantiles chase a moving latent distribution; the aux loss depends
    on the density parameters only (no data), so a few thousand cheap steps settle them.
    The medians they give are used by CompressAI's own compress/decompress.
    """
    params = aux_parameters(net)
    if steps <= 0 or not params:
        return float(net.aux_loss().detach())
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = net.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(net.aux_loss().detach())


def finalize_model(net: CompressionModel) -> CompressionModel:
    """Eval mode with the entropy bottleneck's CDF tables computed (``update(force=True)``)."""
    net.eval()
    net.update(force=True)
    return net


# ----------------------------------------------------------------------------- CSV log


def open_log(path: Path, resume_step: int) -> tuple[IO[str], csv.DictWriter]:
    """Open the CSV log, dropping rows written after the checkpoint we resume from."""
    rows: list[dict[str, str]] = []
    if resume_step > 0 and path.exists():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
    f = path.open("w", newline="")
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    f.flush()
    return f, writer


# ----------------------------------------------------------------------------- training


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class Run:
    """A training run in progress: everything a checkpoint saves and restores."""

    cfg: TrainConfig
    net: CompressionModel
    opt: torch.optim.Optimizer
    aux_opt: torch.optim.Optimizer
    sampler: CropSampler
    quant: QatController | None  # with --int16
    step: int = 0  # optimizer steps done before this process started
    elapsed0: float = 0.0  # training seconds before this process started
    acc: dict[str, float] = field(default_factory=dict)  # sums since the last CSV row
    t0: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t0

    def forward(self) -> Any:
        """The forward pass to train: the int16 fake-quantized one, or None for ``net``."""
        return self.quant.forward if self.quant is not None else None

    def checkpoint(self, step: int) -> dict[str, Any]:
        obj = {
            "model": self.net,
            "optimizer": self.opt.state_dict(),
            "aux_optimizer": self.aux_opt.state_dict(),
            "step": step,
            "elapsed_s": self.elapsed(),
            "config": asdict(self.cfg),
            "rng": rng_states(self.sampler),
            "log_acc": dict(self.acc),
        }
        if self.quant is not None:
            obj["qat_state"] = self.quant.state()
        return obj


def read_images(cfg: TrainConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training images, and the validation images center-cropped."""
    train_paths, val_paths = split_images(Path(cfg.images), cfg.val_count)
    multiple = net_multiple(cfg.arch)
    return ([read_rgb(p) for p in train_paths],
            [center_crop(read_rgb(p), cfg.val_size, multiple) for p in val_paths])


def start_run(cfg: TrainConfig, train_images: list[np.ndarray], resume: Path | None,
              device: str) -> Run:
    """A fresh run (new or ``--init`` model), or one restored from ``resume``.

    The order of the seeding, the model's creation and the RNG restore is what makes a
    resumed run draw exactly what an uninterrupted one would.
    """
    seed_everything(cfg.seed)
    sampler = CropSampler(train_images, cfg.patch_size, cfg.seed)
    ckpt = load_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        net = ckpt["model"]
    elif cfg.init:
        net = initial_model(Path(cfg.init))
    else:
        net = build_model(cfg.n, cfg.m, cfg.activation, cfg.arch)
    net = net.to(device).train()
    quant = None
    if cfg.int16:
        quant = QatController(net, start_step=cfg.qat_start)
        if ckpt is not None and ckpt.get("qat_state") is not None:
            quant.load_state(ckpt["qat_state"])
    run = Run(cfg, net, torch.optim.Adam(main_parameters(net), lr=cfg.lr),
              torch.optim.Adam(aux_parameters(net), lr=cfg.aux_lr), sampler, quant)
    if ckpt is not None:
        run.step = int(ckpt["step"])
        run.elapsed0 = float(ckpt.get("elapsed_s", 0.0))
        run.acc = dict(ckpt.get("log_acc", {}))
        run.opt.load_state_dict(ckpt["optimizer"])
        run.aux_opt.load_state_dict(ckpt["aux_optimizer"])
        set_rng_states(ckpt["rng"], sampler)
    return run


def optimise(run: Run, step: int, lr: float, device: str) -> None:
    """One step of both optimizers on a fresh batch; adds the losses to ``run.acc``."""
    cfg, net = run.cfg, run.net
    for group in run.opt.param_groups:
        group["lr"] = lr
    if run.quant is not None:
        run.quant.before_step(step)
    x = run.sampler.batch(cfg.batch_size).to(device)
    terms = rd_terms(net, x, cfg.lmbda, run.forward())
    run.opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    if cfg.clip_grad > 0:
        nn.utils.clip_grad_norm_(main_parameters(net), cfg.clip_grad)
    run.opt.step()
    aux_loss = net.aux_loss()
    run.aux_opt.zero_grad(set_to_none=True)
    aux_loss.backward()
    run.aux_opt.step()
    for key, value in (("loss", terms["loss"]), ("mse", terms["mse"]), ("bpp", terms["bpp"]),
                       ("aux_loss", aux_loss)):
        run.acc[key] = run.acc.get(key, 0.0) + value.item()
    run.acc["n"] = run.acc.get("n", 0.0) + 1


def train_row(run: Run, done: int, lr: float) -> dict[str, Any]:
    """The averages since the last row (and resets them)."""
    n = run.acc.pop("n")
    row: dict[str, Any] = {k: v / n for k, v in run.acc.items()}
    run.acc.clear()
    row.update(psnr=psnr_from_mse(row["mse"]), lr=lr, step=done, split="train",
               elapsed_s=round(run.elapsed(), 1))
    return row


def train(
    cfg: TrainConfig,
    resume: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Run (or resume) training; returns the path of the final model checkpoint.

    ``stop_after`` ends the run early after that many total steps, leaving ``last.pth``
    exactly as a periodic save would (used to test resuming).
    """
    train_images, val_images = read_images(cfg)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = start_run(cfg, train_images, resume, device)
    log_file, log = open_log(out_dir / "log.csv", run.step)
    last_path = out_dir / "last.pth"
    end_step = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(
        total=cfg.steps, initial=run.step, desc="train", unit="step", disable=not progress,
        mininterval=5.0, dynamic_ncols=True,
    )
    try:
        for step in range(run.step, end_step):
            lr = learning_rate(cfg, step)
            optimise(run, step, lr, device)
            done = step + 1
            bar.update(1)
            if done % cfg.log_every == 0 or done == cfg.steps:
                row = train_row(run, done, lr)
                log.writerow(row)
                log_file.flush()
                bar.set_postfix(loss=f"{row['loss']:.3f}", bpp=f"{row['bpp']:.3f}",
                                psnr=f"{row['psnr']:.2f}")
            if val_images and (done % cfg.val_every == 0 or done == cfg.steps):
                v = validate(run.net, val_images, cfg.lmbda, run.forward())
                log.writerow({**v, "step": done, "split": "val", "lr": lr,
                              "elapsed_s": round(run.elapsed(), 1), "aux_loss": ""})
                log_file.flush()
                bar.write(f"step {done}: val bpp {v['bpp']:.4f} psnr {v['psnr']:.2f} dB")
            if done % cfg.save_every == 0 or done == end_step:
                save_atomic(run.checkpoint(done), last_path)
    finally:
        bar.close()
        log_file.close()

    if end_step < cfg.steps:
        return last_path
    return write_final(run.net, out_dir / "model.pth", cfg, run.quant, run.elapsed())


def write_final(
    net: CompressionModel, path: Path, cfg: TrainConfig, quant: QatController | None,
    elapsed_s: float
) -> Path:
    """The deliverable: the model alone (no optimizer), quantiles settled, eval mode, CDFs
    computed."""
    aux = settle_quantiles(net, cfg.settle_steps, cfg.settle_lr)
    finalize_model(net)
    obj: dict[str, Any] = {"model": net, "config": asdict(cfg), "elapsed_s": elapsed_s,
                           "step": cfg.steps, "aux_loss": aux}
    if quant is not None:
        obj.update(quant.export_fields(net))
    save_atomic(obj, path)
    return path


def finalize_checkpoint(src: Path, dst: Path, settle_steps: int = 5000,
                        settle_lr: float = 1e-2) -> Path:
    """The deliverable from a resumable ``last.pth``: the model (quantiles settled, eval,
    CDFs computed), its config, step and training time, without optimizer or RNG state."""
    ckpt = load_checkpoint(src)
    aux = settle_quantiles(ckpt["model"], settle_steps, settle_lr)
    net = finalize_model(ckpt["model"])
    obj: dict[str, Any] = {k: ckpt[k] for k in ("config", "step", "elapsed_s") if k in ckpt}
    obj.update(model=net, aux_loss=aux)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(obj, Path(dst))
    return Path(dst)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise LicError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise LicError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise LicError(f"{path} is not a lic2cpp training checkpoint")
    return ckpt


# ----------------------------------------------------------------------------- CLI


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        images=str(args.images), out_dir=str(args.output), n=args.N, m=args.M,
        activation=args.activation, arch=args.arch, lmbda=args.lmbda, patch_size=args.patch_size,
        batch_size=args.batch_size, steps=args.steps, lr=args.lr, lr_min=args.lr_min,
        lr_schedule=args.lr_schedule, warmup=args.warmup, aux_lr=args.aux_lr,
        clip_grad=args.clip_grad, val_count=args.val_count, val_every=args.val_every,
        val_size=args.val_size, log_every=args.log_every, save_every=args.save_every,
        seed=args.seed, int16=args.int16, qat_start=args.qat_start,
        settle_steps=args.settle_steps, settle_lr=args.settle_lr,
        init=str(args.init) if args.init else "",
    )


def check_config(cfg: TrainConfig) -> None:
    if cfg.arch not in ARCHS:
        raise LicError(f"unknown --arch {cfg.arch!r} (choose from {', '.join(ARCHS)})")
    multiple = net_multiple(cfg.arch)
    if cfg.patch_size % multiple or cfg.patch_size <= 0:
        raise LicError(f"--patch-size must be a positive multiple of {multiple}")
    if cfg.arch != "factorized" and cfg.int16:
        raise LicError("--int16 training is for factorized-prior models (a hyperprior "
                       "model's h_s is made int16 by calibration at build time)")
    for name in ("n", "m", "batch_size", "steps", "log_every", "save_every", "val_every"):
        if getattr(cfg, name) <= 0:
            raise LicError(f"--{name.replace('_', '-')} must be positive")
    if cfg.lmbda <= 0 or cfg.lr <= 0:
        raise LicError("--lambda and --lr must be positive")
    if cfg.lr_schedule not in SCHEDULES:
        raise LicError(f"unknown --lr-schedule {cfg.lr_schedule!r}")


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LicError("--device cuda requested but no CUDA device is available")
    return name


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        ckpt_cfg = load_checkpoint(resume).get("config")
        if ckpt_cfg is None:
            raise LicError(f"{resume} carries no training config; cannot resume")
        cfg = TrainConfig(**ckpt_cfg)
        # A resumed run may extend or shorten the run; everything else is the checkpoint's.
        if args.steps_given:
            cfg.steps = args.steps
        cfg.out_dir = str(args.output) if args.output_given else cfg.out_dir
    else:
        if args.images is None:
            raise LicError("--images is required (a folder of training images)")
        cfg = config_from_args(args)
    check_config(cfg)
    final = train(cfg, resume=resume, device=device, progress=not args.no_progress)
    print(f"model written to {final}")
    return 0


class _Given(argparse.Action):
    """Store the value and remember that the user gave it (for --resume overrides)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, self.dest + "_given", True)


def register(subparsers: Any) -> None:
    d = TrainConfig(images="", out_dir="")
    p = subparsers.add_parser(
        "train",
        help="train a model (factorized prior or hyperprior) convertible to the C++ runtime",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", type=Path, help="folder of training images (random crops)")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/train"), action=_Given,
                   help="output folder: last.pth (resumable), model.pth (final), log.csv")
    p.add_argument("--N", type=int, default=d.n, help="channels of the hidden layers")
    p.add_argument("--M", type=int, default=d.m, help="channels of the latent")
    p.add_argument("--arch", choices=ARCHS, default=d.arch,
                   help="factorized: FactorizedPrior(ReLU) with --activation; "
                        "bmshj2018-hyperprior: ScaleHyperprior; mbt2018-mean: "
                        "MeanScaleHyperprior (CompressAI's classes)")
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                   help="relu: FactorizedPriorReLU; leaky_relu; gdn: GDN encoder, ReLU decoder")
    p.add_argument("--lambda", dest="lmbda", type=float, default=d.lmbda,
                   help="rate-distortion trade-off: loss = lambda*255^2*MSE + bpp")
    p.add_argument("--patch-size", type=int, default=d.patch_size, help="random crop size")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--steps", type=int, default=d.steps, action=_Given,
                   help="total optimizer steps (with --resume: overrides the checkpoint's)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (Adam)")
    p.add_argument("--lr-min", type=float, default=d.lr_min, help="final rate of cosine")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default=d.lr_schedule)
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    p.add_argument("--aux-lr", type=float, default=d.aux_lr,
                   help="learning rate of the entropy bottleneck's quantiles (aux loss)")
    p.add_argument("--clip-grad", type=float, default=d.clip_grad,
                   help="gradient norm clipping (0: off)")
    p.add_argument("--val-count", type=int, default=d.val_count,
                   help="the last K images of the folder (by name) are held out for validation")
    p.add_argument("--val-every", type=int, default=d.val_every, help="validate every K steps")
    p.add_argument("--val-size", type=int, default=d.val_size,
                   help="validation images are center-cropped to at most this size")
    p.add_argument("--log-every", type=int, default=d.log_every, help="CSV row every K steps")
    p.add_argument("--save-every", type=int, default=d.save_every,
                   help="write the resumable checkpoint last.pth every K steps")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--int16", action="store_true",
                   help="quantization-aware training for the int16 runtime (see docs/training.md)")
    p.add_argument("--qat-start", type=int, default=d.qat_start,
                   help="with --int16: step at which fake quantization starts")
    p.add_argument("--settle-steps", type=int, default=d.settle_steps,
                   help="after training, steps fitting the entropy bottleneck's quantiles alone")
    p.add_argument("--settle-lr", type=float, default=d.settle_lr)
    p.add_argument("--init", type=Path, default=None, metavar="CKPT",
                   help="start from this trained model's weights (fresh optimizer and step "
                        "count; --N/--M/--activation are then the model's), e.g. to fine-tune "
                        "a float model with --int16")
    p.add_argument("--resume", type=Path, help="resume from a last.pth checkpoint")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda[:i]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, steps_given=False, output_given=False)
