CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');


INSERT INTO out
SELECT symbol, window_start, window_end, count(*)
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '1' SECOND, INTERVAL '2' SECOND)
GROUP BY symbol, window_start, window_end;
-- error: 13:6: TUMBLE takes 3 or 4 arguments: TUMBLE(table, time_column, size [, offset])
