#!/usr/bin/env bash
# The GPU measurements of docs/performance.md, for a session that has a GPU device. Each stage
# fits one device call (under 10 minutes) and writes its log, and the paper study's store, to
# OUT.
#
#   bench/gpu_session.sh STAGE [OUT]      OUT: default $OUT (the device's folder), else ./gpu-out
#
# Stages, in the order to spend a 30-minute device budget (a fresh machine takes 1-2 minutes):
#   check    GPU, torch, and the GPU tests (tests/test_cuda.py: exact profile in IEEE float32,
#            CPU agreement, divergence, workers sharing the card)                      ~1 min
#   paper    tasks/paper.toml, 4 workers, stopped at LIMIT s (default 560); the store is
#            $OUT/paper.db: bring it back (carry it, set RESUME=path) and run again to resume;
#            bench/study_progress.py prints the share of the work done and the projection  9.5 min
#   kernels  overhead, profile cost and training paths against plain PyTorch             ~7 min
#   runs     8 runs one after another against 4 and 8 worker processes                ~5 min
#
# The device's python3 has torch and every dependency; nothing is installed. Overrides for a dry
# run on a CPU machine: DEVICE=cpu PAPER_SWEEP=tasks/smoke.toml LIMIT=20 WORKERS=2.
set -uo pipefail
stage=${1:?usage: bench/gpu_session.sh check|paper|kernels|runs [OUT]}
out=${2:-${OUT:-gpu-out}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
log="$out/$stage.log"

case $stage in
check)
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
      $py -c 'import torch, rnnbench; print("torch", torch.__version__, "rnnbench", rnnbench.__version__, "cuda", torch.cuda.is_available())'
      timeout 420 $py -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_numerics.py
    } 2>&1 | tee "$log"
    ;;
paper)
    sweep=${PAPER_SWEEP:-tasks/paper.toml}
    store="$out/paper.db"
    if [[ -n ${RESUME:-} ]]; then cp "$RESUME" "$store"; fi
    SECONDS=0
    timeout --signal=TERM "${LIMIT:-560}" $py -m rnnbench.cli run "$sweep" --store "$store" \
        --device "$device" --workers "${WORKERS:-4}" --no-progress 2>&1 | tee "$log"
    elapsed=$((SECONDS + ${ELAPSED_BEFORE:-0}))
    $py bench/study_progress.py "$sweep" "$store" --elapsed "$elapsed" 2>&1 | tee -a "$log"
    echo "next call: RESUME=<this store> ELAPSED_BEFORE=$elapsed bench/gpu_session.sh paper" | tee -a "$log"
    ;;
kernels)
    { timeout 200 $py bench/overhead.py --device "$device" --task copy --seq-len 1000 \
          --hidden 128 --batch 128 --steps 200 --repeats 3
      timeout 120 $py bench/profile_cost.py --device "$device" --archs rnn,rnn_relu,lstm,gru
      timeout 120 $py bench/train_paths.py --device "$device" --repeats 3 \
          --shapes 100:128:128,1000:128:128,1000:128:190
    } 2>&1 | tee "$log"
    ;;
runs)
    timeout 560 $py bench/parallel.py --device "$device" --sweep tasks/gpu_throughput.toml \
        --repeats 1 2>&1 | tee "$log"
    ;;
*)
    echo "bench/gpu_session.sh: STAGE must be one of check, paper, kernels, runs; got '$stage'" >&2
    exit 2
    ;;
esac
