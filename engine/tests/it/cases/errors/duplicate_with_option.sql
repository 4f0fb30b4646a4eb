CREATE TABLE out WITH (connector = 'stdout', connector = 'blackhole');
-- error: 1:46: option 'connector' is specified more than once
