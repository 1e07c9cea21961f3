#!/usr/bin/env bash
# The prepared GPU measurements (issue: "beyond one machine"), one command on a machine with one
# CUDA GPU, about 9 minutes in all.  Run from the repository root:
#
#     OUT=/some/folder bash benchmarks/gpu_session.sh
#
# Where Pyro is not installed, put its wheels in .whl/ first (pyro-ppl and pyro-api; README's
# "GPU" section).  Steps, each with its own time limit so that one failure leaves the rest:
#   1. the CUDA tests (tests/test_cuda.py, tests/test_accel.py);
#   2. benchmarks/gpu.py: sequences/s of the paper and cpu presets, fp32 / bf16 / compile;
#   3. side by side on the same GPU (so their clocks are upper bounds): time to identification
#      of the cpu preset and of the paper preset (Appendix A sizes, a shortened schedule), with
#      the fastest variant of step 2; and the Fig. 6 runner (vim2_compositions, seeds 0-2) with
#      M = 4, the control of BENCHMARKS.md's Fig. 6 diagnosis (M = 5 ran on 2026-11-27);
#   4. benchmarks/decode_window.py on the GPU (object slots decoded in a 16-pixel window).
# Results land in $OUT: gpu.json, tti_cpu.tgz, tti_paper.tgz, vim2.tgz, window.json, logs.tgz.
set -u
OUT=${OUT:?set OUT to the results folder}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
LOGS=/tmp/gpu_logs
mkdir -p "$LOGS"
if ! python3 -c "import pyro" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

nvidia-smi -L; python3 -c "import torch, pyro; print(torch.__version__, pyro.__version__)"
stamp "1. CUDA tests"
timeout 90 python3 -m pytest -q -x -p no:cacheprovider tests/test_cuda.py tests/test_accel.py \
    > "$LOGS/pytest.txt" 2>&1; tail -n 5 "$LOGS/pytest.txt"

stamp "2. throughput"
timeout 200 python3 benchmarks/gpu.py --device cuda --presets paper cpu --repeats 10 \
    --out "$OUT/gpu.json" 2>&1 | tee "$LOGS/gpu.txt"

# the fastest variant whose first loss agrees with fp32's within 1%
read -r PREC COMP < <(python3 - "$OUT/gpu.json" <<'EOF'
import json, sys
try:
    pts = [p for p in json.load(open(sys.argv[1]))["points"]
           if p.get("preset") == "paper" and "error" not in p
           and p.get("loss_rel_diff_vs_fp32", 1) < 0.01]
    best = max(pts, key=lambda p: p["sequences_per_s"])
    print(best["precision"], "--compile" if best["compile"] else "")
except Exception:
    print("fp32")
EOF
)
stamp "3. trainings side by side (paper preset: --precision $PREC ${COMP:-})"
PAPER_SHORT="pretrain_steps=1500 warmup_steps=300 pretrain_lr=1e-3 lr=1e-3 seq_len_max=10 \
seq_len_every=500 z_kl_anneal_steps=1000"
LEFT=$(( 420 - ($(date +%s) - T0) ))
TRAIN=$(( LEFT - 60 ))
timeout $LEFT python3 benchmarks/time_to_identification.py --device cuda --preset cpu \
    --minutes $(python3 -c "print(round($TRAIN / 60 - 0.7, 2))") --eval-every-minutes 0.5 \
    --out /tmp/tti_cpu > "$LOGS/tti_cpu.txt" 2>&1 &
timeout $LEFT python3 benchmarks/time_to_identification.py --device cuda --preset paper \
    --precision "$PREC" ${COMP:-} --set $PAPER_SHORT \
    --minutes $(python3 -c "print(round($TRAIN / 60 - 0.7, 2))") --eval-every-minutes 0.5 \
    --out /tmp/tti_paper > "$LOGS/tti_paper.txt" 2>&1 &
for s in 0 1 2; do
    timeout $LEFT python3 -m pyro_vim.run vim2_compositions --seeds $s --out /tmp/v2_s$s \
        --threads 2 --set num_modules=4 > "$LOGS/vim2_s$s.txt" 2>&1 &
done
wait
stamp "4. decode_window on the GPU"
timeout 120 python3 benchmarks/decode_window.py --device cuda --preset paper --repeats 5 \
    --out "$OUT/window.json" 2>&1 | tee "$LOGS/window.txt"
stamp "done"
for f in "$LOGS"/tti_*.txt "$LOGS"/vim2_s*.txt; do echo "== $f"; tail -n 8 "$f"; done
tar czf "$OUT/tti_cpu.tgz" -C /tmp tti_cpu 2>/dev/null
tar czf "$OUT/tti_paper.tgz" -C /tmp tti_paper 2>/dev/null
tar czf "$OUT/vim2.tgz" --exclude=tb -C /tmp v2_s0 v2_s1 v2_s2 2>/dev/null
tar czf "$OUT/logs.tgz" -C /tmp gpu_logs
ls -la "$OUT"
