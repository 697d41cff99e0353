#!/bin/sh
# Installs the Debian packages nepenthe needs (see DESIGN.md, "Dependencies").
# As root it runs apt-get; otherwise it prints the exact command to run.
# Usage: scripts/install-deps.sh [--check]   (--check: only report what is missing)
set -eu

PKGS="build-essential pkg-config zlib1g-dev libopenblas-openmp-dev libdnnl-dev libcjson-dev \
libcmocka-dev libgsl-dev python3-torch python3-torchvision python3-numpy python3-mpmath dataset-fashion-mnist \
libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx python3-venv python3-pip valgrind \
clang libclang-rt-14-dev fortunes libutf8proc-dev libopenmpi-dev openmpi-bin \
libjpeg62-turbo-dev libpng-dev python3-pil"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing Debian packages:$missing" >&2
    exit 1
fi
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "nepenthe needs these Debian packages:$missing" >&2
    echo "run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
$cmd
