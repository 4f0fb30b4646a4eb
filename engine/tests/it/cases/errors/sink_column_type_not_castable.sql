CREATE TABLE ticks (symbol TEXT, ts TIMESTAMP) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out (symbol TEXT, flag BOOLEAN) WITH (connector = 'filesystem', path = 'out', format = 'json');

INSERT INTO out SELECT symbol, ts FROM ticks;
-- error: 4:1: column 'flag' of table 'out' is Boolean, but the query gives Timestamp(ns) (query column 2)
