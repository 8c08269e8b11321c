# Shared by tests/scripts/serve_*_test.sh: pick a model, start `mamba2 serve` on a free loopback
# port, wait for /health, and stop every server started here on exit.
#
# Model: the bundled models/tiny-shakespeare when present, else a small random model made by
# tools/make_model.py for the GPT-NeoX tokenizer in ../shared/data (MAMBA2_SERVE_MODEL=DIR overrides).
# Needs: /usr/bin/python3 (the client is standard library only; numpy only for the random model).

PY=/usr/bin/python3
SERVE_PIDS=()
SERVE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mamba2-serve.XXXXXX") || exit 1

serve_cleanup() {
  local rc=$? pid log
  for pid in "${SERVE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${SERVE_PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  # A sanitizer build reports on stderr (at the fault, or at exit for leaks).
  for log in "$SERVE_TMP"/*.log; do
    [ -f "$log" ] || continue
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
      echo "$(basename "$0"): FAIL: sanitizer report in $(basename "$log"):" >&2
      grep -A30 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log" | head -60 >&2
      rc=1
    fi
  done
  rm -rf "$SERVE_TMP"
  exit $rc
}
trap serve_cleanup EXIT

die() { echo "$(basename "$0"): FAIL: $*" >&2; exit 1; }

# Sets MODEL_ARGS (an array) for `mamba2 serve`.
serve_pick_model() {
  local bundled="$ROOT/models/tiny-shakespeare"
  if [ -n "${MAMBA2_SERVE_MODEL:-}" ]; then
    MODEL_ARGS=(-m "$MAMBA2_SERVE_MODEL")
  elif [ -f "$bundled/config.json" ] && [ -f "$bundled/tokenizer.json" ]; then
    MODEL_ARGS=(-m "$bundled")
  else
    local tok="$ROOT/../shared/data/gpt-neox-20b/tokenizer.json"
    [ -f "$tok" ] || die "no model: neither $bundled nor the tokenizer $tok exists"
    "$PY" "$ROOT/tools/make_model.py" --layout hf --d-model 64 --n-layer 2 --d-state 16 --head-dim 16 \
      --chunk-size 64 --vocab 50277 --seed 5 -o "$SERVE_TMP/model" >/dev/null || die "make_model.py failed"
    MODEL_ARGS=(-m "$SERVE_TMP/model" --tokenizer "$tok")
  fi
  echo "model: ${MODEL_ARGS[*]}"
}

# serve_start NAME [mamba2 serve options...]: starts a server; sets BASE_<NAME> to its URL.
serve_start() {
  local name=$1
  shift
  local log="$SERVE_TMP/$name.log"
  "$MAMBA2" serve "${MODEL_ARGS[@]}" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
  local pid=$!
  SERVE_PIDS+=("$pid")
  local port="" i
  for i in $(seq 1 600); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "server $name exited before listening"; }
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log" >&2; die "server $name did not start listening"; }
  local url="http://127.0.0.1:$port"
  for i in $(seq 1 100); do
    "$PY" -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$url/health', timeout=2).status == 200 else 1)" \
      2>/dev/null && break
    sleep 0.1
  done
  printf -v "BASE_$name" '%s' "$url"
  SERVE_LOG[$name]=$log
  echo "server $name: $url (pid $pid)"
}
declare -A SERVE_LOG

# serve_alive NAME: the server is still running (it must never die on a request).
serve_alive() {
  local i=0 pid
  for pid in "${SERVE_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { cat "${SERVE_LOG[$1]}" >&2; die "a server process died"; }
  done
}
