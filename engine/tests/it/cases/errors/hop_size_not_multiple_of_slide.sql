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
FROM HOP(ticks, ts, INTERVAL '2' MINUTE, INTERVAL '5' MINUTE)
GROUP BY symbol, window_start, window_end;
-- error: 12:6: HOP: the size must be a multiple of the slide (HOP(table, time_column, slide, size [, offset]))
