CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    "timestamp" BIGINT NOT NULL,
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO nowhere
SELECT symbol FROM ticks;
-- error: 10:1: INSERT INTO 'nowhere': no such table; declare it with CREATE TABLE
