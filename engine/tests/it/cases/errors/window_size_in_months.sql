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
FROM TUMBLE(ticks, ts, INTERVAL '1' MONTH)
GROUP BY symbol, window_start, window_end;
-- error: 12:33: TUMBLE: 'INTERVAL '1' MONTH' is not a positive fixed-length interval; write e.g. INTERVAL '1' MINUTE
