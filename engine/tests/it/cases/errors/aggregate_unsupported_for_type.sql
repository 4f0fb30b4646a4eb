CREATE TABLE ticks (symbol TEXT, price DOUBLE, "timestamp" BIGINT, ts AS to_timestamp("timestamp"), WATERMARK FOR ts AS ts) WITH (connector = 'filesystem', path = 't', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');
INSERT INTO out SELECT symbol, window_start, window_end, approx_distinct(price) FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;
-- error: 3:1: This feature is not implemented: Support for 'approx_distinct' for data type Float64 is not implemented
