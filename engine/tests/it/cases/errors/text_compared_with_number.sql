CREATE TABLE events (
    user_id TEXT,
    amount DOUBLE NOT NULL
) WITH (connector = 'filesystem', path = 'events', format = 'json');
CREATE TABLE out WITH (connector = 'blackhole');

INSERT INTO out
SELECT user_id, amount FROM events
WHERE amount > 0 AND user_id != 123;
-- error: 9:22: user_id is text and 123 is a number: `!=` would cast every value of user_id to BIGINT while the query runs, and fail on the first one that is not a number; compare text with text (user_id != '123') or convert explicitly: TRY_CAST(user_id AS BIGINT) (NULL where it is not a number)
