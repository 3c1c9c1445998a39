#!/usr/bin/env bash
# Every CUDA measurement in one go (< 8 minutes on one GPU); prints ONE JSON object on stdout.
#
#   bash bench/gpu_suite.sh            # on a machine with a GPU, from the repository root
#
# Parts (each a benchmark that compares against a baseline measured in the same run):
#   fcn8s_bf16_train   bench/train_throughput.py: FCN-8s at 500x500, batch 8, autocast (bf16 on CUDA): our
#                      train() vs a bare loop, images/s and the fraction of the bf16 peak (1.09 training TFLOP
#                      per image; PEAK_TFLOPS defaults to the H100/H200 dense bf16 figure, 989)
#   alexnet_lmdb       bench/train_throughput.py: FCN-AlexNet fed by the real LMDB loader (0, 4, 8 workers) vs
#                      a bare loop on in-memory tensors
#   compiled_vs_eager  bench/network_overhead.py --amp: the compiled Caffe graph vs hand-written torch modules
#   infer_latency      bench/infer_latency.py --device cuda: server time for one 512x512 image vs a bare forward
#   ddp_2gpu           only when 2+ GPUs are visible: `digits-seg train --now --device gpus:2` (NCCL DDP) on a
#                      SynthCity dataset, 1 epoch, images/s from the job vs the same on one GPU
# A part that fails is reported as {"error": "..."} and the suite goes on; progress goes to stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-$PWD}"
PY=${PYTHON:-python3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$GPUS" = "0" ]; then
  echo '{"benchmark": "gpu_suite", "error": "no CUDA GPU visible (torch.cuda.is_available() is False)"}'
  exit 1
fi

run() {  # run NAME TIMEOUT_S COMMAND...: the command's last JSON object goes to $OUT/NAME.json
  local name=$1 limit=$2; shift 2
  echo "[gpu_suite] $name ..." >&2
  local start=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; then
    $PY - "$OUT/$name.out" >"$OUT/$name.json" <<'PYEOF' || echo "{\"error\": \"no JSON in output\"}" >"$OUT/$name.json"
import json, sys
text = open(sys.argv[1]).read()
start = text.rfind("\n{") + 1 if text.rfind("\n{") >= 0 else text.find("{")
print(json.dumps(json.loads(text[start:])))
PYEOF
  else
    local rc=$?
    $PY -c "import json,sys; print(json.dumps({'error': 'exit %s after %ds' % (sys.argv[1], int(sys.argv[2])), 'stderr_tail': open(sys.argv[3]).read()[-800:]}))" \
      "$rc" "$((SECONDS - start))" "$OUT/$name.err" >"$OUT/$name.json"
  fi
  echo "[gpu_suite] $name done in $((SECONDS - start)) s" >&2
}

PEAK=${PEAK_TFLOPS:-989}
run fcn8s_bf16_train 150 $PY bench/train_throughput.py --device cuda --network fcn-8s --size 500 --batch 8 \
    --images 96 --epochs 2 --repeats 2 --loader-workers 4 --tflop-per-image 1.09 --peak-tflops "$PEAK"
run alexnet_lmdb 120 $PY bench/train_throughput.py --device cuda --network fcn-alexnet --size 500 --batch 32 \
    --images 256 --epochs 2 --repeats 2 --loader-workers 0,4,8
run compiled_vs_eager 90 $PY bench/network_overhead.py --device cuda --amp --size 375x500 --batch 4 --reps 20
run infer_latency 90 $PY bench/infer_latency.py --device cuda --network fcn-alexnet --size 512 --runs 20
if [ "$GPUS" -ge 2 ]; then
  run ddp_2gpu 150 $PY bench/ddp_smoke.py --network fcn-alexnet --size 256 --images 256 --batch 16
fi

$PY - "$OUT" "$GPUS" <<'PYEOF'
import json, os, sys
import torch
out, gpus = sys.argv[1], int(sys.argv[2])
doc = {"benchmark": "gpu_suite", "gpus": gpus, "gpu": torch.cuda.get_device_name(0),
       "torch": torch.__version__, "cuda": torch.version.cuda}
for name in ("fcn8s_bf16_train", "alexnet_lmdb", "compiled_vs_eager", "infer_latency", "ddp_2gpu"):
    path = os.path.join(out, name + ".json")
    if os.path.exists(path):
        doc[name] = json.load(open(path))
print(json.dumps(doc, indent=2))
PYEOF
