#!/usr/bin/env bash
# The GPU path, measured on one GPU in under 8 minutes: quickstart (bf16 autocast), a few fp16 steps
# (gradient scaler), a one-process torchrun run (nccl), DeepLabV3+ training steps at 512x1024 batch 2
# and 8 (step time, images/s, torch.cuda.max_memory_allocated) and inference images/s at 1024x2048.
# Writes OUT/gpu_check.json and OUT/gpu_check.md (mmsegmentation's V100 figures beside); the logs of
# every step stay in OUT/logs. Installs nothing but the project itself (when it is not installed yet).
#
#   bash benchmarks/gpu_check.sh OUT [PYTHON]
#
# On a machine without a GPU it says so and exits 0.
set -uo pipefail

USAGE="usage: bash benchmarks/gpu_check.sh OUT_DIR [PYTHON]"
case "${1:-}" in
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") echo "$USAGE" >&2; exit 2 ;;
    -*) echo "gpu_check: error: unknown option $1. $USAGE" >&2; exit 2 ;;
esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! mkdir -p -- "$1" 2>/dev/null || [ ! -d "$1" ] || [ ! -w "$1" ]; then
    echo "gpu_check: error: OUT_DIR $1 is not a folder this user can write (a file, or a place without" \
         "permission); give a writable folder, e.g. bash benchmarks/gpu_check.sh gpu-results" >&2
    exit 2
fi
OUT="$(cd -- "$1" && pwd)"
if [ $# -ge 2 ]; then
    # An absolute path: the steps run from the repository, where a relative one would name another file.
    PY="$(command -v -- "$2" || true)"
    [ -n "$PY" ] && [[ "$PY" != /* ]] && PY="$(cd -- "$(dirname -- "$PY")" && pwd)/$(basename -- "$PY")"
    if [ -z "$PY" ] || [ ! -x "$PY" ]; then
        echo "gpu_check: error: PYTHON $2 is not an executable file; give the interpreter of the environment" \
             "that has torch, e.g. .venv/bin/python" >&2
        exit 2
    fi
elif [ -x "$REPO/.venv/bin/python" ]; then
    PY="$REPO/.venv/bin/python"
else
    PY="$(command -v python3 || command -v python)"
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check: error: $PY cannot import torch; give the interpreter of the environment that has it," \
         "e.g. bash benchmarks/gpu_check.sh OUT_DIR .venv/bin/python" >&2
    exit 2
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"; then
    echo "gpu_check: found no GPU (torch.cuda.is_available() is False with $PY); nothing measured."
    exit 0
fi
if ! "$PY" -c "import segbench" 2>/dev/null; then
    echo "gpu_check: installing the project into $PY's environment"
    "$PY" -m pip install -q -e "$REPO" || exit 1
fi

cd "$REPO" || exit 1
LOGS="$OUT/logs"
mkdir -p "$LOGS"
export SEGBENCH_CACHE="$OUT/cache"
QUICK="recipes/quickstart.yaml"
STATUS="$OUT/steps.tsv"
: > "$STATUS"

# step NAME TIMEOUT_S COMMAND...: run with a time limit; record status and wall seconds; never stop the script.
step() {
    local name="$1" limit="$2"
    shift 2
    echo "gpu_check: $name (at most ${limit} s)"
    local start end rc
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.out" 2> "$LOGS/$name.err"
    rc=$?
    end=$(date +%s%N)
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( (end - start) / 1000000 ))" >> "$STATUS"
    [ "$rc" -eq 0 ] || echo "gpu_check: $name ended with status $rc (see $LOGS/$name.err)"
}

step quickstart_bf16 120 "$PY" -m segbench.cli run "$QUICK" --runs-dir "$OUT/runs-bf16" \
    trainer.device=cuda trainer.precision=bf16
step fp16_steps 60 "$PY" -m segbench.cli run "$QUICK" --runs-dir "$OUT/runs-fp16" \
    trainer.device=cuda trainer.precision=fp16 trainer.max_iterations=40 trainer.log_every=10
step torchrun_nccl 60 "$PY" -m torch.distributed.run --standalone --nproc-per-node=1 -m segbench.cli run "$QUICK" \
    --runs-dir "$OUT/runs-torchrun" trainer.device=cuda trainer.max_iterations=40 trainer.log_every=10
for batch in 2 8; do
    SEGBENCH_BENCHMARK_RESULTS="$OUT/train_step_b$batch" step "train_step_b$batch" 90 "$PY" \
        benchmarks/bench_train_step.py --device cuda --models deeplabv3plus --no-smp --batch "$batch" \
        --crop 512x1024 --warmup 2 --repetitions 10
done
SEGBENCH_BENCHMARK_RESULTS="$OUT/inference" step inference 90 "$PY" benchmarks/bench_eval.py --device cuda \
    --models deeplabv3plus --no-quickstart --warmup 2 --repetitions 10

"$PY" benchmarks/gpu_check_report.py "$OUT"
