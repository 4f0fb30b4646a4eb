CREATE TABLE ticks (symbol TEXT) WITH (connector = 'ftp', path = 'ticks');
-- error: 1:40: unknown connector 'ftp'; expected one of: filesystem, kafka, cassandra, stdout, blackhole
