#!/usr/bin/env bash
# GPU check: golden tests and benchmark on an NVIDIA GPU, beside PyTorch on
# the same machine. Meant to finish in under five minutes.
#
#   scripts/gpu-check.sh [cuda|wgpu]      (default: the bundle's backend, else cuda)
#
# Two ways to get the binaries:
#   - a machine without cargo or network (the usual GPU box): build here with
#     `scripts/gpu-bundle.sh cuda`, carry gpu-bundle/ with the checkout, run
#     this script from the checkout's root there;
#   - a machine with cargo: it builds them itself (for cuda, run
#     scripts/offline-llvm.sh first when GitHub cannot be reached).
# The machine needs the NVIDIA driver, and PyTorch with CUDA for the
# comparison (python3 -c "import torch" must work, or set PYTHON).
# Exits 1 when a golden test, a training run or the training parity fails
# (the benchmark and the PyTorch timings only report).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
python="${PYTHON:-python3}"
failed=()

if [ -d gpu-bundle ]; then
    backend="${1:-$(cat gpu-bundle/backend)}"
    bin=$(mktemp -d)
    for name in cyclegan tests; do
        if command -v xz >/dev/null; then
            xz -dc "gpu-bundle/$name.xz" > "$bin/$name"
        else
            "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
                "gpu-bundle/$name.xz" "$bin/$name"
        fi
        chmod +x "$bin/$name"
    done
    cyclegan="$bin/cyclegan"
    tests=("$bin/tests")
    export CYCLEGAN_REF="$PWD/gpu-bundle/reference"
else
    backend="${1:-cuda}"
    cargo build --release --locked --features "$backend" || exit 1
    cyclegan=target/release/cyclegan
    tests=(cargo test --release --locked --features "$backend" --test tests --)
fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "(no nvidia-smi)"
"$cyclegan" --version

echo "== golden tests on $backend (tolerance 1e-3: GPUs reduce in other orders, some multiply in TF32)"
CYCLEGAN_TEST_DEVICE="$backend" CYCLEGAN_TEST_TOL=1e-3 timeout 180 "${tests[@]}" parity 2>&1 | tail -n 45 \
    || failed+=("golden tests")

echo "== training on $backend: the first 3 iterations' losses against PyTorch's (tests/train.rs does this on the CPU)"
for mode in lsgan vanilla; do
    run=$(mktemp -d)
    mkdir -p "$run/A" "$run/B"
    cp tests/fixtures/train_a0.png tests/fixtures/train_a1.png "$run/A/"
    cp tests/fixtures/train_b0.png tests/fixtures/train_b1.png "$run/B/"
    timeout 120 "$cyclegan" train --device "$backend" --data-a "$run/A" --data-b "$run/B" --output "$run/out" \
        --init tests/fixtures/train_init.safetensors --netG resnet_6blocks --ngf 4 --ndf 8 --gan-mode "$mode" \
        --pool-size 0 --no-flip --serial-batches --preprocess none --max-iters 3 --print-freq 1 >/dev/null \
        || { echo "$mode: training failed"; failed+=("$mode training"); continue; }
    "$python" - "$run/out/losses.jsonl" "tests/fixtures/train_losses_$mode.json" "$mode" <<'PY'
import json, sys
ours = [json.loads(line) for line in open(sys.argv[1])]
ref = json.load(open(sys.argv[2]))["steps"]
names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
per_step = [max(abs(o[n] - r[n]) / abs(r[n]) for n in names) for o, r in zip(ours, ref)]
worst = max(per_step, default=float("inf"))
print(f"{sys.argv[3]}: largest relative difference per iteration",
      " ".join(f"{d:.1e}" for d in per_step),
      "ok" if len(ours) == 3 and worst < 1e-3 else "FAILED (tolerance 1e-3)")
sys.exit(0 if len(ours) == 3 and worst < 1e-3 else 1)
PY
    [ $? -eq 0 ] || failed+=("$mode parity")
done

echo "== benchmark on $backend"
timeout 150 "$cyclegan" bench --device "$backend" --repeats 5 \
    --cases forward256,forward256x4,forward256-f16,train128,train256

echo "== PyTorch on the same machine"
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    "$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    for args in "forward --size 256" "forward --size 256 --batch 4" "train --size 128 --iters 3" "train --size 256 --iters 3"; do
        # shellcheck disable=SC2086
        echo "$args: $(timeout 60 "$python" scripts/reference_timing.py $args --device cuda)"
    done
else
    echo "PyTorch with CUDA is not available here; no reference figures"
fi
echo "== done in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all checks passed"
