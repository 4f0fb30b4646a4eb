CREATE TABLE ticks (
    symbol TEXT,
    "timestamp" BIGINT,
    WATERMARK FOR "timestamp" AS "timestamp" - 5
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
-- error: 4:5: WATERMARK FOR 'timestamp': the column is Int64, not a TIMESTAMP; declare a computed column such as ts AS to_timestamp("timestamp")
