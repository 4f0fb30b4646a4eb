-- Trading activity sessions per symbol: a session ends after two minutes without a tick.
-- Written once per session, when it closes.
CREATE TABLE activity_sessions WITH (
    connector = 'cassandra',
    hosts = '${CASSANDRA_HOSTS:-localhost:9042}',
    keyspace = '${CASSANDRA_KEYSPACE:-market}',
    'table' = 'activity_sessions'
);

INSERT INTO activity_sessions
SELECT symbol,
       window_start,
       window_end,
       count(*) AS ticks,
       first_value(price ORDER BY ts, off) AS open,
       last_value(price ORDER BY ts, off) AS close,
       stddev(price) AS price_stddev
FROM SESSION(ticks, ts, INTERVAL '2' MINUTE)
GROUP BY symbol, window_start, window_end
EMIT ON WINDOW CLOSE;
