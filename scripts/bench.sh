#!/usr/bin/env bash
# Streaming-engine benchmark: the 1-minute candles query (and the same aggregates over a 5-minute
# hopping window) from JSON-lines files to the blackhole sink, with `engine run --once`.
# Prints events/s, micro-batch latency p50/p99 and peak RSS for each.
#
#   scripts/bench.sh [EVENTS] [SYMBOLS] [PARTITIONS]      defaults: 10000000 1000 1
#
# ENGINE_BIN=path/to/engine (one or more, space-separated) benchmarks those binaries instead of
# the one cargo builds, each over the same input: two builds compared in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
SYMBOLS=${2:-1000}
PARTITIONS=${3:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdsp-target}"
cargo build --release -q -p engine -p ingest
BIN="$CARGO_TARGET_DIR/release"
ENGINES=${ENGINE_BIN:-$BIN/engine}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/ticks"
per_partition=$((EVENTS / PARTITIONS))
for ((p = 0; p < PARTITIONS; p++)); do
    # 10,000 events per second of event time: 10 M events span about 17 minutes.
    "$BIN/ingest" simulate --symbols "$SYMBOLS" --rate 10000 --count "$per_partition" \
        --seed "$((p + 1))" --start 2024-05-01T13:30:00Z --unthrottled --output stdout \
        >"$WORK/ticks/part-$p.jsonl"
done
echo "input: $EVENTS events, $SYMBOLS symbols, $PARTITIONS partition(s), $(du -sh "$WORK/ticks" | cut -f1) of JSON lines"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

for engine in $ENGINES; do
[ "$ENGINES" = "$BIN/engine" ] || echo "engine: $engine"
for query in tumble hop; do
    mkdir -p "$WORK/q-$query"
    cp scripts/bench/00_source.sql scripts/bench/05_blackhole.sql "$WORK/q-$query/"
    cp "scripts/bench/$query.sql" "$WORK/q-$query/10_query.sql"
    TICKS_PATH="$WORK/ticks" /usr/bin/time -v "$engine" --log-format json run --once \
        --queries "$WORK/q-$query" --metrics-addr 127.0.0.1:0 \
        >"$WORK/$query.out" 2>"$WORK/$query.err" || { cat "$WORK/$query.err"; exit 1; }
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$query.err")
    python3 - "$query" "$rss_kb" "$WORK/$query.err" <<'PY'
import json, sys
query, rss_kb, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for line in open(log):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    fields = event.get("fields", {})
    if fields.get("message") == "query stopped":
        print(f"{query:7} {int(fields['events_per_second']):>12,} events/s   "
              f"batch p50 {fields['batch_p50']:>12}   p99 {fields['batch_p99']:>12}   "
              f"peak RSS {rss_kb / 1024:.0f} MiB   rows in {fields['rows_in']:,}")
PY
done
done
