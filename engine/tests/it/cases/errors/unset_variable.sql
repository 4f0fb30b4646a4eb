CREATE TABLE ticks (symbol TEXT) WITH (
    connector = 'filesystem',
    path = '/data/${MDSP_SURELY_UNSET_VARIABLE}/ticks',
    format = 'json'
);
-- error: 3:19: environment variable MDSP_SURELY_UNSET_VARIABLE is not set; set it or write '${MDSP_SURELY_UNSET_VARIABLE:-default}'
