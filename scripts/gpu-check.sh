#!/usr/bin/env bash
# One call on a machine with a GPU (issue: WebGPU on a real NVIDIA GPU). Answers, into OUT:
#   1. does Dawn get a Vulkan adapter for the GPU here (system.txt, doctor.txt)?
#   2. tokens/s of the `mini` preset on webgpu against the native CPU engine (all cores) and the
#      wasm path on the same machine;
#   3. GMT's overhead over SFT on webgpu at tensor, layer and global scope;
#   4. with PRETRAIN_STEPS=N (default 0: skipped), N timed updates of pre-training
#      PRETRAIN_PRESET (default `mini`, the base the full ablations of notebook 06 want) on
#      webgpu, into OUT/<preset>.safetensors.
# summary.md holds the figures (scripts/gpu-summary.mjs); the raw bench JSON sits beside it.
#
#   bash scripts/gpu-check.sh [OUT]        # OUT defaults to $OUT, else build/gpu-check
#   NODE=/path/to/node STEPS=10 BATCH=8 PRESET=mini bash scripts/gpu-check.sh
#
# Needs the built tree (kernel-lib/dist and node_modules with the optional webgpu packages);
# nothing is installed. The native engine is rebuilt for this machine's CPU where a C compiler
# is found, else a carried kernel-lib/native build is used if its ISA runs here. Each step has its own time limit, so one that hangs does not eat the rest.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-build/gpu-check}}
NODE=${NODE:-node}
STEPS=${STEPS:-10}
BATCH=${BATCH:-8}
PRESET=${PRESET:-mini}
LIMIT=${LIMIT:-240}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-0}
PRETRAIN_PRESET=${PRETRAIN_PRESET:-mini}
mkdir -p "$OUT"
CLI=("$NODE" kernel-lib/dist/cli/main.js)
threads=$(nproc); [ "$threads" -gt 8 ] && threads=8

{
  echo "date: $(date -u +%FT%TZ)"; echo "node: $("$NODE" --version)"
  nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
  echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"
} > "$OUT/system.txt" 2>&1

timeout 120 "$NODE" scripts/build-native.mjs >> "$OUT/steps.txt" 2>&1
timeout 120 "${CLI[@]}" doctor > "$OUT/doctor.txt" 2>&1
echo "doctor: exit $?" >> "$OUT/steps.txt"

bench() { # name, env, args...
  local name=$1; shift
  local envs=$1; shift
  env $envs timeout "$LIMIT" "${CLI[@]}" bench --preset "$PRESET" --batch "$BATCH" --steps "$STEPS" --no-figure --json --out "$OUT/$name" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name: exit $?" >> "$OUT/steps.txt"
}
bench webgpu GMT_BACKEND=webgpu --warmup 2 --path fast --methods sft,gmt:tensor,gmt:layer,gmt:global,sft:repeat
bench native "GMT_BACKEND=wasm GMT_ENGINE=native" --warmup 1 --threads "$threads" --methods sft,gmt:tensor
bench wasm "GMT_BACKEND=wasm GMT_ENGINE=wasm" --warmup 1 --threads "$threads" --methods sft,gmt:tensor
if [ "$PRETRAIN_STEPS" -gt 0 ]; then
  start=$(date +%s)
  GMT_BACKEND=webgpu timeout "$LIMIT" "${CLI[@]}" pretrain --preset "$PRETRAIN_PRESET" --steps "$PRETRAIN_STEPS" --eval-every 0 \
    --out "$OUT/$PRETRAIN_PRESET.safetensors" --json > "$OUT/pretrain.json" 2> "$OUT/pretrain.err"
  echo "pretrain: exit $? after $(( $(date +%s) - start )) s" >> "$OUT/steps.txt"
fi

"$NODE" scripts/gpu-summary.mjs "$OUT" > "$OUT/summary.md" 2>> "$OUT/steps.txt"
cat "$OUT/summary.md"
