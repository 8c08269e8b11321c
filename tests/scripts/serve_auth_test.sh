#!/usr/bin/env bash
# --api-key: /health stays open; every other route answers 401 (OpenAI error body) without
# `Authorization: Bearer KEY` or with a wrong key, and works with it.
# usage: bash serve_auth_test.sh <mamba2-binary> <repo-root>
set -u
MAMBA2=${1:?usage: $0 <mamba2-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
source "$ROOT/tests/serve/serve_lib.sh"
serve_pick_model
serve_start main --api-key s3cret-Key --threads 2
timeout 300 "$PY" "$ROOT/tests/serve/serve_client.py" auth --base "$BASE_main" --key s3cret-Key || die "auth check failed"
serve_alive main
