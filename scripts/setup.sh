#!/usr/bin/env bash
# Installs everything lic2cpp needs on a fresh Debian machine: the C++ toolchain pieces
# from Debian's packages (only those missing) and the Python package with its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
# The generated encoder/decoder read and write PNG through libpng (linked statically).
[ -f /usr/include/png.h ] || need_apt+=(libpng-dev)
[ -f /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

python3 -m pip install -q -e '.[dev]'
