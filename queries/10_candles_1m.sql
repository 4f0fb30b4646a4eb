-- One-minute OHLC candles per symbol; a forming candle is rewritten every micro-batch.
CREATE TABLE candles_1m WITH (
    connector = 'cassandra',
    hosts = '${CASSANDRA_HOSTS:-localhost:9042}',
    keyspace = '${CASSANDRA_KEYSPACE:-market}',
    'table' = 'candles_1m'
);

INSERT INTO candles_1m
SELECT symbol,
       window_start,
       window_end,
       first_value(price ORDER BY ts, off) AS open,
       max(price) AS high,
       min(price) AS low,
       last_value(price ORDER BY ts, off) AS close,
       count(*) AS ticks
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
GROUP BY symbol, window_start, window_end;
