#!/usr/bin/env bash
# Prompt-state cache: a request sharing a long prefix with an earlier one resumes from a snapshot
# (at a 256-token boundary), the same prompt again resumes from its end; both give exactly what a
# server without a cache gives (text and token log-probabilities), and /metrics shows the hits and
# hit tokens. Timings are printed, not asserted.
# usage: bash serve_prefix_cache_test.sh <mamba2-binary> <repo-root>
set -u
MAMBA2=${1:?usage: $0 <mamba2-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
source "$ROOT/tests/serve/serve_lib.sh"
serve_pick_model
serve_start cached --max-seqs 2 --threads 2 --state-cache-mb 256
serve_start cold --max-seqs 2 --threads 2 --state-cache-mb 0
timeout 600 "$PY" "$ROOT/tests/serve/serve_client.py" prefix-cache --base "$BASE_cached" --cold-base "$BASE_cold" \
  || die "prefix-cache check failed"
serve_alive cached
