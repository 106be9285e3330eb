#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine that has neither
# cargo nor a network: the `cyclegan` binary and the test binary for one GPU
# backend, stripped and compressed, plus the PyTorch reference script.
#
#   scripts/gpu-bundle.sh [cuda|wgpu]     (default cuda) -> gpu-bundle/
#
# gpu-bundle/ is ignored by git; carry it to the GPU machine beside the
# checkout and run scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-cuda}"
reference="${CYCLEGAN_REF:-../shared/reference}"

if [ "$backend" = cuda ]; then
    scripts/offline-llvm.sh
fi

cargo build --release --locked --features "$backend"
test_binary=$(cargo test --release --locked --features "$backend" --test tests --no-run --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tests" and m.get("executable"):
        print(m["executable"])')
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

rm -rf gpu-bundle
mkdir -p gpu-bundle/reference
for pair in "cyclegan:$target_dir/release/cyclegan" "tests:$test_binary"; do
    name="${pair%%:*}"
    strip -o "gpu-bundle/$name" "${pair#*:}"
    xz -T0 -6 "gpu-bundle/$name"
done
cp "$reference/cyclegan_ref.py" gpu-bundle/reference/
echo "$backend" > gpu-bundle/backend
du -sh gpu-bundle/*
