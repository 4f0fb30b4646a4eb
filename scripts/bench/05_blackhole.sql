-- Benchmark sink: rows counted and dropped.
CREATE TABLE nowhere WITH (connector = 'blackhole');
