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
FROM HOP(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE,
         INTERVAL '-1' MINUTE)
GROUP BY symbol, window_start, window_end;
-- error: 14:19: HOP: the offset 'INTERVAL '-1' MINUTE' must be a fixed-length interval strictly between minus and plus the slide; write e.g. INTERVAL '15' MINUTE or INTERVAL '-15' MINUTE (HOP(table, time_column, slide, size [, offset]))
