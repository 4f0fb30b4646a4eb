CREATE TABLE events (
    user_id TEXT,
    amount DOUBLE NOT NULL
) WITH (connector = 'filesystem', path = 'events', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT amount * user_id AS scaled FROM events;
-- error: 8:8: expressions have incompatible types; has type Float64; has type Utf8
