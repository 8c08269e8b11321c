#!/usr/bin/env bash
# Under programmatic dependent launch (MAMBA2_CUDA_PDL=1) a kernel may start before the one ahead
# of it has finished, so every kernel the backend launches must open with M2_GRID_DEPENDENCY(),
# the wait for what came before (or M2_GRID_DEPENDENCY_AFTER_PREFETCH, an L2 prefetch of weights
# and then that wait); a kernel without it would read stale data, on a GPU only. This checks the
# kernel sources: each __global__ function's first statement is that wait.
#   bash cuda_kernel_dependency_test.sh <mamba2-binary> <repo-root>
set -uo pipefail
ROOT="$2"
/usr/bin/python3 - "$ROOT"/src/backend/cuda/*.cuh <<'PY'
import re, sys
kernels, missing = 0, []
for path in sys.argv[1:]:
    text = open(path).read()
    # The name, after an optional register cap (M2_LAUNCH_BOUNDS(threads, blocks)).
    for m in re.finditer(r"__global__\s+void\s+(?:M2_LAUNCH_BOUNDS\([^)]*\)\s+)?(\w+)\s*\(", text):
        # The parameter list ends at the first ") {" after the name.
        close = text.index(") {", m.end())
        first = text[close + 3:].lstrip().split("\n", 1)[0]
        kernels += 1
        if not (first.startswith("M2_GRID_DEPENDENCY();") or first.startswith("M2_GRID_DEPENDENCY_AFTER_PREFETCH(")):
            missing.append(f"{path}: {m.group(1)} starts with '{first.strip()}'")
if kernels == 0:
    print("FAIL no kernels found"); sys.exit(1)
for line in missing:
    print("FAIL", line)
print(f"{kernels} kernels, {len(missing)} without the dependency wait")
sys.exit(1 if missing else 0)
PY
