"""Snapshot of what the built codecs produce: bitstreams and decoded images, hashed.

Builds the codec of every checkpoint in ../shared/models and of the shipped default model,
encodes and decodes the 24 Kodak images, and writes one line per file
(`model image kind sha256 size`) to OUT/hashes.txt. Two snapshots taken at two commits
are compared with `diff`: a change that claims "no change in behaviour" must give
identical files.

    python benchmarks/snapshot_outputs.py --out /tmp/snap-before
    python benchmarks/snapshot_outputs.py --out /tmp/snap-after
    diff /tmp/snap-before/hashes.txt /tmp/snap-after/hashes.txt && echo identical

Only the lic2cpp CLI and the built programs are used, so the script runs unchanged on old
and new trees.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(model: Path | None, out: Path, max_patches: int) -> None:
    cmd = [sys.executable, "-m", "lic2cpp", "build", "-o", str(out)]
    if model is not None:
        cmd += ["--model", str(model), "--training-set", str(SHARED / "data" / "photos"),
                "--max-patches", str(max_patches)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for builds and files")
    parser.add_argument("--max-patches", type=int, default=300,
                        help="training patches for the fit (same value for both snapshots)")
    parser.add_argument("--images", type=int, default=24, help="how many Kodak images")
    args = parser.parse_args()
    models: list[tuple[str, Path | None]] = [
        (p.stem, p) for p in sorted((SHARED / "models").glob("*.pth"))]
    models.append(("default", None))
    images = sorted((SHARED / "data" / "kodak").glob("*.png"))[: args.images]
    lines = []
    for name, ckpt in models:
        out = args.out / name
        print(f"building {name}", flush=True)
        build(ckpt, out, args.max_patches)
        files = out / "files"
        files.mkdir(exist_ok=True)
        for img in images:
            bits, png = files / f"{img.stem}.bin", files / f"{img.stem}.png"
            subprocess.run([str(out / "encoder"), str(img), str(bits)], check=True)
            subprocess.run([str(out / "decoder"), str(bits), str(png)], check=True,
                           stdout=subprocess.DEVNULL)
            for kind, path in (("bitstream", bits), ("decoded", png)):
                lines.append(f"{name} {img.stem} {kind} {sha256(path)} {path.stat().st_size}")
    (args.out / "hashes.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'hashes.txt'} ({len(lines)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
