#!/usr/bin/env bash
# The python reference agrees with itself: chunked SSD == per-token recurrence, prefill(K)+step ==
# prefill(all), continuation with initial_state, conv == torch conv1d, both layouts load alike.
# usage: bash mamba2_ref_selftest_test.sh <mamba2-binary (unused)> <repo-root>
set -u
ROOT=${2:?usage: $0 <mamba2-binary> <repo-root>}
/usr/bin/python3 -c "import numpy, torch" 2>/dev/null || { echo "FAIL: /usr/bin/python3 lacks numpy/torch (run scripts/setup)" >&2; exit 1; }
exec /usr/bin/python3 "$ROOT/tools/mamba2_ref.py" --selftest
