CREATE TABLE out WITH (connector = 'stdout');
CREATE TABLE out WITH (connector = 'blackhole');
-- error: 2:1: 'out' is already declared at {file}:1:1
