#!/usr/bin/env bash
# Make sure Fashion-MNIST is on disk: Debian's package first, then `kdforaa data fetch`.
set -u
kdforaa=${1:-kdforaa}
dir=/usr/share/datasets/fashion-mnist
have() { ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1 || ls "${KDFORAA_DATA:-$HOME/.cache/kdforaa}"/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Fashion-MNIST missing: installing Debian's dataset-fashion-mnist" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null && have && exit 0
fi
echo "Fashion-MNIST missing: trying 'kdforaa data fetch fashion-mnist'" >&2
"$kdforaa" data fetch fashion-mnist && exit 0
echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' or 'kdforaa data fetch fashion-mnist --root DIR' and set KDFORAA_DATA=DIR" >&2
exit 1
