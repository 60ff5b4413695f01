#!/usr/bin/env bash
# bench_train_gpu.sh BUILD_DIR OUT_JSONL -- training throughput on the GPU (--device cuda):
# tokens/s of whole training steps (forward, backward, clipping, AdamW) for every mixer
# at batch 64, 2 layers, lengths 256 and 1024 (the issue's shapes: Mamba d 64; attention
# d 128 x 8 heads as the papers' MHA), with the CUDA graph and without; then 4 trainings
# at once on the one GPU (one process each). The figure of a run is its last log period
# (steps 400-600: warm, graph captured). One JSON line per measurement into OUT_JSONL.
set -euo pipefail
build=$1
out=$2
train="$build/tasks/mambabench-train"
steps=${MB_TRAIN_BENCH_STEPS:-600}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
commit=${MB_COMMIT:-$(git -C "$(dirname "$0")" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" | tr -d '"'; }

dims_of() { # the model flags of a mixer
  case $1 in
    mha-*) echo "--dim 128 --heads 8" ;;
    *) echo "--dim 64" ;;
  esac
}

# one NAME MIXER LEN GRAPHS: train $steps steps, print and record the last period's tokens/s
one() {
  local name=$1 mixer=$2 len=$3 graphs=$4
  local flags=(--device cuda --task induction --mixer "$mixer" --layers 2 --batch 64 --len "$len"
               --steps "$steps" --log-every $((steps / 3)) --eval-n 32 --no-recurrent --lr 1e-3
               --curve "$tmp/$name.curve")
  [ "$graphs" = 1 ] || flags+=(--no-graphs)
  # shellcheck disable=SC2046
  if ! "$train" "${flags[@]}" $(dims_of "$mixer") > "$tmp/$name.log" 2>&1; then
    echo "FAIL: $name"; cat "$tmp/$name.log"; return 1
  fi
  local line tok device
  line=$(tail -1 "$tmp/$name.curve")
  tok=$(echo "$line" | field tokens_per_s)
  device=$(echo "$line" | field device)
  printf "%-10s len %5d graphs %d: %10.0f tokens/s  %7.1f steps/s\n" "$mixer" "$len" "$graphs" "$tok" \
    "$(awk -v t="$tok" -v l="$len" 'BEGIN { print t / (64 * l) }')"
  echo "{\"kind\": \"train_throughput\", \"model\": \"$mixer\", \"len\": $len, \"batch\": 64, \"layers\": 2, $(dims_json "$mixer"), \"graphs\": $graphs, \"concurrent\": 1, \"tokens_per_s\": $tok, \"steps\": $steps, \"device\": \"$device\", \"commit\": \"$commit\"}" >> "$out"
}

dims_json() {
  case $1 in
    mha-*) echo "\"dim\": 128, \"heads\": 8" ;;
    *) echo "\"dim\": 64, \"heads\": 0" ;;
  esac
}

# concurrent N MIXER LEN: N trainings at once; the sum of their last periods' tokens/s
concurrent() {
  local n=$1 mixer=$2 len=$3 pids=() total=0
  for i in $(seq 1 "$n"); do
    # shellcheck disable=SC2046
    "$train" --device cuda --task induction --mixer "$mixer" --layers 2 --batch 64 --len "$len" --steps "$steps" \
      --log-every $((steps / 3)) --eval-n 32 --no-recurrent --seed "$i" --curve "$tmp/conc$i.curve" \
      $(dims_of "$mixer") > "$tmp/conc$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "FAIL: a concurrent run"; cat "$tmp"/conc*.log; return 1; }; done
  for i in $(seq 1 "$n"); do
    total=$(awk -v a="$total" -v b="$(tail -1 "$tmp/conc$i.curve" | field tokens_per_s)" 'BEGIN { printf "%.0f", a + b }')
  done
  local device
  device=$(tail -1 "$tmp/conc1.curve" | field device)
  printf "%d x %-6s len %5d at once: %10.0f tokens/s in all\n" "$n" "$mixer" "$len" "$total"
  echo "{\"kind\": \"train_throughput\", \"model\": \"$mixer\", \"len\": $len, \"batch\": 64, \"layers\": 2, $(dims_json "$mixer"), \"graphs\": 1, \"concurrent\": $n, \"tokens_per_s\": $total, \"steps\": $steps, \"device\": \"$device\", \"commit\": \"$commit\"}" >> "$out"
}

# MB_TRAIN_BENCH_MIXERS: a subset to measure (default: every mixer, then Mamba without the
# graph and 4 Mamba trainings at once); rows are appended to OUT_JSONL, each with its commit
mixers=${MB_TRAIN_BENCH_MIXERS:-mamba lti mamba2 mha-abs mha-rope mha-nope mha-hardalibi}
for len in 256 1024; do
  for mixer in $mixers; do
    one "$mixer-$len" "$mixer" "$len" 1
  done
  [ -n "${MB_TRAIN_BENCH_MIXERS:-}" ] || one "mamba-$len-eager" mamba "$len" 0
done
[ -n "${MB_TRAIN_BENCH_MIXERS:-}" ] || concurrent 4 mamba 256
