CREATE TABLE ticks (symbol TEXT) WITH (
    connector = 'kafka',
    topic = 'market.ticks',
    'bootstrap.servers' = 'localhost:9092',
    'scan.partition-assignment' = 'group',
    'properties.partition.assignment.strategy' = 'cooperative-sticky'
);
-- error: 6:5: 'scan.partition-assignment' = 'group' hands partitions over in eager rebalances; use 'range' or 'roundrobin' instead of 'cooperative-sticky'
