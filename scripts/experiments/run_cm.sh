#!/bin/bash
# usage: run_cm.sh NAME RECIPE [--set k=v ...]; trains on /work/corpus, scores dev + eval (full length)
set -e
NAME=$1; RECIPE=$2; shift 2
C=/work/corpus; S=/work/main/.venv/bin/safespeak; OUT=/work/exp/runs/$NAME
mkdir -p /work/exp/runs
P="--set data.train.protocol=$C/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.train.trn.txt"
start=$(date +%s)
$S train $RECIPE \
  --set data.train.protocol=$(ls $C/*protocols*/*train*) --set data.train.audio_dir=$C/ASVspoof2019_LA_train/flac \
  --set data.dev.protocol=$(ls $C/*protocols*/*dev*) --set data.dev.audio_dir=$C/ASVspoof2019_LA_dev/flac \
  --set train.out_dir=$OUT --set train.progress=true "$@"
mid=$(date +%s)
for s in dev eval; do
  $S score --checkpoint $OUT/model --input $(ls $C/*protocols*/*$s*) --protocol-format asvspoof2019-la \
    --audio-dir $C/ASVspoof2019_LA_$s/flac --output $OUT/scores_$s.csv
done
end=$(date +%s)
echo "TIMES train $((mid-start)) s score $((end-mid)) s"
