-- Price events in TwelveData's own field names, one JSON object per line.
-- `off` (the record's offset in its partition) breaks ties between ticks of the same second.
CREATE TABLE ticks (
    symbol      TEXT   NOT NULL,
    price       DOUBLE NOT NULL,
    day_volume  BIGINT,
    "timestamp" BIGINT NOT NULL,               -- epoch seconds
    off         BIGINT METADATA FROM 'offset',
    ts AS to_timestamp("timestamp"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
    connector = 'filesystem',
    path = '${TICKS_PATH:-data/ticks}',
    format = 'json'
);
