//! Declared tables read as they are now, as DataFusion tables: what the REPL queries.
//!
//! | connector | reads |
//! |---|---|
//! | `kafka` | every partition from the table's startup position to its high watermark when the query starts, in offset order ([`SourceSnapshot`]) |
//! | `filesystem` | every file, through the streaming source's own reader; a table without declared columns (a sink) with the columns found in its files |
//! | `cassandra` | paged reads, partition key restrictions pushed down ([`CassandraSnapshot`]) |
//! | `stdout`, `blackhole` | nothing: they cannot be read |

mod cassandra;
mod scan;
mod source;

use std::sync::Arc;

use datafusion::catalog::TableProvider;

pub use self::cassandra::CassandraSnapshot;
pub use self::source::SourceSnapshot;
use crate::catalog::TableDef;
use crate::connector::ConnectorSpec;
use crate::connector::filesystem::infer_schema;
use crate::error::Result;

/// The DataFusion table that reads `table` as it is now, or `None` for a connector that cannot
/// be read (`stdout`, `blackhole`).
pub fn snapshot_table(table: &TableDef) -> Result<Option<Arc<dyn TableProvider>>> {
    Ok(match &table.connector {
        ConnectorSpec::Kafka(_) => Some(Arc::new(SourceSnapshot::new(table.clone()))),
        ConnectorSpec::Filesystem(_) if table.declared => {
            Some(Arc::new(SourceSnapshot::new(table.clone())))
        }
        ConnectorSpec::Filesystem(options) => {
            let schema = infer_schema(&table.name, options)?;
            let described = table.with_external_columns(schema, vec![], table.connector.clone());
            Some(Arc::new(SourceSnapshot::new(described)))
        }
        ConnectorSpec::Cassandra(options) => {
            Some(Arc::new(CassandraSnapshot::new(&table.name, options)?))
        }
        ConnectorSpec::Stdout | ConnectorSpec::Blackhole | ConnectorSpec::Memory(_) => None,
    })
}
