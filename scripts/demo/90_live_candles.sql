-- The demo's terminal view: every change to a forming 1-minute candle, as it happens.
CREATE TABLE live_candles WITH (connector = 'stdout');

INSERT INTO live_candles
SELECT symbol,
       window_start,
       first_value(price ORDER BY ts, off) AS open,
       max(price) AS high,
       min(price) AS low,
       last_value(price ORDER BY ts, off) AS close,
       count(*) AS ticks
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
GROUP BY symbol, window_start, window_end;
