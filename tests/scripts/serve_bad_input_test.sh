#!/usr/bin/env bash
# Bad input and load: malformed JSON, wrong types, unsupported fields, out-of-range values, prompts
# over the limit, garbage on the socket, a full queue (429), clients that vanish; each gets its
# status and an OpenAI-style error body, and the server keeps serving.
# usage: bash serve_bad_input_test.sh <mamba2-binary> <repo-root>
# Under ASan: build with -DMAMBA2_SANITIZE=ON and pass that build's mamba2 (see README, Server).
set -u
MAMBA2=${1:?usage: $0 <mamba2-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
source "$ROOT/tests/serve/serve_lib.sh"
serve_pick_model
serve_start main --max-seqs 1 --max-queue 1 --max-prompt-tokens 128 --max-tokens-limit 1000000 --threads 2
timeout 600 "$PY" "$ROOT/tests/serve/serve_client.py" bad-input --base "$BASE_main" || die "bad-input check failed"
serve_alive main
