#!/usr/bin/env bash
# Installs what the tests need on a bare Debian 12 machine with the .NET 10 SDK: the Fashion-MNIST data and,
# for the notebook test, Jupyter's nbconvert + ipykernel and the .NET Interactive kernel. Idempotent: each step
# is skipped when already done. README's test command and .ci/run both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real data for the end-to-end and notebook tests: Debian's Fashion-MNIST package.
bash scripts/install-data.sh
if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK (dotnet) is not installed" >&2
  exit 1
fi

# The notebook test runs samples/notebooks the way users do: Jupyter's nbconvert + the .NET Interactive kernel.
# The TorchVision student tests compare with PyTorch: Debian's python3-torchvision (torch 1.13, torchvision 0.14)
# writes their reference weights and features (tests/fixtures/torchvision/torchvision_reference.py).
# The CLI tests press Ctrl+C in a real pseudo-terminal (tmux) and open report.html in headless Chromium.
# The quantisation tests run ONNX's own checker on the int8 graphs (python3-onnx).
# Idempotent: each step is skipped when already done.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=""
for pkg in jupyter-nbconvert python3-ipykernel jupyter-client python3-torchvision python3-numpy python3-onnx tmux chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
export PATH="$PATH:$HOME/.dotnet/tools" # for this script; the notebook test adds it itself
export DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT=1
interactive_version=1.0.712001
if ! dotnet tool list -g | grep -qi "microsoft.dotnet-interactive *$interactive_version"; then
  if dotnet tool list -g | grep -qi "microsoft.dotnet-interactive"; then
    dotnet tool uninstall -g Microsoft.dotnet-interactive
  fi
  dotnet tool install -g Microsoft.dotnet-interactive --version "$interactive_version"
fi
if ! jupyter kernelspec list 2>/dev/null | grep -q '\.net-csharp'; then
  dotnet interactive jupyter install
fi

