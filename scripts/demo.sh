#!/usr/bin/env bash
# The demo: simulated ticks for a few symbols in real time, the shipped queries running on them,
# and the forming 1-minute candles printed as they change. Ctrl-C stops everything.
#
#   scripts/demo.sh [SYMBOLS] [EVENTS_PER_SECOND]      defaults: 8 50
set -euo pipefail
cd "$(dirname "$0")/.."
SYMBOLS=${1:-8}
RATE=${2:-50}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdsp-target}"
cargo build --release -q -p engine -p ingest
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
mkdir -p "$WORK/ticks" "$WORK/queries"
cp queries/*.sql scripts/demo/*.sql "$WORK/queries/"

"$BIN/ingest" simulate --symbols "$SYMBOLS" --rate "$RATE" --output stdout \
    >"$WORK/ticks/live.jsonl" 2>"$WORK/ingest.log" &
INGEST=$!
cleanup() {
    kill "$INGEST" 2>/dev/null || true
    wait "$INGEST" 2>/dev/null || true
    echo "outputs kept in $WORK/out (candles_1m, vwap_5m, activity_sessions)"
}
trap cleanup EXIT

echo "ticks: $WORK/ticks/live.jsonl ($SYMBOLS symbols, $RATE events/s); outputs: $WORK/out"
echo "metrics: http://127.0.0.1:9464/metrics; stop with Ctrl-C"
RUST_LOG="${RUST_LOG:-warn}" "$BIN/engine" run --queries "$WORK/queries" --trigger-interval 1s \
    --replay "ticks=$WORK/ticks" --sink-dir "$WORK/out"
