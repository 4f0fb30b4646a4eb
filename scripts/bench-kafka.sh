#!/usr/bin/env bash
# Broker -> engine benchmarks with the shipped `ticks` source (queries/00_sources.sql):
#  1. throughput: EVENTS ticks over SYMBOLS symbols produced up front into a PARTITIONS-partition
#     topic, then `engine run` consumes them and runs the 1-minute candles to `blackhole`:
#     events/s from engine start to the last row counted, peak RSS;
#  2. latency: `ingest simulate` producing RATE events/s for SECONDS while the engine runs the
#     shipped candles query into Cassandra (1 s trigger): p50/p99 of the time from a record's
#     Kafka timestamp to the sink acknowledging its micro-batch (engine_record_to_sink_seconds,
#     the earliest record of each micro-batch), and the same into `blackhole`;
#  3. the same latency into `blackhole` with librdkafka's mock cluster as the broker: `engine demo`
#     runs it in process and feeds it RATE events/s (its own query filters everything out), for
#     twice SECONDS. tansu's fetches cost it more the longer the topic (docs/testing.md); the mock
#     cluster keeps up, so this shows what the engine adds.
# Uses the test servers (scripts/test-env.sh); builds release binaries.
#
#   scripts/bench-kafka.sh [EVENTS] [SYMBOLS] [PARTITIONS] [RATE] [SECONDS]
#   defaults: 5000000 1000 3 100000 30
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-5000000}
SYMBOLS=${2:-1000}
PARTITIONS=${3:-3}
RATE=${4:-100000}
SECONDS_=${5:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdsp-target}"
cargo build --release -q -p engine -p ingest
BIN="$CARGO_TARGET_DIR/release"
scripts/test-env.sh start >/dev/null
eval "$(scripts/test-env.sh env)"
# tansu holds every fetch for the whole fetch.wait.max.ms, even when messages are there (Kafka
# answers at once): a short wait keeps its fetch delay out of the latency (docs/testing.md).
export KAFKA_FETCH_WAIT_MAX_MS=10
WORK=$(mktemp -d)
ENGINE=""
DEMO=""
cleanup() {
    if [ -n "$ENGINE" ]; then pkill -P "$ENGINE" 2>/dev/null || true; fi
    if [ -n "$DEMO" ]; then kill "$DEMO" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
METRICS=127.0.0.1:9479
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

# metric NAME QUERY [EXTRA_LABEL]: the value of a series on the engine's /metrics ("" if absent).
metric() {
    curl -s "http://$METRICS/metrics" |
        awk -v name="$1" -v query="query=\"$2\"" -v extra="${3:-}" \
            'index($0, name "{") == 1 && index($0, query) && index($0, extra) { print $NF; exit }'
}

# start_engine DIR [FLAGS...]: runs the engine on the query files of DIR in the background.
start_engine() {
    local dir=$1
    shift
    /usr/bin/time -v "$BIN/engine" --log-format json run --queries "$dir" --metrics-addr "$METRICS" \
        "$@" >"$dir.out" 2>"$dir.err" &
    ENGINE=$!
    for _ in $(seq 100); do
        curl -sf "http://$METRICS/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "the engine did not start:" >&2
    cat "$dir.err" >&2
    exit 1
}

stop_engine() {
    # $ENGINE is /usr/bin/time, which ignores SIGINT: signal the engine, its child.
    pkill -INT -P "$ENGINE"
    wait "$ENGINE" || true
    ENGINE=""
}

queries() { # queries DIR FILES...: a query directory holding FILES.
    local dir=$1
    shift
    mkdir -p "$dir"
    cp "$@" "$dir/"
}

# --- 1. throughput --------------------------------------------------------------------------------
TOPIC="bench.ticks.$$.$(date +%s)"
start=$(date +%s.%N)
KAFKA_BROKERS=$MDSP_KAFKA_BROKERS TOPIC=$TOPIC TOPIC_PARTITIONS=$PARTITIONS \
    "$BIN/ingest" simulate --symbols "$SYMBOLS" --rate 10000 --count "$EVENTS" --seed 1 \
    --start 2024-05-01T13:30:00Z --unthrottled --output kafka 2>"$WORK/produce.err"
echo "produced $EVENTS events ($SYMBOLS symbols, $PARTITIONS partitions) in $(echo "$(date +%s.%N) - $start" | bc) s"

queries "$WORK/throughput" queries/00_sources.sql scripts/bench/05_blackhole.sql scripts/bench/tumble.sql
export KAFKA_BROKERS=$MDSP_KAFKA_BROKERS TICKS_TOPIC=$TOPIC
start=$(date +%s.%N)
start_engine "$WORK/throughput"
while :; do
    rows=$(metric engine_rows_in_total tumble)
    if [ "${rows:-0}" -ge "$EVENTS" ]; then break; fi
    sleep 0.05
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
stop_engine
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/throughput.err")
printf 'throughput  %12.0f events/s   (%s events in %.2f s from engine start)   peak RSS %d MiB\n' \
    "$(echo "$EVENTS / $elapsed" | bc -l)" "$EVENTS" "$elapsed" "$((rss_kb / 1024))"

# --- 2. latency -----------------------------------------------------------------------------------
latency() { # latency NAME QUERY DIR [ENGINE FLAGS...]
    local name=$1 query=$2 dir=$3
    shift 3
    TICKS_TOPIC="bench.live.$name.$$.$(date +%s)"
    export TICKS_TOPIC
    KAFKA_BROKERS=$MDSP_KAFKA_BROKERS TOPIC=$TICKS_TOPIC TOPIC_PARTITIONS=$PARTITIONS \
        "$BIN/ingest" simulate --symbols "$SYMBOLS" --rate 1 --count 0 --output kafka 2>/dev/null
    start_engine "$dir" "$@"
    KAFKA_BROKERS=$MDSP_KAFKA_BROKERS TOPIC=$TICKS_TOPIC \
        "$BIN/ingest" simulate --symbols "$SYMBOLS" --rate "$RATE" --duration "${SECONDS_}s" \
        --output kafka 2>"$WORK/$name.produce.err"
    sleep 3
    local p50 p99 rows
    p50=$(metric engine_record_to_sink_seconds "$query" 'quantile="0.5"')
    p99=$(metric engine_record_to_sink_seconds "$query" 'quantile="0.99"')
    rows=$(metric engine_rows_in_total "$query")
    stop_engine
    printf 'latency %-10s %d events/s for %d s: record to sink p50 %.0f ms, p99 %.0f ms (%s rows read)\n' \
        "$name" "$RATE" "$SECONDS_" "$(echo "$p50 * 1000" | bc -l)" "$(echo "$p99 * 1000" | bc -l)" "$rows"
}
queries "$WORK/live-blackhole" queries/00_sources.sql scripts/bench/05_blackhole.sql scripts/bench/tumble.sql
latency blackhole tumble "$WORK/live-blackhole"
queries "$WORK/live-cassandra" queries/00_sources.sql queries/10_candles_1m.sql
export CASSANDRA_HOSTS=$MDSP_CQL_HOSTS
latency cassandra 10_candles_1m "$WORK/live-cassandra" \
    --apply-schema cql --cassandra-hosts "$MDSP_CQL_HOSTS"

# --- 3. latency with the mock cluster as the broker ------------------------------------------------
queries "$WORK/mock-feed" queries/00_sources.sql scripts/bench/05_blackhole.sql
echo "INSERT INTO nowhere SELECT symbol FROM ticks WHERE price < 0;" >"$WORK/mock-feed/10_none.sql"
"$BIN/engine" demo --symbols "$SYMBOLS" --rate "$RATE" --duration "$((SECONDS_ * 2 + 30))s" \
    --queries "$WORK/mock-feed" --schema cql >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO=$!
for _ in $(seq 100); do
    grep -q "KAFKA_BROKERS=" "$WORK/demo.out" && break
    sleep 0.1
done
MOCK_BROKERS=$(grep -o "KAFKA_BROKERS=[^ ]*" "$WORK/demo.out" | head -1 | cut -d= -f2)
if [ -z "$MOCK_BROKERS" ]; then
    echo "engine demo did not start:" >&2
    cat "$WORK/demo.err" >&2
    exit 1
fi
queries "$WORK/mock-blackhole" queries/00_sources.sql scripts/bench/05_blackhole.sql scripts/bench/tumble.sql
export KAFKA_BROKERS=$MOCK_BROKERS TICKS_TOPIC=market.ticks
start_engine "$WORK/mock-blackhole"
sleep "$((SECONDS_ * 2))"
p50=$(metric engine_record_to_sink_seconds tumble 'quantile="0.5"')
p99=$(metric engine_record_to_sink_seconds tumble 'quantile="0.99"')
rows=$(metric engine_rows_in_total tumble)
stop_engine
kill -INT "$DEMO"
wait "$DEMO" || true
DEMO=""
printf 'latency %-10s %d events/s for %d s: record to sink p50 %.0f ms, p99 %.0f ms (%s rows read)\n' \
    "mock" "$RATE" "$((SECONDS_ * 2))" "$(echo "$p50 * 1000" | bc -l)" "$(echo "$p99 * 1000" | bc -l)" "$rows"
