CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT symbol, count(*) FROM ticks GROUP BY symbol;
-- error: 11:45: this query aggregates without a window, so its results would never be final; aggregate over TUMBLE, HOP or SESSION and GROUP BY window_start, window_end
