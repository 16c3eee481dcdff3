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
# libdeflate reads the common PNG 2x faster than libpng (cpp/codec/io/image_file.hpp).
[ -f /usr/include/libdeflate.h ] || need_apt+=(libdeflate-dev)
# clang with libFuzzer and the sanitizer runtimes: the fuzz targets under tests/fuzz/
# (clang++-14 -fsanitize=fuzzer,address,undefined); libFuzzer is in libclang-rt-14-dev.
command -v clang++-14 >/dev/null 2>&1 || need_apt+=(clang-14)
compgen -G '/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a' >/dev/null \
  || need_apt+=(libclang-rt-14-dev)
# The tests build a C program against the codec library with CMake (Ninja generator) and
# measure the decoder's peak memory with GNU time (so does benchmarks/bench_e2e.py).
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v ninja >/dev/null 2>&1 || need_apt+=(ninja-build)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

python3 -m pip install -q -e '.[dev]'
