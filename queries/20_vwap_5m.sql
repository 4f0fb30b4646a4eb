-- Five-minute averages every minute: the plain mean and a VWAP-style mean weighted by the
-- day volume reported with each tick.
CREATE TABLE vwap_5m WITH (
    connector = 'cassandra',
    hosts = '${CASSANDRA_HOSTS:-localhost:9042}',
    keyspace = '${CASSANDRA_KEYSPACE:-market}',
    'table' = 'vwap_5m'
);

INSERT INTO vwap_5m
SELECT symbol,
       window_start,
       window_end,
       avg(price) AS avg_price,
       sum(price * day_volume) / sum(day_volume) AS vwap,
       min(price) AS low,
       max(price) AS high,
       count(*) AS ticks
FROM HOP(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)
GROUP BY symbol, window_start, window_end;
