INSERT INTO nowhere
SELECT symbol, window_start, window_end,
       first_value(price ORDER BY ts, off) AS open,
       max(price) AS high,
       min(price) AS low,
       last_value(price ORDER BY ts, off) AS close,
       count(*) AS ticks
FROM HOP(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)
GROUP BY symbol, window_start, window_end;
