CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT symbl, price FROM ticks;
-- error: 11:8: column 'symbl' not found; possible column ticks.symbol
