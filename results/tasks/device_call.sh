#!/usr/bin/env bash
# device_call.sh STAGE SECONDS [tests] -- one device call of the GPU task trainings
# (results/tasks/run_gpu.sh STAGE), ending within SECONDS of its start:
#   - builds the CUDA tree into build-tasks/ unless a warm machine kept it from the last call
#     (the trainer alone without `tests`);
#   - with `tests`, runs the GPU tests the trainings rely on (test_cuda_attention,
#     test_tasks_cuda) beside them, log in $OUT/ctest.log;
#   - starts an MPS daemon where the machine has one, so that the processes sharing a GPU run
#     at once rather than in time slices (without it they still run, sliced);
#   - seeds build-tasks/h100 with the committed results/tasks/h100 on a fresh machine and
#     writes every result line, curve and log there, checkpoints in build-tasks/ckpt (paths
#     that .gitignore ignores outlive the call on a warm machine; .devwork/, ignored only by
#     this checkout's .git/info/exclude, does not); checkpoints carried in
#     .devwork/carry/GROUP/ join build-tasks/ckpt/GROUP/ unless that holds a newer one;
#   - packs build-tasks/h100 into $OUT/tasks.tgz at the end, or at the deadline if runs are late,
#     and the checkpoints under 2 MB (the SSM runs) into $OUT/ckpt.tgz.part0..2.
# The training budget of each run is what is left of SECONDS after the build, less a margin
# for the evaluations (MB_TASKS_MARGIN_S, 150). MB_COMMIT names the commit (the device copy's git is stale).
set -uo pipefail
stage=$1
seconds=$2
tests=${3:-}
t0=$(date +%s)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bt=build-tasks
out=$bt/h100
ckpt=$bt/ckpt
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"

if [ ! -x $bt/tasks/mambabench-train ]; then
  echo "build: $bt"
  targets=(--target mambabench-train)
  [ "$tests" = tests ] && targets=()
  cmake -S . -B $bt -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a > "$OUT/build.log" 2>&1 &&
    cmake --build $bt -j"$(nproc)" "${targets[@]}" >> "$OUT/build.log" 2>&1 ||
    { tail -30 "$OUT/build.log"; exit 1; }
fi
echo "built at +$(($(date +%s) - t0)) s"
if [ ! -d $out ]; then mkdir -p $out && cp -r results/tasks/h100/. $out/; fi
mkdir -p $ckpt
for d in .devwork/carry/*/; do
  [ -d "$d" ] || continue
  g=$(basename "$d")
  mkdir -p $ckpt/"$g"
  cp -n "$d"*.ckpt $ckpt/"$g"/ 2>/dev/null
done

export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
if command -v nvidia-cuda-mps-control > /dev/null; then
  if ! echo get_server_list | nvidia-cuda-mps-control > /dev/null 2>&1; then
    nvidia-cuda-mps-control -d && echo "MPS daemon started" || echo "MPS daemon failed to start"
  else
    echo "MPS daemon running"
  fi
else
  echo "no MPS on this machine: runs sharing a GPU are time-sliced"
fi
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,memory.used --format=csv > "$OUT/gpus.csv" 2>&1

test_pid=
if [ "$tests" = tests ]; then
  (ctest --test-dir $bt -R "test_cuda_attention|test_tasks_cuda" --output-on-failure > "$OUT/ctest.log" 2>&1
   echo "ctest rc $?" >> "$OUT/ctest.log") &
  test_pid=$!
fi

left=$((seconds - ($(date +%s) - t0)))
export MB_TASKS_BUDGET_S=$((left - ${MB_TASKS_MARGIN_S:-150})) MB_TASKS_OUT=$root/$out MB_TASKS_CKPT=$root/$ckpt
echo "stage $stage: $MB_TASKS_BUDGET_S s of training per run, $left s left"
results/tasks/run_gpu.sh $bt "$stage" > "$OUT/stage.log" 2>&1 &
stage_pid=$!
while kill -0 $stage_pid 2> /dev/null && [ $(($(date +%s) - t0)) -lt $((seconds - 15)) ]; do sleep 5; done
if kill -0 $stage_pid 2> /dev/null; then echo "deadline: packing while runs are still going"; fi
[ -n "$test_pid" ] && wait $test_pid
tail -50 "$OUT/stage.log"
[ -f "$OUT/ctest.log" ] && tail -5 "$OUT/ctest.log"
nvidia-smi --query-gpu=index,clocks.sm,memory.used,utilization.gpu --format=csv >> "$OUT/gpus.csv" 2>&1
tar czf "$OUT/tasks.tgz" -C $bt h100
# the small checkpoints (the SSMs at d 64: ~0.8 MB; attention at d 128 is ~4.8 MB) come back
# too, for a later session to carry and resume: at most 45 MB in 3 parts (the device returns
# 8 files of 16 MB at most); unpack here with
#   cat ckpt.tgz.part* | tar xzf - -C .devwork/carry
small=$(cd $ckpt && find . -name '*.ckpt' -size -2048k | sort)
if [ -n "$small" ]; then
  (cd $ckpt && tar czf - $small) | split -b 15M -d -a 1 - "$OUT/ckpt.tgz.part"
  ls "$OUT"/ckpt.tgz.part* | tail -n +4 | xargs -r rm -f # over 3 parts: the rest stays behind
  echo "checkpoints back: $(echo "$small" | wc -l) files, $(cat "$OUT"/ckpt.tgz.part* | wc -c) bytes packed"
fi
echo "packed at +$(($(date +%s) - t0)) s"
