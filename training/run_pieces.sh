#!/usr/bin/env bash
# Train a recipe in pieces (issue 11): the first piece starts it, every later one resumes from
# the checkpoint in its output directory; stops when the file STOP appears beside this script.
#   training/run_pieces.sh phil/dialanine_10A_v2_train.eff training/dialanine_10A_v2 [pieces]
set -u
recipe=$1; directory=$2; pieces=${3:-100}
here=$(dirname "$0")
for ((i = 0; i < pieces; i++)); do
  [ -e "$here/STOP" ] && break
  if [ -e "$directory/checkpoint.pt" ]; then resume=resume=True; else resume=; fi
  ml_phasing.train "$recipe" $resume --overwrite >> "$directory.pieces.log" 2>&1 || break
done
