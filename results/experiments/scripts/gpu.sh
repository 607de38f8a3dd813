#!/usr/bin/env bash
set -u
export HQA_DATA_ROOT=$PWD/exp/data
ls $HQA_DATA_ROOT >/dev/null || { echo "no data at $HQA_DATA_ROOT"; ls; ls shared; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1; export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
python -c "import torch; print(torch.__version__, torch.cuda.is_available())"
timeout 150 python3 exp/gpu_timing.py 512 250 $HQA_DATA_ROOT 2>&1 | grep -v -i warn | tee $OUT/timing.txt
timeout 400 python3 exp/hparam.py $OUT/exp cuda \
 "hqa:4e-4:64:1000/2000/4000/4000/4000" \
 "hqa:1e-3:64:1000/2000/4000/4000/4000" \
 "hqa:1e-3:64:600/1200/2500/2500/2500" \
 "hqa:2e-3:64:600/1200/2500/2500/2500" \
 "hqa:1e-3:128:600/1200/2500/2500/2500" \
 "hqa:1e-3:64:1000/2000/4000/4000/4000:temp_start=0.4,temp_end=0.0001" \
 "hqa:1e-3:64:1000/2000/8000/8000/8000" \
 "hams-gs-mse:1e-3:64:1000/2000/4000/4000/4000:vq_code=sample" \
 "hams-gs-mse:1e-3:64:1000/2000/4000/4000/4000" \
 "hams-gs-mse:1e-3:64:1000/2000/4000/4000/4000:vq_code=sample,vq_weight=0.001" \
 "hams:1e-3:64:1000/2000/4000/4000/4000" \
 "hams-mse:1e-3:64:1000/2000/4000/4000/4000" \
 "hams-gs:1e-3:64:1000/2000/4000/4000/4000" \
 "vqvae:1e-3:64:2000" \
 "vqvae:1e-3:64:2000:codebook_loss=vq" \
 "vqvae:1e-3:64:4000" 2>&1 | grep -v -i "warn" | tee $OUT/exp.txt
