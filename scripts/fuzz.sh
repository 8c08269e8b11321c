#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz and runs each for
# SECONDS (default 10), seeded from the committed test fixtures.
#   scripts/fuzz.sh [SECONDS]
# Crashing inputs land in build-fuzz/fuzz-artifacts/; the exit status is non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
BUILD=build-fuzz
TARGETS=(safetensors_fuzz pickle_fuzz torch_zip_fuzz)

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMAMBA2_FUZZ=ON -DMAMBA2_TESTS=OFF -DMAMBA2_BENCH=OFF -DMAMBA2_CUDA=OFF >/dev/null
nice cmake --build "$BUILD" --target "${TARGETS[@]}" -j2

# Seeds: the fixtures themselves, and the data.pkl inside each torch checkpoint.
SEEDS="$BUILD/fuzz-seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{safetensors_fuzz,pickle_fuzz,torch_zip_fuzz} "$BUILD/fuzz-artifacts"
cp tests/data/io/*.safetensors "$SEEDS/safetensors_fuzz/"
cp tests/data/io/*.bin "$SEEDS/torch_zip_fuzz/"
for f in tests/data/io/*.bin; do
  n="$(basename "$f" .bin)"
  unzip -p "$f" '*/data.pkl' >"$SEEDS/pickle_fuzz/$n.pkl" 2>/dev/null || rm -f "$SEEDS/pickle_fuzz/$n.pkl"
done

status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/fuzz-corpus/$t"
  mkdir -p "$corpus"
  extra=()
  [ "$t" = pickle_fuzz ] && extra=(-dict=fuzz/pickle.dict)
  echo "== $t for ${SECS}s"
  if ! nice "$BUILD/fuzz/$t" "$corpus" "$SEEDS/$t" "${extra[@]}" -max_total_time="$SECS" -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$BUILD/fuzz-artifacts/$t-" -print_final_stats=1 2>"$BUILD/fuzz-$t.log"; then
    echo "!! $t failed; see $BUILD/fuzz-$t.log and $BUILD/fuzz-artifacts/"
    tail -30 "$BUILD/fuzz-$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$BUILD/fuzz-$t.log" | tail -2
  fi
done
exit $status
