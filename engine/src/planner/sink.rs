//! How a query's output columns become a sink's columns: by position or the INSERT column list
//! for declared tables, by name for tables kept in a store (Cassandra).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::error::DataFusionError;

use crate::catalog::{SinkColumns, StoreTable, TableDef};
use crate::error::{EngineError, Location, Result};
use crate::sql::InsertInto;

/// How the query's output columns become the sink's columns.
#[derive(Debug, Clone)]
pub struct SinkMapping {
    /// The sink's schema.
    pub schema: SchemaRef,
    /// For each sink column, the output column it takes.
    pub sources: Vec<usize>,
}

impl SinkMapping {
    /// Reorders and casts a batch of query output into the sink's schema; a value the sink's
    /// column cannot hold fails (the runtime dead-letters its row) rather than becoming NULL.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(&self.sources)
            .map(|(field, &source)| {
                cast_with_options(batch.column(source), field.data_type(), &STRICT_CAST)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(DataFusionError::from)?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(DataFusionError::from)?)
    }
}

/// Casts that fail on a value they cannot convert.
const STRICT_CAST: CastOptions<'static> =
    CastOptions { safe: false, format_options: FormatOptions::new() };

pub(super) fn map_to_sink(
    output: &SchemaRef,
    sink: &TableDef,
    insert: &InsertInto,
    at: &Location,
) -> Result<SinkMapping> {
    if sink.has_source_only_columns() {
        return crate::sql_err!(
            at,
            "table '{}' declares computed, metadata or watermark columns, so it can only be read",
            sink.name
        );
    }
    if sink.sink_capabilities().is_none() {
        return crate::sql_err!(
            at,
            "table '{}' uses the {} connector, which can only be read",
            sink.name,
            sink.connector_name()
        );
    }
    match sink.sink_columns() {
        SinkColumns::Declared => {}
        SinkColumns::FromQuery => {
            let fields: Vec<Field> =
                output.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
            return Ok(SinkMapping {
                schema: Arc::new(Schema::new(fields)),
                sources: (0..output.fields().len()).collect(),
            });
        }
        SinkColumns::Store { name, table } => {
            return map_by_name(output, sink, Some((&name, table)), insert, at);
        }
        SinkColumns::Unknown { .. } => return map_by_name(output, sink, None, insert, at),
        SinkColumns::Missing => {
            return crate::sql_err!(
                at,
                "the columns of table '{}' could not be read from {} (see the error at {})",
                sink.name,
                sink.connector_name(),
                sink.location
            );
        }
    }
    let target = &sink.schema;
    let sources: Vec<usize> = if insert.columns.is_empty() {
        if output.fields().len() != target.fields().len() {
            return crate::sql_err!(
                at,
                "the query produces {} columns but table '{}' has {} ({})",
                output.fields().len(),
                sink.name,
                target.fields().len(),
                field_names(target)
            );
        }
        (0..target.fields().len()).collect()
    } else {
        if insert.columns.len() != output.fields().len() {
            return crate::sql_err!(
                at,
                "{} columns are listed but the query produces {}",
                insert.columns.len(),
                output.fields().len()
            );
        }
        let mut sources = vec![];
        for field in target.fields() {
            match insert.columns.iter().position(|c| c == field.name()) {
                Some(i) => sources.push(i),
                None => {
                    return crate::sql_err!(
                        at,
                        "column '{}' of table '{}' is not in the INSERT column list",
                        field.name(),
                        sink.name
                    );
                }
            }
        }
        if let Some(unknown) = insert.columns.iter().find(|c| target.field_with_name(c).is_err()) {
            return crate::sql_err!(
                at,
                "table '{}' has no column '{unknown}' ({})",
                sink.name,
                field_names(target)
            );
        }
        sources
    };
    for (field, &source) in target.fields().iter().zip(&sources) {
        let from = output.field(source).data_type();
        if !can_cast_types(from, field.data_type()) {
            return crate::sql_err!(
                at,
                "column '{}' of table '{}' is {}, but the query gives {from} (query column {})",
                field.name(),
                sink.name,
                field.data_type(),
                source + 1
            );
        }
    }
    Ok(SinkMapping { schema: Arc::clone(target), sources })
}

/// Maps query output to the columns of a table kept in a store by name (or by the INSERT column
/// list): every primary key column must be written and every written column must take the
/// value's type. With the store's columns unknown (`store` is `None`: checked offline), the
/// query's columns are taken as they are.
fn map_by_name(
    output: &SchemaRef,
    sink: &TableDef,
    store: Option<(&str, &StoreTable)>,
    insert: &InsertInto,
    at: &Location,
) -> Result<SinkMapping> {
    let names: Vec<&str> = if insert.columns.is_empty() {
        output.fields().iter().map(|f| f.name().as_str()).collect()
    } else if insert.columns.len() != output.fields().len() {
        return crate::sql_err!(
            at,
            "{} columns are listed but the query produces {}",
            insert.columns.len(),
            output.fields().len()
        );
    } else {
        insert.columns.iter().map(String::as_str).collect()
    };
    let mut fields = vec![];
    let mut sources = vec![];
    for (source, name) in names.iter().enumerate() {
        if names[..source].contains(name) {
            return crate::sql_err!(at, "column '{name}' is written twice");
        }
        let from = output.field(source).data_type();
        let Some((qualified, table)) = store else {
            fields.push(Field::new(*name, from.clone(), true));
            sources.push(source);
            continue;
        };
        if table.column(name).is_none() {
            return crate::sql_err!(
                at,
                "query column {} '{name}' is not a column of {} table {qualified} ({}); alias it to one",
                source + 1,
                sink.connector_name(),
                field_names(&table.schema())
            );
        }
        let data_type = table
            .writable(name, from)
            .map_err(|m| EngineError::sql(at.clone(), format!("table '{}': {m}", sink.name)))?;
        let key = table.column(name).is_some_and(|c| c.is_key());
        fields.push(Field::new(*name, data_type, !key));
        sources.push(source);
    }
    if let Some((qualified, table)) = store {
        let missing: Vec<String> =
            table.primary_key().into_iter().filter(|k| !names.contains(&k.as_str())).collect();
        if !missing.is_empty() {
            return crate::sql_err!(
                at,
                "the query does not write primary key column{} {} of {} table {qualified} (primary key: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                sink.connector_name(),
                table.primary_key().join(", ")
            );
        }
    }
    Ok(SinkMapping { schema: Arc::new(Schema::new(fields)), sources })
}

fn field_names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}
