"""Bit-exactness of an int16 build's decoder across ISA levels and thread counts.

Encodes every image of ``--images`` with ``OUT/encoder``, then decodes each bitstream with
``OUT/decoder`` at every kernel level this CPU has (``LIC_ISA``: scalar, avx2+fma,
avx512-vnni) and with 1 and 2 threads, and compares the decoded files byte for byte.

    python3 benchmarks/int16_bitexact.py OUT --images ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lic2cpp.images import list_images

LEVELS = ("scalar", "avx2+fma", "avx512-vnni")


def run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr.strip()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder of an `lic2cpp build --int16`")
    p.add_argument("--images", required=True, type=Path)
    args = p.parse_args()
    images = list_images(args.images)
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for image in images:
            stream = Path(tmp) / f"{image.stem}.bin"
            run([str(args.out / "encoder"), str(image), str(stream)], {})
            digests = {}
            for level in LEVELS:
                for threads in ("1", "2"):
                    out = Path(tmp) / f"{image.stem}-{level}-{threads}.png"
                    run([str(args.out / "decoder"), str(stream), str(out), "--threads", threads],
                        {"LIC_ISA": level})
                    digests[(level, threads)] = hashlib.sha256(out.read_bytes()).hexdigest()
            same = len(set(digests.values())) == 1
            differ += not same
            first = next(iter(digests.values()))[:16]
            print(f"{image.name:<14} {'identical' if same else 'DIFFERENT'} over "
                  f"{len(digests)} runs (levels x threads 1, 2): {first}")
    print(f"{len(images) - differ} of {len(images)} images decode to identical files at every "
          "level and thread count" + ("" if not differ else f"; {differ} differ"))
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
