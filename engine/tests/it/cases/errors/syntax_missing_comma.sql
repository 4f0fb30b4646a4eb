CREATE TABLE ticks (
    symbol TEXT NOT NULL
    price DOUBLE NOT NULL
) WITH (connector = 'filesystem', path = 'ticks', format = 'json');
-- error: 3:5: Expected: ), found: price
