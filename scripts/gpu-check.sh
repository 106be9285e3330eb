#!/usr/bin/env bash
# GPU check: golden tests and benchmark on an NVIDIA GPU, beside PyTorch on
# the same machine. Meant to finish in under five minutes once built.
#
#   scripts/gpu-check.sh [cuda|wgpu]      (default cuda)
#
# Build first, where the registry (and, for cuda, GitHub: burn's CUDA
# backend downloads an LLVM bundle when it is built) can be reached:
#   cargo test --release --features cuda --no-run && cargo build --release --features cuda
# The machine needs the NVIDIA driver (and NVRTC for cuda), and PyTorch with
# CUDA for the comparison (python3 -c "import torch" must work, or set PYTHON).
set -uo pipefail
cd "$(dirname "$0")/.."
backend="${1:-cuda}"
python="${PYTHON:-python3}"
start=$(date +%s)

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "(no nvidia-smi)"

echo "== golden tests on $backend (tolerance 1e-3: GPUs reduce in other orders, some multiply in TF32)"
CYCLEGAN_TEST_DEVICE="$backend" CYCLEGAN_TEST_TOL=1e-3 \
    timeout 180 cargo test --release --locked --features "$backend" --test tests parity 2>&1 | tail -n 40

echo "== benchmark on $backend"
timeout 180 target/release/cyclegan bench --device "$backend" --repeats 5 \
    --cases forward256,forward256x4,forward256-f16,train128,train256

echo "== PyTorch on the same machine"
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    for args in "forward --size 256" "forward --size 256 --batch 4" "train --size 128 --iters 3" "train --size 256 --iters 3"; do
        # shellcheck disable=SC2086
        echo "$args: $(timeout 120 "$python" scripts/reference_timing.py $args --device cuda)"
    done
else
    echo "PyTorch with CUDA is not available here; no reference figures"
fi
echo "== done in $(( $(date +%s) - start )) s"
