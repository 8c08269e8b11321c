#!/usr/bin/env bash
# 16 loopback clients send 64 completion requests (mixed prompt lengths, streamed and not, greedy
# and seeded sampling) to one `mamba2 serve` with 8 slots and a prompt-state cache: every response
# must equal the same request run alone (on a second server without a cache), none lost or cut
# short; a client that disconnects mid-stream frees its slot.
# usage: bash serve_concurrency_test.sh <mamba2-binary> <repo-root>
set -u
MAMBA2=${1:?usage: $0 <mamba2-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
source "$ROOT/tests/serve/serve_lib.sh"
serve_pick_model
serve_start main --max-seqs 8 --max-queue 64 --threads 2
serve_start alone --max-seqs 8 --threads 2 --state-cache-mb 0
timeout 600 "$PY" "$ROOT/tests/serve/serve_client.py" concurrency --base "$BASE_main" --alone-base "$BASE_alone" \
  || die "concurrency check failed"
serve_alive main
