//! The SQL dialect: syntax only, nothing about connectors or execution.
//!
//! A query file is a list of statements separated by `;`: `CREATE TABLE` (sources and sinks),
//! `CREATE VIEW`, `INSERT INTO ... SELECT ... [EMIT ON WINDOW CLOSE]` and `SET key = value`.
//! See `docs/sql.md` for the user-facing description.

pub mod env;
pub mod loader;
pub mod parser;
pub mod types;

pub use loader::{QueryFile, VarLookup, load_dir, load_file, process_env};
pub use parser::{
    ColumnDef, CreateTable, CreateView, Emit, InsertInto, Located, SetOption, Statement,
    TableElement, Watermark, parse_sql,
};
