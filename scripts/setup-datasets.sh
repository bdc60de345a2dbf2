#!/usr/bin/env bash
# Makes real Fashion-MNIST available offline for `--dataset fmnist`: Debian's
# dataset-fashion-mnist package (the original IDX files, 70,000 images, about 31 MB, in
# /usr/share/datasets/fashion-mnist/), installed with apt when it is missing and this is root on
# Debian. Idempotent (returns at once when the files are there). It never fails the caller:
# without the package it says why once, and `--dataset fmnist` then says where to put the files.
set -uo pipefail
folder=/usr/share/datasets/fashion-mnist
[ -f "$folder/train-images-idx3-ubyte.gz" ] && [ -f "$folder/t10k-labels-idx1-ubyte.gz" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "unavailable: Fashion-MNIST offline (Debian's dataset-fashion-mnist is not installed, and apt-get as root is not at hand); --dataset fmnist needs --data-dir" >&2
    exit 0
fi
echo "installing Debian's dataset-fashion-mnist for --dataset fmnist (real Fashion-MNIST, 31 MB, once)" >&2
log="$(mktemp)"
if ! { apt-get install -y -q --no-install-recommends dataset-fashion-mnist \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends dataset-fashion-mnist; }; } >"$log" 2>&1; then
    echo "unavailable: Fashion-MNIST offline (apt-get failed: $(tail -n 1 "$log"))" >&2
fi
rm -f "$log"
exit 0
