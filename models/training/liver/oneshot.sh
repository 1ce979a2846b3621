#!/bin/bash
# One-shot run of the liver models (issue 16): build phantom slices in parallel, train A-QCF-Net and the two
# same-budget baselines at once, evaluate each on the held-out TEST series. Written for the GPU machine
# (16 cores, one GPU: the three trainings share it), checked on CPU at toy scale:
#   P=1 N=2 NTEST=1 SLICES=2 SIZE=64 SPACING=6 BASE=4 MINUTES=0.1 DEVICE=cpu OUT=../out/liver-toy bash oneshot.sh
# Needs python3 with numpy, scipy, torch and ../cache/liver/{source_v3,negative_v1}.npz (carry them; else nibabel and
# ../../../../shared/data/abdomen-ct build it).
# Every output under $OUT (the device tool sets $OUT; default ../out/liver-oneshot): data logs, checkpoints, *-train.json, *-test.json.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-python3}
P=${P:-16}              # data-building processes
N=${N:-256}             # TRAIN series per modality (P chunks)
NTEST=${NTEST:-0}       # TEST series per modality evaluated here (0: none; evaluate on CPU afterwards)
SLICES=${SLICES:-8}     # slices per TRAIN series
SIZE=${SIZE:-256}
SPACING=${SPACING:-1.5}
BASE=${BASE:-16}
BATCH=${BATCH:-16}
MINUTES=${MINUTES:-5}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-../out/liver-oneshot}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
$PY -c "import numpy, scipy, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
$PY -c "import anatomy; anatomy.load_source(); anatomy.load_negative()"  # the slab caches (built from shared data if missing)
CH=$(( (N + P - 1) / P ))
t0=$(date +%s)
for mod in ct mr; do
  off=0; [ $mod = mr ] && off=100000   # MRI seeds far from the CT ones (the streams differ anyway)
  for i in $(seq 0 $((P - 1))); do echo "$mod $((off + i * CH))"; done
done | xargs -P "$P" -n 2 sh -c "$PY train_liver.py build --modality \$0 --split train --n $CH --seed0 \$1 \
  --slices $SLICES --size $SIZE --spacing $SPACING >> $OUT/build.log 2>&1"
echo "data: $(( $(date +%s) - t0 )) s"; tail -n 2 "$OUT/build.log"
CT=$(ls ../cache/liver/ct_train_${CH}_*_${SIZE}_${SPACING}_${SLICES}.npz)
MR=$(ls ../cache/liver/mr_train_${CH}_*_${SIZE}_${SPACING}_${SLICES}.npz)
for m in aqcf unet-ct unet-mr; do
  $PY train_liver.py train --model $m --base "$BASE" --batch "$BATCH" --minutes "$MINUTES" --device "$DEVICE" \
    --threads 4 --log-every 100 --ct $CT --mr $MR --out "$OUT" > "$OUT/$m-train.log" 2>&1 &
done
wait
tail -n 1 "$OUT"/*-train.log
[ "$NTEST" -gt 0 ] || { echo "total: $(( $(date +%s) - t0 )) s (no evaluation)"; exit 0; }
for mod in ct mr; do
  for m in aqcf unet-$mod; do
    $PY evaluate_liver.py --ckpt "$OUT/$m.pt" --model $m --modality $mod --n "$NTEST" --base "$BASE" --size "$SIZE" \
      --spacing "$SPACING" --device "$DEVICE" --out "$OUT/$m-$mod-test.json" > "$OUT/$m-$mod-test.log" 2>&1 &
  done
done
wait
for f in "$OUT"/*-test.json; do
  $PY -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(sys.argv[1], 'liver', s['liver_dice_mean'], \
'tumour case', s['tumour_dice_per_case_mean'], 'global', s['tumour_dice_global'], \
{k: v['f1'] for k, v in s['detection'].items()})" "$f"
done
echo "total: $(( $(date +%s) - t0 )) s"
