#!/usr/bin/env bash
# The one command of the GPU benchmark machine (bench/gpu/run.sh, copied into .gpu/ by
# `npm run gpu:bundle`). From the project root, with `.gpu` carried:
#     bash .gpu/run.sh              full run, ≤ 8 minutes (run it with timeout_s 590)
#     bash .gpu/run.sh --short      tiny shapes, few pairs (the rehearsal: npm run gpu:rehearse)
# Needs only what the bare machine has: bash, coreutils, Python 3 with torch (transformers when
# present). Node, dawn.node and the Vulkan/EGL loader come from the bundle. Writes everything to
# $OUT (default .gpu-out/ beside .gpu): log, gpu-<date>.json, gpu-<date>.md, the raw step files.
#
# Every step has a time budget, printed before it runs and enforced with `timeout`; a step that
# runs over is reported and the next one starts; a model step that no longer fits in what is left
# of the whole budget is skipped and says so.
set -uo pipefail

B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHORT=${CONCORD_GPU_SHORT:-0}
for a in "$@"; do case "$a" in --short) SHORT=1 ;; *) echo "run.sh: unknown argument $a" >&2; exit 2 ;; esac; done
export CONCORD_GPU_SHORT=$SHORT
OUT=${OUT:-$B/../.gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/log") 2>&1

TOTAL=${CONCORD_GPU_BUDGET_S:-470}   # the whole run; the device tool allows 600 s per command
[ "$SHORT" = 1 ] && TOTAL=${CONCORD_GPU_BUDGET_S:-400}
START=$(date +%s)
WORK=${CONCORD_GPU_WORK:-${TMPDIR:-/tmp}/concord-gpu-work}
rm -rf "$WORK"; mkdir -p "$WORK/bin" "$WORK/gl"
: > "$WORK/steps.tsv"
PY=${CONCORD_PYTHON:-python3}
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( TOTAL - $(elapsed) )); }

# step NAME BUDGET_S COMMAND...: run with a time limit; record name, budget, seconds, status
step() {
  local name=$1 budget=$2; shift 2
  local l; l=$(left)
  if [ "$l" -lt 5 ]; then
    echo "== step $name: SKIPPED (budget ${budget} s, only ${l} s of the ${TOTAL} s run left)"
    printf '%s\t%s\t0\tskipped: out of time\n' "$name" "$budget" >> "$WORK/steps.tsv"; return 99
  fi
  [ "$budget" -gt "$l" ] && budget=$l
  echo "== step $name: budget ${budget} s (elapsed $(elapsed) s, ${l} s left of ${TOTAL} s)"
  local t0; t0=$(date +%s)
  # functions run in a child bash (exported with export -f), so that timeout can stop them
  if declare -F "$1" >/dev/null; then timeout --kill-after=5 "$budget" bash -c '"$@"' step "$@"
  else timeout --kill-after=5 "$budget" "$@"; fi
  local rc=$? s=$(( $(date +%s) - t0 )) st=ok
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then st="timed out"; elif [ $rc -ne 0 ]; then st="failed (exit $rc)"; fi
  echo "== step $name: $st in ${s} s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$budget" "$s" "$st" >> "$WORK/steps.tsv"
  return $rc
}

echo "concord GPU benchmark: $( [ "$SHORT" = 1 ] && echo SHORT || echo full ) run, budget ${TOTAL} s, bundle $B, out $OUT, work $WORK"
date -u

# ---- setup: Node, dawn.node, the Vulkan/EGL loader (xz via Python's lzma when xz is absent) ----
setup() {
  "$PY" - "$B" "$WORK" <<'PYEOF' || return 1
import io, lzma, os, shutil, sys, tarfile
b, work = sys.argv[1], sys.argv[2]
def unxz(src, dst, mode=0o755):
    with lzma.open(src) as f, open(dst, "wb") as o:
        shutil.copyfileobj(f, o)
    os.chmod(dst, mode)
unxz(f"{b}/node.xz", f"{work}/bin/node")
unxz(f"{b}/dawn.node.xz", f"{work}/bin/dawn.node")
# .deb = ar archive: debian-binary, control.tar.*, data.tar.* ; extract data.tar into work/gl
n = 0
for deb in sorted(os.listdir(f"{b}/gl")):
    if not deb.endswith(".deb"):
        continue
    data = open(f"{b}/gl/{deb}", "rb").read()
    assert data[:8] == b"!<arch>\n", deb
    p = 8
    while p < len(data):
        name = data[p:p + 16].decode().strip().rstrip("/")
        size = int(data[p + 48:p + 58].decode().strip())
        body = data[p + 60:p + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as t:
                t.extractall(f"{work}/gl")
            n += 1
        p += 60 + size + (size & 1)
print(f"setup: node, dawn.node and {n} loader packages unpacked into {work}")
PYEOF
  for f in "$B"/models/*/*.xz; do [ -e "$f" ] || continue; d=$WORK/models/$(basename "$(dirname "$f")"); mkdir -p "$d"
    "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$f" "$d/$(basename "$f" .xz)"; done
  for d in "$B"/models/*/; do n=$(basename "$d"); mkdir -p "$WORK/models/$n"; for f in "$d"*; do case "$f" in *.xz) ;; *) cp "$f" "$WORK/models/$n/" ;; esac; done; done
  "$WORK/bin/node" --version
}
export B WORK PY SHORT
export -f setup
step setup 60 setup || { echo "run.sh: setup failed; nothing can run"; exit 1; }
export PATH="$WORK/bin:$PATH"
# the carried loader libraries for Node (dawn.node) only: Python/torch keep the system's libraries
export GLLIB="$WORK/gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CONCORD_DAWN_NODE="$WORK/bin/dawn.node" XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export NODE="env LD_LIBRARY_PATH=$GLLIB $WORK/bin/node --max-old-space-size=16384 $B/concord-gpu.mjs"

# ---- the Vulkan ICD: the environment's, else NVIDIA's where the container toolkit puts it ----
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && { export VK_DRIVER_FILES=$f; break; }; done
fi
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ldconfig -p 2>/dev/null | grep -q libGLX_nvidia.so.0; then
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3"}}\n' > "$WORK/nvidia_icd.json"
  export VK_DRIVER_FILES=$WORK/nvidia_icd.json
  echo "run.sh: no NVIDIA ICD file found; wrote one for libGLX_nvidia.so.0"
fi
echo "Vulkan ICD: ${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-none set}}"; [ -f "${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-/nonexistent}}" ] && cat "${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}"
TOGGLES=${CONCORD_GPU_TOGGLES:-enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia}

# ---- environment ----
envstep() {
  (command -v nvidia-smi >/dev/null && nvidia-smi -L && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv) > "$WORK/nvidia-smi.txt" 2>&1 || echo "(no nvidia-smi)" > "$WORK/nvidia-smi.txt"
  cat "$WORK/nvidia-smi.txt"
  ldd --version 2>/dev/null | head -1
  # dawn.node needs glibc >= 2.34 and libstdc++ with GLIBCXX_3.4.30; a missing library shows here
  LD_LIBRARY_PATH=$GLLIB ldd "$WORK/bin/dawn.node" 2>/dev/null | grep -i "not found" && echo "run.sh: dawn.node is missing libraries (above)"
  LD_LIBRARY_PATH=$GLLIB "$WORK/bin/node" -e 'try { require(process.env.CONCORD_DAWN_NODE); console.log("dawn.node loads") } catch (e) { console.log("dawn.node does NOT load: " + e.message) }'
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  "$PY" -c 'import transformers; print("transformers", transformers.__version__)' 2>/dev/null || echo "transformers: not installed (the peers use the torch fallback forward, marked as such)"
  CONCORD_DAWN_FLAGS= CONCORD_DAWN_ENABLE=none CONCORD_DAWN_DISABLE=none $NODE env --out "$WORK/env-plain.json" > /dev/null || echo "env (no toggles): no adapter"
  CONCORD_DAWN_FLAGS="$TOGGLES" $NODE env --out "$WORK/env-toggles.json"
}
export TOGGLES
export -f envstep
step env 40 envstep
export CONCORD_DAWN_FLAGS="$TOGGLES"

# ---- tune: every variant of every op validated against its CPU twin on this GPU (subgroup-matrix
# kernels included: never chosen unless they pass here), then timed; the winners are cached in the
# work folder, where the score steps' models read them ----
export CONCORD_TUNE_CACHE="$WORK/tune"
if [ "$SHORT" = 1 ]; then TSIZE=small; TB=40; else TSIZE=full; TB=50; fi
step tune "$TB" $NODE tune --size "$TSIZE" --out "$WORK/tune.json"

# ---- kernels: every variant validated against its CPU twin on this GPU, then timed ----
if [ "$SHORT" = 1 ]; then KSIZE=tiny; KB=90; else KSIZE=large; KB=85; fi
if [ "${CONCORD_GPU_SKIP_KERNELS:-0}" = 1 ]; then echo "== step kernels: skipped (CONCORD_GPU_SKIP_KERNELS=1)"
else step kernels "$KB" $NODE kernels --size "$KSIZE" --out "$WORK/kernels.json"; fi

# ---- end to end, per model: sequences, concord, the peers (same GPU, same weights, same ids) ----
TOK="$WORK/models/stories15M/tokenizer.bin"
# LIMIT pairs from EACH data file (sample pairs, self-instruct slice, alpaca slice); --short: the sample pairs only
DATA=""
for f in "$B"/data/*.jsonl; do [ "$SHORT" = 1 ] && [ "$(basename "$f")" != 0-sample-pairs.jsonl ] && continue; DATA="$DATA --pairs $f"; done
export TOK DATA

# ---- decode: greedy generation on stories15M — concord's WebGPU decoder (KV cache, decode
# attention, sampling on the GPU) at batch 1 and batched, against HF generate on the same device
# with the same weights and prompt ids; the report compares the tokens ----
decodestep() {
  local dir=$WORK/models/stories15M
  $NODE decode --label stories15M --model "$dir" --tokenizer "$TOK" $DATA --limit "$1" --new-tokens "$2" --max-prompt 32 --out "$WORK/decode-concord-stories15M.json" || return 1
  "$PY" "$B/peer.py" generate --model "$dir" --prompts "$WORK/decode-concord-stories15M.json" --out "$WORK/decode-peer-stories15M.json"
}
export -f decodestep
if [ "${CONCORD_GPU_SKIP_DECODE:-0}" = 1 ]; then echo "== step decode: skipped (CONCORD_GPU_SKIP_DECODE=1)"
elif [ "$SHORT" = 1 ]; then step decode 60 decodestep 2 4
else step decode 45 decodestep 8 64; fi
# one model: LABEL SOURCE(stories15M|shape name) LIMIT MAXLEN BUDGET_S [verify-cpu]
model() {
  local label=$1 src=$2 limit=$3 maxlen=$4 budget=$5 verify=${6:-}
  local dir random seed=${CONCORD_GPU_SEED:-1234} params=null
  if [ "$src" = stories15M ]; then dir=$WORK/models/stories15M; random=false; seed=null
  else dir=$WORK/gen-$label; random=true
    "$PY" "$B/peer.py" gen --shapes "$B/shapes.json" --shape "$src" --seed "$seed" --out "$dir" --max-len "$maxlen" || return 1
    params=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["params"])' "$dir/gen.json"); fi
  printf '{"label":"%s","shape":"%s","random":%s,"seed":%s,"source":"%s","params":%s,"maxLen":%s}\n' \
    "$label" "$src" "$random" "$seed" "$( [ "$random" = true ] && echo "random weights, seed $seed" || echo 'stories15M (trained), f16 safetensors')" "$params" "$maxlen" > "$WORK/model-$label.json"
  $NODE seqs --tokenizer "$TOK" --max-len "$maxlen" $DATA --limit "$limit" --out "$WORK/seqs-$label.json" || return 1
  local t0; t0=$(date +%s)
  # concord gets at most half the model's budget, so that the peers always get their turn
  timeout --kill-after=5 $(( budget / 2 )) $NODE score --label "$label" --model "$dir" --tokenizer "$TOK" --max-len "$maxlen" $DATA --limit "$limit" --out "$WORK/concord-$label.json" $verify
  local crc=$?
  # the peers get what is left of this model's budget (peer.py stops starting modes past it, and
  # writes its JSON after every mode, so a cut keeps the modes that finished)
  local rest=$(( budget - ($(date +%s) - t0) - 10 ))
  "$PY" "$B/peer.py" score --model "$dir" --seqs "$WORK/seqs-$label.json" --out "$WORK/peer-$label.json" \
    --batch-tokens "${CONCORD_PEER_BATCH_TOKENS:-8192}" --time-limit $(( rest > 10 ? rest : 10 ))
  local prc=$?
  [ "$random" = true ] && rm -rf "$dir"
  [ $crc -eq 0 ] && [ $prc -eq 0 ]
}
export -f model
if [ "$SHORT" = 1 ]; then
  MODELS=("stories15M stories15M 1 128 110 --verify-cpu" "tiny-qwen2 tiny-qwen2 2 256 90 --verify-cpu" "tiny-llama tiny-llama 2 256 90 --verify-cpu")
else
  # budgets include generating the weights; 8B: ~16 GB of safetensors written, read by both sides
  MODELS=("stories15M stories15M 32 256 40 --verify-cpu" "Qwen2.5-0.5B Qwen2.5-0.5B 16 1024 50" "Llama-3.2-1B Llama-3.2-1B 16 1024 55"
          "Qwen2.5-1.5B Qwen2.5-1.5B 16 1024 60" "Llama-3.1-8B Llama-3.1-8B 8 1024 200")
fi
for spec in "${MODELS[@]}"; do
  read -r label src limit maxlen budget verify <<< "$spec"
  # CONCORD_GPU_MODELS="stories15M Llama-3.1-8B": run only these (a second, shorter call)
  if [ -n "${CONCORD_GPU_MODELS:-}" ] && [[ " $CONCORD_GPU_MODELS " != *" $label "* ]]; then continue; fi
  if [ "$(left)" -lt $(( budget / 2 + 20 )) ]; then
    echo "== model $label: SKIPPED (budget ${budget} s, $(left) s left)"
    printf '{"label":"%s","shape":"%s","random":true,"seed":null,"source":"","params":null,"maxLen":%s,"skipped":"out of time (%s s left of %s s)"}\n' "$label" "$src" "$maxlen" "$(left)" "$TOTAL" > "$WORK/model-$label.json"
    continue
  fi
  step "model $label" "$budget" model "$label" "$src" "$limit" "$maxlen" "$budget" $verify
done

# ---- report: JSON + markdown into $OUT, raw files beside them ----
$WORK/bin/node "$B/concord-gpu.mjs" report --work "$WORK" --out "$OUT"
rc=$?
# the device tool brings back at most 8 files: the step files go in one archive
tar -czf "$OUT/raw.tar.gz" -C "$WORK" $(cd "$WORK" && ls *.json *.tsv *.txt 2>/dev/null)
echo "run.sh: done in $(elapsed) s (budget ${TOTAL} s); report exit $rc; results in $OUT"
exit $rc
