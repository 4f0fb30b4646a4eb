CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT symbol, count(*)
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
GROUP BY symbol;
-- error: 12:6: TUMBLE needs GROUP BY window_start, window_end (plus any keys)
