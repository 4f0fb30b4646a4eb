CREATE TABLE ticks (symbol TEXT, price DOUBLE) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
CREATE TABLE out (symbol TEXT, price DOUBLE, volume BIGINT) WITH (connector = 'filesystem', path = 'out', format = 'json');

INSERT INTO out SELECT symbol, price FROM ticks;
-- error: 4:1: the query produces 2 columns but table 'out' has 3 (symbol, price, volume)
