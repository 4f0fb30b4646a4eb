SET 'trigger-interval' = '2s';
SET 'parallelism' = '4';
-- error: 2:1: unknown option 'parallelism' in SET; accepted: trigger-interval, allowed-lateness, watermark.idle-timeout, source.max-rows-per-batch
