"""A built codec's encoder and decoder against CompressAI's compress/decompress, one thread.

For each image: the generated ``encoder`` and ``decoder`` as processes (start-up, PNG/PPM
I/O, weight packing included) and the model's own ``compress``/``decompress`` in this
process (model already loaded, image already a tensor: nothing but the coding), PyTorch on
one thread, each the best of ``--repeat`` runs. Wall time and CPU time (the child's rusage;
``time.process_time`` for PyTorch) are both printed: on a loaded machine CPU time is the
steadier measure. The last lines give lic2cpp's time as a fraction of CompressAI's, beside
issue 11's goals (decoder ≤ 0.5×, encoder ≤ 0.75×).

    python benchmarks/bench_hyper.py OUT/ --model M.pth --images ../shared/data/kodak --count 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lic2cpp.images import encoder_input, list_images, read_rgb
from lic2cpp.load import load_model


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.read().decode().strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def timed_call(fn) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def padded(img: np.ndarray, multiple: int = 64) -> torch.Tensor:
    """CompressAI's eval convention: zero padding to a multiple of 64, centred."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    return torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("codec", type=Path)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--output", choices=("ppm", "png"), default="ppm",
                    help="what the decoder writes (PNG adds its compression)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_model(args.model, args.arch)
    rows = []
    print(f"{'image':<14} {'lic enc':>16} {'CAI compress':>16} {'lic dec':>16} "
          f"{'CAI decompress':>16}   (wall / CPU seconds)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for image in list_images(args.images)[: args.count]:
            img = read_rgb(image)
            src = encoder_input(image, img, work)
            binf, out = work / "x.bin", work / f"x.{args.output}"
            enc = min(timed_process([args.codec / "encoder", src, binf])
                      for _ in range(args.repeat))
            dec = min(timed_process([args.codec / "decoder", binf, out])
                      for _ in range(args.repeat))
            x = padded(img)
            with torch.no_grad():
                comp = min((timed_call(lambda x=x: net.compress(x))
                            for _ in range(args.repeat)), key=lambda r: r[0])
                c = comp[2]
                decomp = min((timed_call(lambda c=c: net.decompress(c["strings"], c["shape"]))
                              for _ in range(args.repeat)), key=lambda r: r[0])
            row = (enc, comp[:2], dec, decomp[:2])
            rows.append(row)
            print(f"{image.name:<14} " + " ".join(f"{w:7.3f} / {c:6.3f}" for w, c in row))
    sums = np.array([[v for pair in r for v in pair] for r in rows]).sum(axis=0)
    enc_w, enc_c, cmp_w, cmp_c, dec_w, dec_c, dcm_w, dcm_c = sums
    print(f"encoder / compress:   wall {enc_w / cmp_w:.3f}x, CPU {enc_c / cmp_c:.3f}x "
          "(goal <= 0.75x)")
    print(f"decoder / decompress: wall {dec_w / dcm_w:.3f}x, CPU {dec_c / dcm_c:.3f}x "
          "(goal <= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
