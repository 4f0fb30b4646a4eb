-- Benchmark source: `ingest simulate` output, one JSON-lines file per partition.
CREATE TABLE ticks (
    symbol      TEXT   NOT NULL,
    price       DOUBLE NOT NULL,
    day_volume  BIGINT,
    "timestamp" BIGINT NOT NULL,
    off         BIGINT METADATA FROM 'offset',
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = '${TICKS_PATH}', format = 'json');
