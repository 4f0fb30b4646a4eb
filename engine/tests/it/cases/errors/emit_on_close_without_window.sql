CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT symbol, price FROM ticks
EMIT ON WINDOW CLOSE;
-- error: 10:1: EMIT ON WINDOW CLOSE needs a windowed aggregate (TUMBLE, HOP or SESSION with GROUP BY window_start, window_end)
