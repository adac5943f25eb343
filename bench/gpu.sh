#!/usr/bin/env bash
# The GPU check, one command on a machine with a GPU (about 5–10 minutes):
#   bench/gpu.sh [--allow-software]
# 1. installs what the machine lacks for Dawn: the Vulkan loader (libvulkan1) and, on NVIDIA, the
#    Vulkan ICD file pointing at the driver's libGLX_nvidia.so.0 (containers often ship the driver
#    without it); the npm packages (`npm ci`) and the build;
# 2. names the adapter Dawn finds (a software adapter such as lavapipe is refused unless
#    --allow-software: its figures would say nothing about a GPU);
# 3. runs the parity fixtures and the WGSL kernel tests on webgpu;
# 4. runs the `bench:compare` workloads on webgpu and on the CPU path, and in PyTorch on CUDA when
#    a PyTorch with CUDA is importable (`python3 -c 'import torch'`), printing the ratios.
# Each step prints what it did; a step that cannot run says why and the script goes on where it can.
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1
allow_software=0
[ "${1:-}" = "--allow-software" ] && allow_software=1
t0=$SECONDS
step() { echo; echo "=== [$((SECONDS - t0)) s] $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

step "machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "node $(node --version), $(nproc) cores"

step "Vulkan loader and driver"
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  as_root apt-get install -y -qq libvulkan1 >/dev/null 2>&1 || (as_root apt-get update -qq && as_root apt-get install -y -qq libvulkan1 >/dev/null) ||
    echo "could not install libvulkan1 (no apt access?): Dawn will find no adapter"
fi
icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d)
if command -v nvidia-smi >/dev/null && ! ls "${icd_dirs[@]}" 2>/dev/null | grep -qi nvidia; then
  if ldconfig -p | grep -q 'libGLX_nvidia.so.0'; then
    as_root mkdir -p /etc/vulkan/icd.d
    echo '{ "file_format_version": "1.0.0", "ICD": { "library_path": "libGLX_nvidia.so.0", "api_version": "1.3" } }' |
      as_root tee /etc/vulkan/icd.d/nvidia_icd.json >/dev/null && echo "wrote /etc/vulkan/icd.d/nvidia_icd.json (libGLX_nvidia.so.0)"
  else
    echo "the NVIDIA driver's Vulkan library (libGLX_nvidia.so.0) is not here: in a container, start it with"
    echo "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (or all) so that the driver's graphics libraries are mounted"
  fi
fi
ls "${icd_dirs[@]}" 2>/dev/null | sed 's/^/  ICD: /'

step "npm packages and build"
[ -d node_modules/webgpu ] || npm ci --no-audit --no-fund || echo "npm ci failed (no registry here?)"
npx turbo run build --output-logs=errors-only || { echo "build failed"; exit 1; }

step "adapter"
probe="const m = require('@skysense/core-tensor'); const p = m.probeWebGPU();
console.log(p.adapter ? 'adapter: ' + m.formatAdapter(p.adapter) : 'no adapter: ' + p.reason);
process.exit(!p.adapter ? 1 : p.adapter.software ? 2 : 0)"
node -e "$probe"
case $? in
  0) ;;
  2) if [ $allow_software = 1 ]; then echo "software adapter allowed (--allow-software): correctness only"; else
       echo "only a software adapter: its timings would not be GPU figures (rerun with --allow-software to check correctness)"; exit 1; fi ;;
  *) echo "no adapter: nothing to measure"; exit 1 ;;
esac

step "parity fixtures and WGSL kernels on webgpu"
export SKYSENSE_BACKEND=webgpu SKYSENSE_TEST_BACKENDS=webgpu
parity_failed=0
for spec in "core-tensor:test/parity.test.ts test/webgpu-kernels.test.ts" "swin:test/parity.test.ts" "vit:test/vit.test.ts" \
  "temporal-fusion:test/fusion.test.ts" "losses:test/losses.test.ts" "heads:test/parity.test.ts test/faster-rcnn-parity.test.ts"; do
  pkg="${spec%%:*}"
  # shellcheck disable=SC2086
  (cd "packages/$pkg" && timeout 300 npx vitest run ${spec#*:} 2>&1 | grep -E 'Test Files|Tests |FAIL|×') || parity_failed=1
done
unset SKYSENSE_BACKEND SKYSENSE_TEST_BACKENDS

step "bench:compare on webgpu and the CPU path$( [ $allow_software = 1 ] && echo ' (software adapter: not GPU performance)')"
export BENCH_BACKENDS="${BENCH_BACKENDS:-webgpu,cpu-native}" BENCH_REPS="${BENCH_REPS:-5}"
if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  export BENCH_TORCH_DEVICE=cuda
  echo "PyTorch $(python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))') on CUDA"
else
  export BENCH_PYTHON=none
  echo "PyTorch with CUDA: not importable here (pip install torch where PyPI is reachable); the pytorch-cuda column is not measured"
fi
timeout 420 npx tsx bench/compare.ts || echo "bench:compare stopped (timeout or failure)"
step "done in $((SECONDS - t0)) s; parity $([ $parity_failed = 0 ] && echo passed || echo FAILED)"
exit $parity_failed
