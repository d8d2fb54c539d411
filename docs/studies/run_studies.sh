#!/bin/bash
# How docs/studies/ was made: the report's three studies on the real captchas, at EPOCHS epochs
# (EPOCHS=10 for docs/studies/e10; the 60-epoch runs: docs/studies.md), one training at a time,
# then tables and overlays.
# The Adam / lr 1e-3 / relu / softmax-heads baseline is the same config in all three studies:
# it is trained once (optimizer study) and copied into the other two, with its overrides.yaml
# rewritten to the equivalent override of that study so the plots label it like its neighbours.
set -e
cd "$(dirname "$0")/../.."
E=${EPOCHS:-10}
PY=${PY:-.venv/bin/python}
D=${DATA:-../shared/data/captcha_v2}   # the real captchas (the experiments read data.dir, data/captcha_v2 by default)
S=outputs/studies/e$E   # one folder per epoch budget
study() {  # sweep dir name, experiment, overrides...
  local dir=$1 exp=$2; shift 2
  [ -f $S/$dir/multirun.yaml ] || nice -n 10 $PY train.py -m experiment=$exp data.dir=$D epochs=$E "$@" \
    hydra.sweep.dir=$S/$dir '~callbacks.progress_bar'
}
if [ "$1" != "--docs-only" ]; then
  # Most informative first, in case the time runs out: the two lrs around the default, then the
  # activations, then the two smallest lrs.
  study report_optimizers report_optimizers
  study report_lr report_lr lr=1e-4,1e-2
  study report_activations report_activations activation=sigmoid,tanh,elu,gelu model.head_activation=softmax
  study report_activations.heads report_activations activation=relu model.head_activation=sigmoid
  study report_lr.low report_lr lr=1e-6,1e-5
fi

P="~callbacks.progress_bar=null"  # as Hydra records the override in its jobs
base=$(ls -d $S/report_optimizers/0_*adam*)
copy_job() {  # source job, target job dir, overrides that name it in the target study
  local src=$1 dst=$2; shift 2
  [ -d "$src" ] || return 0
  rm -rf "$dst"; cp -r "$src" "$dst"
  printf -- '- %s\n' "$@" > "$dst/.hydra/overrides.yaml"
  # The source's data.dir too, if it recorded one (runs before the experiments stopped naming it did not).
  grep -e '^- data.dir=' "$src/.hydra/overrides.yaml" >> "$dst/.hydra/overrides.yaml" || true
}
copy_job "$base" $S/report_lr/4_baseline-adam-lr0.001 lr=0.001 experiment=report_lr epochs=$E "$P"
n=5
for job in $S/report_lr.low/*/; do  # the two smallest lrs, numbered after the others (5_, 6_)
  [ -f "$job/metrics.json" ] || continue
  name=$(basename "$job"); rm -rf "$S/report_lr/${n}_${name#*_}"; cp -r "$job" "$S/report_lr/${n}_${name#*_}"; n=$((n + 1))
done
copy_job "$base" $S/report_activations/4_baseline-relu-softmax \
  activation=relu model.head_activation=softmax experiment=report_activations epochs=$E "$P"
heads=$(ls -d $S/report_activations.heads/0_* 2>/dev/null || true)
copy_job "$heads" $S/report_activations/5_relu-sigmoid_heads \
  activation=relu model.head_activation=sigmoid experiment=report_activations epochs=$E "$P"
for s in report_optimizers report_lr report_activations; do
  [ -d $S/$s ] || continue
  $PY -m captcha_lab.cli.replot $S/$s
  mkdir -p docs/studies/e$E/$s
  cp $S/$s/summary.md $S/$s/curves.md $S/$s/val_*.png docs/studies/e$E/$s/
done
