CREATE TABLE ticks (symbol TEXT)
WITH (connector = 'filesystem', format = 'json');
-- error: 1:1: table 'ticks' needs option 'path' (the directory or file to read or write)
