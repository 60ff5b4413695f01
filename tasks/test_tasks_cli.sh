#!/usr/bin/env bash
# test_tasks_cli.sh TRAIN_BINARY -- the training command's contract:
#   every bad flag value is refused with exit code 2 and a message naming it
#   (never a crash); train -> checkpoint -> resume gives exactly the run that
#   was never interrupted; a truncated or contradicted checkpoint is refused;
#   every result line carries accuracy, steps, wall time, seed and commit.
set -u
train=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
small=(--task selective-copy --len 24 --n 3 --dim 8 --layers 1 --batch 4 --eval-n 8 --log-every 5)

expect_error() { # expect_error SUBSTRING ARGS...: exit code 2 and the substring in the message
  local want=$1; shift
  local out rc
  out=$("$train" --steps 0 --eval-n 1 "$@" 2>&1); rc=$? # quick, should a bad value be accepted
  if [ "$rc" -ne 2 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL: $* -> exit $rc, wanted 2 and '$want':"; echo "$out" | tail -3; fail=1
  else
    echo "ok   refused $* -> $(tail -1 <<<"$out")"
  fi
}

expect_error "unknown task 'nope'" --task nope
expect_error "unknown mixer 'nope'" --mixer nope
expect_error "--dim needs an integer >= 1, got '0'" --dim 0
expect_error "--layers needs an integer >= 1, got '-1'" --layers -1
expect_error "--len needs an integer >= 1, got 'abc'" --len abc
expect_error "--len needs an integer >= 1, got '64x'" --len 64x
expect_error "--batch needs an integer >= 1" --batch 0
expect_error "--steps needs an integer >= 0" --steps -5
expect_error "--lr needs a number > 0" --lr 0
expect_error "--lr needs a number > 0" --lr nan
expect_error "--wd needs a number >= 0" --wd -1
expect_error "--dim 99999999 is too large" --dim 99999999
expect_error "length 20 cannot hold 16 tokens" --task selective-copy --len 20 --n 16
expect_error "--eval-lens: task selective-copy: length 20" --task selective-copy --len 64 --n 16 --eval-lens 64,20
expect_error "--eval-lens needs an integer >= 1, got ''" --eval-lens 64,,128
expect_error "--eval-lens needs an integer >= 1, got ''" --eval-lens 64,
expect_error "--eval-lens 100000000 is over 2^24" --eval-lens 100000000
expect_error "length 3 cannot hold" --task mqar --len 3
expect_error "induction: needs a length of at least 4" --task induction --len 3
expect_error "unknown flag --bogus" --bogus 1
expect_error "--steps needs a value" --steps
expect_error "unexpected argument 'x'" x
expect_error "attention heads must divide dim" --mixer mha-abs --dim 30 --heads 4
expect_error "d_state must be in 1..256" --d-state 300
expect_error "unknown --schedule 'linear'" --schedule linear
expect_error "cannot open" --resume "$tmp/none.ckpt"
expect_error "unknown --device 'gpu'" --device gpu
expect_error "--time-limit needs a number >= 0" --time-limit -1

# --device cuda: trains where there is a GPU; elsewhere refused with exit 2 and the reason
out=$("$train" "${small[@]}" --device cuda --steps 3 --no-recurrent 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q '"device": "' <<<"$out" && ! grep -q '"device": "cpu"' <<<"$out"; then
  echo "ok   --device cuda trained on $(grep -o '"device": "[^"]*"' <<<"$out" | head -1)"
elif [ "$rc" -eq 2 ] && grep -q -- "--device cuda: cuda:" <<<"$out"; then
  echo "ok   --device cuda refused here: $(tail -1 <<<"$out")"
else
  echo "FAIL: --device cuda -> exit $rc:"; echo "$out" | tail -3; fail=1
fi

# train 12 steps and save, resume to 20; against 20 steps at once
run() { "$train" "${small[@]}" "$@" > "$tmp/log" 2>&1 || { echo "FAIL: $*"; cat "$tmp/log"; fail=1; }; }
run --steps 12 --save "$tmp/a.ckpt"
run --resume "$tmp/a.ckpt" --steps 20 --save "$tmp/a.ckpt" --out "$tmp/resumed.jsonl" --no-recurrent
run --steps 20 --out "$tmp/straight.jsonl" --no-recurrent
grep -q "eta" "$tmp/log" && grep -q "tok/s" "$tmp/log" || { echo "FAIL: no progress line"; fail=1; }
field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" "$2" | head -1; }
for f in accuracy loss steps; do
  a=$(field $f "$tmp/resumed.jsonl"); b=$(field $f "$tmp/straight.jsonl")
  if [ -z "$a" ] || [ "$a" != "$b" ]; then echo "FAIL: resumed $f '$a' != uninterrupted '$b'"; fail=1
  else echo "ok   resume: $f $a equals the uninterrupted run's"; fi
done
for f in accuracy loss steps train_wall_s seed commit train_tokens_per_s len model task; do
  grep -q "\"$f\": " "$tmp/straight.jsonl" || { echo "FAIL: result line has no $f"; fail=1; }
done

# every task with every mixer: a few steps and an evaluation at another length run clean
for task in copy selective-copy induction mqar string-copy; do
  for mixer in mamba lti mamba2 mha-abs mha-rope; do
    if "$train" --task $task --mixer $mixer --len 32 --n 4 --dim 16 --layers 1 --batch 2 --steps 3 \
         --eval-n 4 --eval-lens 48 --d-state 8 --out "$tmp/smoke.jsonl" > "$tmp/log" 2>&1; then
      :
    else
      echo "FAIL: $task with $mixer:"; tail -3 "$tmp/log"; fail=1
    fi
  done
done
n=$(grep -c . "$tmp/smoke.jsonl")
[ "$n" -eq 80 ] && echo "ok   25 task x mixer smoke runs, $n result lines" ||
  { echo "FAIL: $n smoke result lines, wanted 80 (25 runs x 2 lengths, the 3 SSMs in 2 modes)"; fail=1; }

# checkpoints: contradicted, truncated, foreign
expect_error "--mixer contradicts the checkpoint" --resume "$tmp/a.ckpt" --mixer lti
expect_error "--steps 5 is below the checkpoint's 20 steps" --resume "$tmp/a.ckpt" --steps 5
head -c 300 "$tmp/a.ckpt" > "$tmp/cut.ckpt"
expect_error "truncated" --resume "$tmp/cut.ckpt"
echo "not a checkpoint" > "$tmp/foreign.ckpt"
expect_error "bad magic" --resume "$tmp/foreign.ckpt"

[ $fail -eq 0 ] && echo "test_tasks_cli: all passed"
exit $fail
