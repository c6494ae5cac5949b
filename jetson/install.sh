#!/usr/bin/env bash
# Install nvila-edge on a Jetson with JetPack 6.x or 7.x, on top of JetPack's own TensorRT.
#
# usage: jetson/install.sh [--prefix DIR] [--service] [--help]
#
#   --prefix DIR  install folder; the venv is DIR/venv (default: /opt/nvila-edge)
#   --service     also install the units nvila-edge-demo.service (camera demo) and nvila-edge-serve.service
#                 (HTTP service), their settings files /etc/nvila-edge/demo.env and serve.env, and the
#                 nvila-edge system user (neither unit is enabled)
#
# Steps:
#   1. JetPack's TensorRT Python bindings must import in the system python3; on a device they are
#      installed from JetPack's apt repository (python3-libnvinfer) when missing. TensorRT is never
#      pip-installed: a pip wheel would not match JetPack's TensorRT, CUDA and driver.
#   2. A venv made with --system-site-packages, so it sees those bindings and the system OpenCV.
#   3. This project with the runtime, jetson and serve extras; cuda-python pinned to the CUDA major version.
#      pip builds the native preprocessing library with its CUDA kernels (g++ and JetPack's nvcc).
#   4. OpenCV: the system build is kept when it has GStreamer (CSI cameras, hardware decoding) by
#      removing the pip wheel from the venv; otherwise the script says what is missing and why.
#   5. nvila-edge doctor --for run.
#
# Also works inside a JetPack-based container (see jetson/Dockerfile), where there is no
# /etc/nv_tegra_release but the image's system python3 has TensorRT.
set -euo pipefail

PREFIX=/opt/nvila-edge
SERVICE=0
PYTHON="${PYTHON:-/usr/bin/python3}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
say() { echo "==> $*"; }
die() {
  echo "install.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix)
      [ $# -ge 2 ] || die "--prefix needs a folder"
      PREFIX="$2"
      shift 2
      ;;
    --service)
      SERVICE=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

system_tensorrt() { "$PYTHON" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null; }
has_gstreamer() {
  "$1" -c 'import re, sys, cv2; sys.exit(0 if re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) else 1)' 2>/dev/null
}

# 1. JetPack's TensorRT, as the system Python sees it.
JETPACK_MAJOR=""
if [ -f /etc/nv_tegra_release ]; then
  say "L4T: $(head -n 1 /etc/nv_tegra_release)"
  case "$(head -n 1 /etc/nv_tegra_release)" in
    "# R36 "*) JETPACK_MAJOR=6 ;;
    "# R38 "* | "# R39 "*) JETPACK_MAJOR=7 ;;
    *) die "this L4T release is not JetPack 6 (R36) or 7 (R38/R39); flash JetPack 6.1 or newer" ;;
  esac
  if ! system_tensorrt >/dev/null; then
    say "JetPack's TensorRT Python bindings are missing; installing python3-libnvinfer"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y python3-libnvinfer
  fi
fi
TRT_VERSION="$(system_tensorrt)" || die "$PYTHON cannot import tensorrt: this is not a Jetson with JetPack 6/7 \
nor a JetPack/TensorRT container. On a Jetson: sudo apt-get install nvidia-jetpack"
say "TensorRT $TRT_VERSION from JetPack, used as installed"

CUDA_VERSION="$("$PYTHON" -c 'import json; print(json.load(open("/usr/local/cuda/version.json"))["cuda"]["version"])' \
  2>/dev/null || true)"
[ -n "$CUDA_VERSION" ] || die "no /usr/local/cuda/version.json: install JetPack's CUDA (sudo apt-get install nvidia-jetpack)"
CUDA_MAJOR="${CUDA_VERSION%%.*}"
say "CUDA $CUDA_VERSION"

# 2. The venv; --system-site-packages makes JetPack's TensorRT (and OpenCV) visible inside it.
if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" apt-get install -y python3-venv
fi
VENV="$PREFIX/venv"
"${SUDO[@]}" mkdir -p "$PREFIX"
"${SUDO[@]}" chown "$(id -u):$(id -g)" "$PREFIX"
"$PYTHON" -m venv --system-site-packages "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install --upgrade pip

# 3. The project; cuda-python must match the CUDA major version of the driver JetPack installed. The native
#    preprocessing library is compiled here with JetPack's nvcc, so its kernels match this device's CUDA.
if ! command -v g++ >/dev/null; then
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" apt-get install -y g++
fi
[ -x /usr/local/cuda/bin/nvcc ] || die "no /usr/local/cuda/bin/nvcc: install JetPack's CUDA toolkit (sudo apt-get install nvidia-jetpack)"
CUDACXX=/usr/local/cuda/bin/nvcc "$VPY" -m pip install "${SRC}[runtime,jetson,serve]" \
  "cuda-python>=$CUDA_MAJOR.0,<$((CUDA_MAJOR + 1))"
"$VPY" -c 'import sys; from nvila_edge.runtime import _preprocess as p; sys.exit(not p.cuda)' ||
  die "the native preprocessing library was built without its CUDA kernels (see the CMake messages above)"
"$VPY" -c 'import sys, tensorrt; sys.exit(tensorrt.__file__.startswith(sys.prefix))' ||
  die "the venv imports a pip-installed tensorrt; remove it: $VPY -m pip uninstall -y tensorrt"

# 4. OpenCV: pip's wheel has no GStreamer; JetPack's build has.
if has_gstreamer "$PYTHON"; then
  say "the system OpenCV has GStreamer: removing pip's OpenCV wheel from the venv so the system one is used"
  "$VPY" -m pip uninstall -y opencv-python-headless opencv-python
  if ! "$VPY" -c 'import cv2' 2>/dev/null; then
    say "the system OpenCV was built against NumPy 1.x: pinning numpy<2 in the venv"
    "$VPY" -m pip install "numpy<2"
  fi
  has_gstreamer "$VPY" || die "OpenCV with GStreamer is still not importable in the venv"
else
  say "the system OpenCV is missing or has no GStreamer, so pip's opencv-python-headless stays."
  say "USB (V4L2) cameras, video files and RTSP work; CSI cameras and hardware decoding need GStreamer:"
  if [ "$JETPACK_MAJOR" = 6 ]; then
    say "  sudo apt-get install nvidia-opencv   (JetPack's OpenCV), then run this script again"
  else
    say "  sudo apt-get install python3-opencv   (built with GStreamer), then run this script again"
  fi
fi

# Optional: the camera-demo and HTTP services.
if [ "$SERVICE" = 1 ]; then
  if ! id nvila-edge >/dev/null 2>&1; then
    "${SUDO[@]}" useradd --system --home-dir /var/lib/nvila-edge --create-home --groups video nvila-edge
  fi
  "${SUDO[@]}" install -d -m 0755 /etc/nvila-edge
  if [ ! -f /etc/nvila-edge/demo.env ]; then
    printf '%s\n' "# Arguments after 'nvila-edge demo --headless' (see: nvila-edge demo --help)." \
      'NVILA_EDGE_DEMO_ARGS="--engines /var/lib/nvila-edge/engines --source csi://0"' |
      "${SUDO[@]}" tee /etc/nvila-edge/demo.env >/dev/null
  fi
  if [ ! -f /etc/nvila-edge/serve.env ]; then
    printf '%s\n' "# Arguments after 'nvila-edge serve' (see: nvila-edge serve --help)." \
      'NVILA_EDGE_SERVE_ARGS="/var/lib/nvila-edge/engines --host 127.0.0.1 --port 8000"' \
      "# Required for any --host other than 127.0.0.1; clients send it as 'Authorization: Bearer KEY'." \
      '#NVILA_EDGE_API_KEY=' |
      "${SUDO[@]}" tee /etc/nvila-edge/serve.env >/dev/null
    "${SUDO[@]}" chmod 0640 /etc/nvila-edge/serve.env # it may hold the API key
    "${SUDO[@]}" chgrp nvila-edge /etc/nvila-edge/serve.env
  fi
  for unit in nvila-edge-demo nvila-edge-serve; do
    sed "s|/opt/nvila-edge/venv|$VENV|g" "$SRC/jetson/$unit.service" |
      "${SUDO[@]}" tee "/etc/systemd/system/$unit.service" >/dev/null
  done
  "${SUDO[@]}" systemctl daemon-reload
  say "installed nvila-edge-demo.service; edit /etc/nvila-edge/demo.env, then: sudo systemctl enable --now nvila-edge-demo"
  say "installed nvila-edge-serve.service; edit /etc/nvila-edge/serve.env, then: sudo systemctl enable --now nvila-edge-serve"
fi

# 5. What is still missing for running engines.
say "checking the installation"
"$VENV/bin/nvila-edge" doctor --for run || say "doctor reported problems above; each FAIL row has its fix"
say "done: $VENV/bin/nvila-edge (add $VENV/bin to PATH)"
