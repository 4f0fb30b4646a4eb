CREATE TABLE ticks (symbol TEXT) WITH (
    connector = 'filesystem',
    path = 'ticks',
    format = 'json',
    colour = 'red'
);
-- error: 5:5: unknown option 'colour' for table 'ticks'; accepted options: connector, path, format, csv.header, csv.delimiter, dead-letter.path, watermark.idle-timeout
