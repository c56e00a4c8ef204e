#!/usr/bin/env bash
# Train a recipe in pieces (issue 11): the first piece starts it, every later one resumes from
# the checkpoint in its output directory; after each piece the best model so far is kept as
# snapshots/model_<examples seen>.pt for the learning curve (benchmarks/learning_curve.py).
# Stops when the file STOP appears beside this script.
#   training/run_pieces.sh phil/dialanine_10A_v2_train.eff training/dialanine_10A_v2 [pieces]
set -u
recipe=$1; directory=$2; pieces=${3:-100}
here=$(dirname "$0")
snapshot() {
  [ -e "$directory/model.pt" ] || return 0
  seen=$(python -c "import torch, sys; print(torch.load(sys.argv[1], weights_only=True)['compute']['examples_seen'])" "$directory/model.pt")
  mkdir -p "$directory/snapshots" && cp "$directory/model.pt" "$directory/snapshots/model_${seen}.pt"
}
while pgrep -f "ml_phasing.train $recipe" > /dev/null; do sleep 20; done  # a piece still running
snapshot
for ((i = 0; i < pieces; i++)); do
  [ -e "$here/STOP" ] && break
  if [ -e "$directory/checkpoint.pt" ]; then resume=resume=True; else resume=; fi
  ml_phasing.train "$recipe" $resume --overwrite >> "$directory.pieces.log" 2>&1 || break
  snapshot
done
