"""Speed and memory end to end (issue 10): the built `encoder`/`decoder` programs against
CompressAI's `compress`/`decompress` of the same model and ONNX Runtime's g_a/g_s, in one
run, with the issue's goals printed as measured ratios.

    python3 benchmarks/bench_e2e.py                       # kodim01/07/15 + 2048² + 4096²
    python3 benchmarks/bench_e2e.py --images kodim07 --sizes 2048 --repeat 5

Builds (or reuses) BUILD with `lic2cpp build --max-patches 300` (tables fitted on
../shared/data/photos), then for each image — the Kodak images named by --images, and
square mosaics of Kodak images of each --sizes side ("synthetic": photographic content at
sizes Kodak lacks) — measures, each the best of --repeat runs (--repeat-large for images
over 2 megapixels):

- `decoder IN.bin OUT.png` and `OUT.ppm` with 1 and 2 threads, `encoder IN.png` and
  `IN.ppm` with 1 and 2 threads: process wall time, process CPU time (user + sys, 10 ms
  resolution) and peak resident memory (maximum RSS, from GNU time);
- CompressAI `compress` and `decompress` of the same checkpoint, `torch.set_num_threads(1)`,
  input padded to a multiple of 64 as its evaluation does;
- g_a and g_s alone, single thread: ONNX Runtime (the ONNX files the build wrote) and
  lic2cpp's runtime (`lic-run --repeat`, no file I/O), as in bench_transforms.py.

On a machine shared with other jobs the CPU time of a one-thread run is the steadier
measure of the work; wall time is what the thread-scaling ratios need (compare the load
average printed at start and end). Ratios below 1 mean lic2cpp is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codec import build  # noqa: E402  (shared benchmark helpers)
from bench_transforms import best_time, time_lic  # noqa: E402

from lic2cpp.images import read_rgb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
KODAK = SHARED / "data" / "kodak"
LARGE_PIXELS = 2_000_000  # images above this use --repeat-large
GNU_TIME = "/usr/bin/time"  # Debian package `time` (scripts/setup.sh installs it)


@dataclass
class Run:
    """Best-of-N figures of one command: seconds and megabytes."""

    wall: float = float("inf")
    cpu: float = float("inf")
    rss_mb: float = 0.0
    # the programs' own stage times (LIC_PROFILE), best of N, seconds
    stages: dict[str, float] = field(default_factory=dict)

    def add(self, wall: float, cpu: float, rss_mb: float,
            stages: dict[str, float] | None = None) -> None:
        self.wall = min(self.wall, wall)
        self.cpu = min(self.cpu, cpu)
        self.rss_mb = max(self.rss_mb, rss_mb)
        for k, v in (stages or {}).items():
            self.stages[k] = min(self.stages.get(k, float("inf")), v)


@dataclass
class ImageRows:
    name: str
    width: int
    height: int
    bytes: int = 0
    runs: dict[str, Run] = field(default_factory=dict)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


REALTIME = {"on": False}  # --realtime, for the image being measured


@contextlib.contextmanager
def realtime():
    """SCHED_FIFO for this process (and the children it starts) while timing, if asked:
    on a machine whose cores other jobs keep busy, wall times -- and so thread scaling --
    are otherwise meaningless. Each timed call holds both cores for at most a few
    seconds; everything else runs at normal priority."""
    if not REALTIME["on"]:
        yield
        return
    old = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        yield
    finally:
        os.sched_setscheduler(0, old[0], old[1])


def run_child(cmd: list[str]) -> tuple[float, float, float, dict[str, float]]:
    """Wall s, CPU s (user + sys), peak RSS (MB) and the program's stage times (s, from
    LIC_PROFILE=1, which costs nothing measurable) of one run of `cmd`.

    GNU time starts the program: a child forked from this (large) Python process would
    report this process's resident size as its own peak (Linux carries the pre-exec
    high-water mark over exec), so the rusage must come from a small parent.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rec, realtime():
        start = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-f", "%U %S %M", "-o", rec.name, *cmd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "LIC_PROFILE": "1"})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        user, system, rss_kib = rec.read().split()[-3:]
    stages = {m.group(1): float(m.group(2)) / 1000 for m in re.finditer(
        r"^lic profile: ((?:encoder|decoder): [a-z_ ]+?)\s+([0-9.]+) ms", proc.stderr,
        re.MULTILINE)}
    return wall, float(user) + float(system), float(rss_kib) / 1024.0, stages


def mosaic(side: int) -> np.ndarray:
    """A side x side RGB image tiled from the Kodak images (cropped at the edges)."""
    files = sorted(KODAK.glob("*.png"))
    out = np.zeros((side, side, 3), np.uint8)
    k = 0
    y = 0
    while y < side:
        x, row_h = 0, 0
        while x < side:
            tile = read_rgb(files[k % len(files)])
            k += 1
            h, w = min(tile.shape[0], side - y), min(tile.shape[1], side - x)
            out[y:y + h, x:x + w] = tile[:h, :w]
            x += w
            row_h = max(row_h, h)
        y += row_h
    return out


def prepare_images(names: list[str], sizes: list[int], tmp: Path
                   ) -> list[tuple[str, np.ndarray, Path, Path]]:
    """(name, rgb, png path, ppm path) of every benchmark image."""
    from PIL import Image

    images = []
    for name in names:
        path = KODAK / f"{name}.png"
        if not path.is_file():
            sys.exit(f"no image {path}")
        images.append((name, read_rgb(path), path))
    for side in sizes:
        rgb = mosaic(side)
        path = tmp / f"mosaic{side}.png"
        Image.fromarray(rgb).save(path, compress_level=1)
        images.append((f"mosaic{side}", rgb, path))
    out = []
    for name, rgb, png in images:
        ppm = tmp / f"{name}.ppm"
        Image.fromarray(rgb).save(ppm)
        out.append((name, rgb, png, ppm))
    return out


def time_programs(build_dir: Path, png: Path, ppm: Path, threads: list[int], repeat: int,
                  tmp: Path, row: ImageRows) -> None:
    enc, dec = str(build_dir / "encoder"), str(build_dir / "decoder")
    binf = tmp / "image.bin"
    run_child([enc, str(ppm), str(binf)])  # untimed: warms the page cache
    row.bytes = binf.stat().st_size
    outputs: dict[str, bytes] = {}
    for _ in range(repeat):
        for t in threads:
            for kind, src in (("png", png), ("ppm", ppm)):
                row.runs.setdefault(f"encoder {kind} t{t}", Run()).add(
                    *run_child([enc, str(src), str(tmp / "out.bin"), "--threads", str(t)]))
                outputs[f"bin {kind} t{t}"] = (tmp / "out.bin").read_bytes()
            for kind in ("png", "ppm"):
                out = tmp / f"decoded.{kind}"
                row.runs.setdefault(f"decoder {kind} t{t}", Run()).add(
                    *run_child([dec, str(binf), str(out), "--threads", str(t)]))
                outputs[f"{kind} t{t}"] = out.read_bytes()
    # Sanity: same bitstream and same pixels whatever the input format and thread count.
    if len({v for k, v in outputs.items() if k.startswith("bin")}) != 1:
        sys.exit(f"{row.name}: the bitstream depends on the input format or thread count")
    pixels = {read_rgb(tmp / f"decoded.{kind}").tobytes() for kind in ("png", "ppm")}
    if len({v for k, v in outputs.items() if k.startswith("ppm")}) != 1 or len(pixels) != 1:
        sys.exit(f"{row.name}: decoded pixels depend on the output format or thread count")


def time_compressai(net, rgb: np.ndarray, repeat: int, row: ImageRows) -> None:
    import torch
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    from lic2cpp.evaluate import COMPRESSAI_PAD

    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255.0)
    pad, _ = compute_padding(h, w, min_div=COMPRESSAI_PAD)
    x = F.pad(x, pad, mode="constant", value=0)
    state: dict = {}
    with torch.no_grad():
        def compress() -> None:
            state["enc"] = net.compress(x)

        def decompress() -> None:
            net.decompress(state["enc"]["strings"], state["enc"]["shape"])

        for key, fn in (("compressai compress", compress),
                        ("compressai decompress", decompress)):
            with realtime():
                wall, cpu = best_time(fn, repeat)  # milliseconds
            row.runs[key] = Run(wall / 1000, cpu / 1000)


def time_transforms(build_dir: Path, net, rgb: np.ndarray, repeat: int, tmp: Path,
                    row: ImageRows) -> None:
    import onnxruntime as ort
    import torch

    from lic2cpp.runtime import lic_run_path

    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")
    x = padded.astype(np.float32)[None].transpose(0, 3, 1, 2) / 255.0
    with torch.no_grad():
        y = torch.round(net.g_a(torch.from_numpy(x))).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    exe = lic_run_path()
    for name, inp in (("g_a", x), ("g_s", y)):
        sess = ort.InferenceSession(str(build_dir / f"{name}.onnx"), opts,
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: inp}
        sess.run(None, feed)  # untimed warm-up
        with realtime():
            wall, cpu = best_time(lambda s=sess, f=feed: s.run(None, f), repeat)
        row.runs[f"ort {name}"] = Run(wall / 1000, cpu / 1000)
        del sess
        with realtime():
            (wall, cpu), _ = time_lic(exe, build_dir / f"{name}.licm",
                                      inp[0].transpose(1, 2, 0), repeat, tmp)
        row.runs[f"lic {name}"] = Run(wall / 1000, cpu / 1000)


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def goals(rows: list[ImageRows], clock: str) -> list[tuple[str, str, float, bool]]:
    """(goal, where, measured, met) for every goal of the issue, on every image."""
    out = []
    get = lambda r, k: getattr(r.runs[k], clock)  # noqa: E731
    for r in rows:
        if "decoder png t1" not in r.runs:
            continue
        dec1, dec1_ppm = get(r, "decoder png t1"), get(r, "decoder ppm t1")
        enc1, enc1_ppm = get(r, "encoder png t1"), get(r, "encoder ppm t1")
        if clock == "wall":
            # the programs' own timing of the stage, against the whole run (1 thread)
            write = r.runs["decoder png t1"].stages.get("decoder: writing the image")
            read = r.runs["encoder png t1"].stages.get("encoder: reading the image")
            if write is not None:
                v = write / dec1
                out.append(("PNG output (own stage time) / decode time <= 0.05", r.name, v,
                            v <= 0.05))
            if read is not None:
                v = read / enc1
                out.append(("PNG input (own stage time) / encode time <= 0.05", r.name, v,
                            v <= 0.05))
        png_share = (dec1 - dec1_ppm) / dec1
        out.append(("PNG output share of decode time (PNG - PPM run) <= 0.05", r.name,
                    png_share, png_share <= 0.05))
        png_in = (enc1 - enc1_ppm) / enc1
        out.append(("PNG input share of encode time (PNG - PPM run) <= 0.05", r.name, png_in,
                    png_in <= 0.05))
        if "compressai decompress" in r.runs:
            v = ratio(dec1, get(r, "compressai decompress"))
            out.append(("decoder t1 / CompressAI decompress <= 0.6", r.name, v, v <= 0.6))
            v = ratio(enc1, get(r, "compressai compress"))
            out.append(("encoder t1 / CompressAI compress <= 0.75", r.name, v, v <= 0.75))
        if clock == "wall" and "decoder png t2" in r.runs:
            v = ratio(dec1, get(r, "decoder png t2"))
            out.append(("decoder speed-up t1/t2 >= 1.8", r.name, v, v >= 1.8))
            v = ratio(enc1, get(r, "encoder png t2"))
            out.append(("encoder speed-up t1/t2 >= 1.8", r.name, v, v >= 1.8))
        for net, limit in (("g_a", 1.0), ("g_s", 0.8)):
            if f"ort {net}" in r.runs:
                v = ratio(get(r, f"lic {net}"), get(r, f"ort {net}"))
                out.append((f"{net} lic2cpp / ORT <= {limit}", r.name, v, v <= limit))
    return out


def report(rows: list[ImageRows], header: str) -> str:
    lines = [header, ""]
    keys = list(dict.fromkeys(k for r in rows for k in r.runs))
    lines.append("| run | " + " | ".join(f"{r.name} ({r.width}x{r.height})" for r in rows)
                 + " |")
    lines.append("|---" * (len(rows) + 1) + "|")
    for k in keys:
        cells = []
        for r in rows:
            run = r.runs.get(k)
            if run is None:
                cells.append("")
                continue
            cell = f"{run.wall * 1000:.0f} / {run.cpu * 1000:.0f}"
            if run.rss_mb:
                cell += f" / {run.rss_mb:.0f} MB"
            cells.append(cell)
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("cells: wall ms / CPU ms (best of N) / peak RSS of the process")
    lines.append("")
    lines.append("the programs' stages (LIC_PROFILE=1; wall ms, best of N):")
    for r in rows:
        for key in ("decoder png t1", "decoder png t2", "encoder png t1", "encoder png t2"):
            run = r.runs.get(key)
            if run and run.stages:
                cells = ", ".join(f"{k.split(': ', 1)[1]} {v * 1000:.1f}"
                                  for k, v in run.stages.items())
                lines.append(f"- {r.name} {key}: {cells}")
    lines.append("")
    lines.append("| peak RSS (1 thread, PNG) | " + " | ".join(r.name for r in rows) + " |")
    lines.append("|---" * (len(rows) + 1) + "|")
    for prog in ("decoder png t1", "encoder png t1"):
        cells = [f"{r.runs[prog].rss_mb:.1f} MB = {r.runs[prog].rss_mb / r.megapixels:.1f} "
                 f"MB/MP" for r in rows]
        lines.append(f"| {prog.split()[0]} | " + " | ".join(cells) + " |")
    kodak = [r for r in rows if r.name.startswith("kodim")]
    for prog, limit in (("decoder png t1", 50), ("encoder png t1", 80)):
        if kodak:
            worst = max(r.runs[prog].rss_mb for r in kodak)
            lines.append(f"- {prog.split()[0]} peak RSS on Kodak {worst:.1f} MB <= {limit} MB: "
                         f"{'met' if worst <= limit else 'NOT met'}")
    for clock in ("cpu", "wall"):
        lines.append("")
        lines.append(f"goals, {clock} time (ratio, met?):")
        by_goal: dict[str, list[tuple[str, float, bool]]] = {}
        for goal, where, v, met in goals(rows, clock):
            by_goal.setdefault(goal, []).append((where, v, met))
        for goal, vals in by_goal.items():
            cells = ", ".join(f"{w} {v:.3f}{'' if m else ' (NOT met)'}" for w, v, m in vals)
            lines.append(f"- {goal}: {cells}")
    return "\n".join(lines)


def git_commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "fp_relu_128_192.pth")
    ap.add_argument("--training-set", type=Path, default=SHARED / "data" / "photos")
    ap.add_argument("--max-patches", type=int, default=300, help="for the tables' fit")
    ap.add_argument("--build", type=Path, default=Path("/tmp/lic2cpp-bench/e2e-relu"),
                    help="build folder (reused when up to date)")
    ap.add_argument("--no-build", action="store_true",
                    help="use BUILD's encoder and decoder as they are (e.g. an older build)")
    ap.add_argument("--images", default="kodim01,kodim07,kodim15",
                    help="comma list of Kodak image names ('' for none)")
    ap.add_argument("--sizes", default="2048,4096",
                    help="comma list of sides of synthetic square images ('' for none)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    ap.add_argument("--repeat-large", type=int, default=1,
                    help="runs per figure for images over 2 megapixels")
    ap.add_argument("--threads", default="1,2", help="thread counts of the programs")
    ap.add_argument("--no-competitors", action="store_true",
                    help="only the programs (no CompressAI, no ONNX Runtime)")
    ap.add_argument("--no-large-competitors", action="store_true",
                    help="competitors on the images up to 2 megapixels only")
    ap.add_argument("--realtime", action="store_true",
                    help="time the images up to 2 megapixels at real-time priority "
                         "(SCHED_FIFO; needs root): steady wall times on a busy machine")
    ap.add_argument("--markdown", type=Path, help="also write the report here")
    ap.add_argument("--json", type=Path, help="also write every figure as JSON")
    args = ap.parse_args()
    if not Path(GNU_TIME).is_file():
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory: apt-get install time")

    import torch

    from lic2cpp.load import load_model

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    names = [n for n in args.images.split(",") if n]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    if not args.no_build:
        build(args.model, args.training_set, args.build, False,
              ["--max-patches", str(args.max_patches)])
    net = load_model(args.model).eval()
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmpname:
        tmp = Path(tmpname)
        for name, rgb, png, ppm in prepare_images(names, sizes, tmp):
            h, w = rgb.shape[:2]
            row = ImageRows(name, w, h)
            large = w * h > LARGE_PIXELS
            repeat = args.repeat_large if large else args.repeat
            REALTIME["on"] = args.realtime and not large
            print(f"{name} ({w}x{h}): programs ...", flush=True)
            time_programs(args.build, png, ppm, threads, repeat, tmp, row)
            if not args.no_competitors and not (large and args.no_large_competitors):
                print(f"{name}: CompressAI, ONNX Runtime ...", flush=True)
                time_compressai(net, rgb, repeat, row)
                time_transforms(args.build, net, rgb, repeat, tmp, row)
            rows.append(row)
    load1 = os.getloadavg()
    header = (f"bench_e2e: {started}, commit {git_commit()}, {cpu_name()}, "
              f"{'real-time priority up to 2 MP, ' if args.realtime else ''}"
              f"{os.cpu_count()} CPUs, load average {load0[0]:.1f} at start, "
              f"{load1[0]:.1f} at end; model {args.model.name}; best of {args.repeat} "
              f"({args.repeat_large} over 2 MP); {len(rows[0].runs) if rows else 0} runs "
              f"per image")
    text = report(rows, header)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(
            [{"name": r.name, "width": r.width, "height": r.height, "bytes": r.bytes,
              "runs": {k: vars(v) for k, v in r.runs.items()}} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
