CREATE TABLE ticks (symbol TEXT, ts TIMESTAMP) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT symbol, window_start, window_end, count(*)
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
GROUP BY symbol, window_start, window_end;
-- error: 6:6: TUMBLE over 'ticks' needs a watermark: declare WATERMARK FOR ts AS ts - INTERVAL '5' SECOND in CREATE TABLE ticks
