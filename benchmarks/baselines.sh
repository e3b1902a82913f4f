#!/usr/bin/env bash
# The paper's comparison in miniature: the five tiny baselines (same shards, steps and optimiser), each
# trained for every seed, evaluated on the synthetic held-out suite, then laid side by side.
#   bash benchmarks/baselines.sh                      # SEEDS="0 1" LIMIT=30 ROWS="text_only ... rule_gate"
#   SEEDS="0 1 2" LIMIT=50 THREADS=2 bash benchmarks/baselines.sh
# Needs data/shards/synth (see docs/training.md). Runs resume: a finished train/eval/probe step is skipped.
# Each model is scored twice on the held-out set: the suite's metrics (benchmarks/eval.py), and the probe's
# losses (benchmarks/reading_probe.py on the held-out set as shards: text loss, image reliance, diffusion loss on
# fixed noise), which still separate the rows when none of them reads yet.
# Outputs: outputs/train/baselines/<row>_s<seed>/final, outputs/eval/baselines/<row>_s<seed>/{metrics,probe}.json,
#          outputs/eval/baselines/compare.md and compare_probe.md (python benchmarks/compare.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1"}
LIMIT=${LIMIT:-30}
THREADS=${THREADS:-1}
ROWS=${ROWS:-"text_only image_only shared_lora slide_lora rule_gate"}
HELDOUT=outputs/eval/data/synthetic-heldout
PROBE_SHARDS=data/shards/heldout
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=$THREADS
for seed in $SEEDS; do
  for row in $ROWS; do
    run=${row}_s${seed}
    train_dir=outputs/train/baselines/$run
    if [ ! -f "$train_dir/final/textharmony_config.yaml" ]; then
      echo "== train $run"
      $PY train.py --config "configs/train/tiny_$row.yaml" --resume auto seed="$seed" data.seed="$seed" \
        output_dir="$train_dir" num_threads="$THREADS" log.progress=false log.sample_every=0
    fi
    eval_dir=outputs/eval/baselines/$run
    if [ ! -f "$eval_dir/metrics.json" ]; then
      echo "== eval $run"
      $PY benchmarks/eval.py --model "$train_dir/final" --suite synthetic-heldout --limit "$LIMIT" \
        --out "$eval_dir" --no-progress --quiet
    fi
    if [ ! -f "$PROBE_SHARDS/.done" ]; then    # the held-out set eval.py generated, as shards for the probe
      rm -rf "$PROBE_SHARDS"
      $PY -m textharmony.data.convert mario "$HELDOUT" --out "$PROBE_SHARDS" --no-progress
      touch "$PROBE_SHARDS/.done"
    fi
    if [ ! -f "$eval_dir/probe.json" ]; then
      echo "== probe $run"
      $PY benchmarks/reading_probe.py --model "$train_dir/final" --shards "$PROBE_SHARDS" \
        --tasks recognize,vqa,detect,spot --image-tasks t2i,edit --heldout "$HELDOUT" --limit "$LIMIT" \
        --json "$eval_dir/probe.json" > /dev/null
    fi
  done
done
runs=(); probes=(); names=()
for seed in $SEEDS; do for row in $ROWS; do
  runs+=("outputs/eval/baselines/${row}_s${seed}"); probes+=("outputs/eval/baselines/${row}_s${seed}/probe.json")
  names+=("${row}_s${seed}")
done; done
cmp=(--names "$(IFS=,; echo "${names[*]}")" --group-seeds
     --baseline "$(case " $ROWS " in *" shared_lora "*) echo shared_lora;; *) echo "${ROWS%% *}";; esac)")
$PY benchmarks/compare.py "${runs[@]}" "${cmp[@]}" --out outputs/eval/baselines/compare.md
$PY benchmarks/compare.py "${probes[@]}" "${cmp[@]}" --out outputs/eval/baselines/compare_probe.md
