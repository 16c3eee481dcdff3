"""Single-threaded speed of g_a and g_s: lic2cpp's C++ runtime vs PyTorch vs ONNX Runtime.

With ``--int16``, also lic2cpp's int16 fixed-point g_s (docs/int16.md; shifts calibrated on
the training photos, never Kodak) against the same float ORT and PyTorch g_s timings, as
the row ``g_s16`` (its max|diff| is against PyTorch's float output).

All three run in this one script on the same Kodak images and the same weights (the ONNX
and .licm files come from ``lic2cpp.convert.convert_model``). Each time is the best of
``--repeat`` runs of the transform alone (no file I/O, no model loading). lic2cpp is timed
inside ``lic-run --repeat``; the printed ratios are lic2cpp time / competitor time
(below 1 means lic2cpp is faster). Both wall time and process CPU time are measured: all
runs are single-threaded, so on a machine shared with other jobs the CPU time is the
steadier measure of each implementation's work, while wall time includes waiting.

    python3 benchmarks/bench_transforms.py --images 4 --repeat 3
    python3 benchmarks/bench_transforms.py --images 4 --repeat 3 --models relu --int16
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lic2cpp.images import read_rgb

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
KODAK = ROOT.parent / "shared" / "data" / "kodak"
CHECKPOINTS = {"relu": MODELS / "fp_relu_128_192.pth", "gdn": MODELS / "fp_gdn_128_192.pth"}
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of ``repeat`` calls, in milliseconds."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - t0) * 1000.0)
    return min(wall), min(cpu)


def time_lic(exe: Path, licm: Path, x_hwc: np.ndarray, repeat: int, tmp: Path
             ) -> tuple[tuple[float, float], np.ndarray]:
    inp, out = tmp / "in.npy", tmp / "out.npy"
    np.save(inp, np.ascontiguousarray(x_hwc, dtype=np.float32))
    proc = subprocess.run([str(exe), str(licm), str(inp), str(out), "--threads", "1",
                           "--repeat", str(repeat)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"lic-run failed: {proc.stderr.strip()}")
    match = re.search(r"best ([0-9.]+) ms.*best cpu ([0-9.]+) ms", proc.stderr)
    if not match:
        sys.exit(f"cannot parse lic-run timing: {proc.stderr.strip()}")
    return (float(match.group(1)), float(match.group(2))), np.load(out)


def load_images(count: int) -> list[tuple[str, np.ndarray]]:
    files = sorted(KODAK.glob("*.png"))[:count]
    if not files:
        sys.exit(f"no Kodak images in {KODAK}")
    return [(f.stem, read_rgb(f).astype(np.float32) / 255.0) for f in files]


def int16_synthesis(net, float_gs: Path, out: Path) -> Path:
    """The calibrated int16 g_s (reused if ``out`` exists, e.g. with --work-dir)."""
    from lic2cpp.int16 import int16_synthesis as make
    from lic2cpp.modelformat import read_licm, write_licm

    if not out.is_file():
        model, report = make(net, read_licm(float_gs), training_set=PHOTOS, progress=True)
        print(report.summary())
        write_licm(out, model)
    return out


def bench_model(name: str, images, repeat: int, work: Path, exe: Path,
                with_int16: bool = False) -> list[dict]:
    import onnxruntime as ort
    import torch

    from lic2cpp.convert import convert_model

    net = torch.load(CHECKPOINTS[name], weights_only=False)["model"].eval()
    out_dir = work / name
    if (out_dir / "g_a.licm").is_file() and (out_dir / "g_s.licm").is_file():
        licm = {t: out_dir / f"{t}.licm" for t in ("g_a", "g_s")}  # --work-dir reuse
    else:
        licm = dict(zip(("g_a", "g_s"), convert_model(net, out_dir), strict=True))
    if with_int16:
        licm["g_s16"] = int16_synthesis(net, licm["g_s"], out_dir / "g_s_int16.licm")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sessions = {t: ort.InferenceSession(str(out_dir / f"{t}.onnx"), opts,
                                        providers=["CPUExecutionProvider"])
                for t in ("g_a", "g_s")}
    rows = []
    for stem, img in tqdm(images, desc=f"{name} model", leave=False):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            y = torch.round(net.g_a(x))
        for transform, inp, module in (("g_a", x, net.g_a), ("g_s", y, net.g_s)):
            with torch.no_grad():
                t_torch = best_time(lambda m=module, i=inp: m(i), repeat)
                want = module(inp)[0].permute(1, 2, 0).numpy()
            sess = sessions[transform]
            feed = {sess.get_inputs()[0].name: inp.numpy()}
            t_ort = best_time(lambda s=sess, f=feed: s.run(None, f), repeat)
            t_lic, got = time_lic(exe, licm[transform], inp[0].permute(1, 2, 0).numpy(),
                                  repeat, work)
            rows.append(dict(model=name, transform=transform, image=stem,
                             size=f"{inp.shape[2]}x{inp.shape[3]}", lic=t_lic, ort=t_ort,
                             torch=t_torch, maxdiff=float(np.abs(got - want).max())))
            if transform == "g_s" and with_int16:
                t16, got16 = time_lic(exe, licm["g_s16"], inp[0].permute(1, 2, 0).numpy(),
                                      repeat, work)
                rows.append(dict(rows[-1], transform="g_s16", lic=t16,
                                 maxdiff=float(np.abs(got16 - want).max())))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="first N Kodak images")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best kept)")
    parser.add_argument("--models", default="relu,gdn", help="comma list: relu, gdn")
    parser.add_argument("--work-dir", type=Path, help="keep (and reuse) ONNX/licm files here")
    parser.add_argument("--int16", action="store_true",
                        help="also time the int16 fixed-point g_s (calibrated on the photos)")
    args = parser.parse_args()

    import torch

    from lic2cpp.runtime import lic_run_path

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    exe = lic_run_path()
    images = load_images(args.images)
    with tempfile.TemporaryDirectory(prefix="bench-transforms-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in args.models.split(","):
            rows += bench_model(name.strip(), images, args.repeat, work, exe, args.int16)

    for clock, k in (("wall", 0), ("cpu", 1)):
        print(f"\n{clock} time, best of {args.repeat} (ms):")
        print(f"{'model':5} {'net':5} {'image':8} {'input':>8} {'lic2cpp':>9} {'ORT':>9} "
              f"{'torch':>9} {'lic/ORT':>8} {'lic/torch':>9} {'max|diff|':>10}")
        for r in rows:
            lic, ort_t, tor = r["lic"][k], r["ort"][k], r["torch"][k]
            print(f"{r['model']:5} {r['transform']:5} {r['image']:8} {r['size']:>8} {lic:9.1f} "
                  f"{ort_t:9.1f} {tor:9.1f} {lic / ort_t:8.2f} {lic / tor:9.2f} "
                  f"{r['maxdiff']:10.2e}")
    print("\nsummary (sum over images; ratio = lic2cpp time / competitor time):")
    for model in dict.fromkeys(r["model"] for r in rows):
        for transform in ("g_a", "g_s", "g_s16"):
            sel = [r for r in rows if r["model"] == model and r["transform"] == transform]
            if not sel:
                continue
            for clock, k in (("wall", 0), ("cpu", 1)):
                lic, ort_t, tor = (sum(r[key][k] for r in sel) for key in ("lic", "ort", "torch"))
                med = statistics.median(r["lic"][k] / r["ort"][k] for r in sel)
                print(f"  {model:4} {transform:5} {clock:4}: lic2cpp {lic:8.1f} ms  "
                      f"ORT {ort_t:8.1f} ms  torch {tor:8.1f} ms  lic/ORT {lic / ort_t:.2f} "
                      f"(per-image median {med:.2f})  lic/torch {lic / tor:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
