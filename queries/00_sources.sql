-- Price events in TwelveData's own field names, as `ingest` produces them (key = symbol, so
-- every symbol's ticks stay in order within one partition).
-- `off` (the record's offset in its partition) breaks ties between ticks of the same second.
-- Backtests read a file copy of the topic instead: `engine run --once --replay ticks=PATH`.
-- TICKS_PARTITION_ASSIGNMENT=group lets engine replicas split the partitions (docs/operations.md,
-- "Scaling"); KAFKA_SESSION_TIMEOUT_MS is how soon the others take a dead replica's over.
-- KAFKA_FETCH_WAIT_MAX_MS bounds how long the broker may hold a fetch: Kafka answers as soon as
-- messages are there, but some brokers (tansu) hold every fetch that long (docs/operations.md).
CREATE TABLE ticks (
    symbol      TEXT   NOT NULL,
    price       DOUBLE NOT NULL,
    day_volume  BIGINT,
    "timestamp" BIGINT NOT NULL,               -- epoch seconds
    off         BIGINT METADATA FROM 'offset',
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
    connector = 'kafka',
    topic = '${TICKS_TOPIC:-market.ticks}',
    'bootstrap.servers' = '${KAFKA_BROKERS:-localhost:9092}',
    format = 'json',
    'scan.startup.mode' = 'earliest-offset',
    'scan.partition-assignment' = '${TICKS_PARTITION_ASSIGNMENT:-all}',
    'properties.session.timeout.ms' = '${KAFKA_SESSION_TIMEOUT_MS:-45000}',
    'properties.fetch.wait.max.ms' = '${KAFKA_FETCH_WAIT_MAX_MS:-100}',
    'dead-letter.topic' = '${TICKS_DEAD_LETTER_TOPIC:-market.ticks.dead-letter}'
);
