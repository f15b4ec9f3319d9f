#!/usr/bin/env bash
# Installs Fashion-MNIST from Debian's package (dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist)
# unless it is already there or FASHION_MNIST_DIR points at the four .gz files. Uses sudo when not root.
set -euo pipefail
if [ -n "${FASHION_MNIST_DIR:-}" ] || [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q dataset-fashion-mnist
