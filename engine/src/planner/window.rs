//! Window table functions: `TUMBLE`, `HOP` and `SESSION` in a `FROM` clause are replaced by a
//! scan of a windowed relation (the input's columns plus `window_start` and `window_end`).

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, TableAlias, TableFactor,
};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Spanned, TableWithJoins};

use crate::catalog::{df_message, plan_expr};
use crate::error::{EngineError, Location, Result};
use crate::sql::parser::normalize_ident;
use crate::time::window::WindowSpec;

/// One window table function call found in a query.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// The name the call was replaced by.
    pub relation: String,
    /// The table or view windowed.
    pub input: String,
    /// The event-time column.
    pub time_column: String,
    /// Sizes.
    pub spec: WindowSpec,
    /// Where the call is.
    pub location: Location,
}

/// Replaces every window table function in `query` (including nested subqueries); `next_id`
/// numbers the windowed relations.
pub fn rewrite_windows(
    query: &mut Query,
    state: &SessionState,
    file_location: &Location,
    next_id: &mut usize,
) -> Result<Vec<WindowCall>> {
    let mut calls = vec![];
    rewrite_query(query, state, file_location, next_id, &mut calls)?;
    Ok(calls)
}

fn rewrite_query(
    query: &mut Query,
    state: &SessionState,
    at: &Location,
    next_id: &mut usize,
    calls: &mut Vec<WindowCall>,
) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, state, at, next_id, calls)?;
        }
    }
    rewrite_set_expr(&mut query.body, state, at, next_id, calls)
}

fn rewrite_set_expr(
    body: &mut SetExpr,
    state: &SessionState,
    at: &Location,
    next_id: &mut usize,
    calls: &mut Vec<WindowCall>,
) -> Result<()> {
    match body {
        SetExpr::Select(select) => {
            for table in &mut select.from {
                rewrite_table_with_joins(table, state, at, next_id, calls)?;
            }
            Ok(())
        }
        SetExpr::Query(q) => rewrite_query(q, state, at, next_id, calls),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, state, at, next_id, calls)?;
            rewrite_set_expr(right, state, at, next_id, calls)
        }
        _ => Ok(()),
    }
}

fn rewrite_table_with_joins(
    table: &mut TableWithJoins,
    state: &SessionState,
    at: &Location,
    next_id: &mut usize,
    calls: &mut Vec<WindowCall>,
) -> Result<()> {
    rewrite_factor(&mut table.relation, state, at, next_id, calls)?;
    for join in &mut table.joins {
        rewrite_factor(&mut join.relation, state, at, next_id, calls)?;
    }
    Ok(())
}

fn rewrite_factor(
    factor: &mut TableFactor,
    state: &SessionState,
    at: &Location,
    next_id: &mut usize,
    calls: &mut Vec<WindowCall>,
) -> Result<()> {
    match factor {
        TableFactor::Derived { subquery, .. } => rewrite_query(subquery, state, at, next_id, calls),
        TableFactor::NestedJoin { table_with_joins, .. } => {
            rewrite_table_with_joins(table_with_joins, state, at, next_id, calls)
        }
        TableFactor::Table { name, alias, args: Some(args), .. } => {
            let function = name.to_string().to_ascii_uppercase();
            if !matches!(function.as_str(), "TUMBLE" | "HOP" | "SESSION") {
                return Ok(());
            }
            let location = name_location(name, at);
            let call = parse_call(&function, &args.args, state, &location, *next_id)?;
            *next_id += 1;
            let alias_name = alias
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_else(|| Ident::new(call.input.clone()));
            *factor = TableFactor::Table {
                name: ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '"',
                    call.relation.clone(),
                ))]),
                alias: Some(TableAlias {
                    explicit: true,
                    name: alias_name,
                    columns: vec![],
                    at: None,
                }),
                args: None,
                with_hints: vec![],
                version: None,
                with_ordinality: false,
                partitions: vec![],
                json_path: None,
                sample: None,
                index_hints: vec![],
            };
            calls.push(call);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn name_location(name: &ObjectName, at: &Location) -> Location {
    match name.0.first() {
        Some(ObjectNamePart::Identifier(ident)) if ident.span.start.line > 0 => {
            Location::new(&at.file, ident.span.start.line, ident.span.start.column)
        }
        _ => at.clone(),
    }
}

fn parse_call(
    function: &str,
    args: &[FunctionArg],
    state: &SessionState,
    at: &Location,
    id: usize,
) -> Result<WindowCall> {
    let usage = match function {
        "TUMBLE" => "TUMBLE(table, time_column, size [, offset])",
        "HOP" => "HOP(table, time_column, slide, size [, offset])",
        _ => "SESSION(table, time_column, gap)",
    };
    let arity = match function {
        "TUMBLE" => 3..=4,
        "HOP" => 4..=5,
        _ => 3..=3,
    };
    let exprs: Vec<&ast::Expr> = args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    if exprs.len() != args.len() || !arity.contains(&exprs.len()) {
        let count = if arity.start() == arity.end() {
            arity.start().to_string()
        } else {
            format!("{} or {}", arity.start(), arity.end())
        };
        return crate::sql_err!(at, "{function} takes {count} arguments: {usage}");
    }
    let identifier = |e: &ast::Expr, what: &str| -> Result<String> {
        match e {
            ast::Expr::Identifier(ident) => Ok(normalize_ident(ident)),
            other => crate::sql_err!(
                at,
                "{function}: the {what} must be a name, found '{other}' ({usage})"
            ),
        }
    };
    let input = identifier(exprs[0], "first argument (the table)")?;
    let time_column = identifier(exprs[1], "second argument (the event-time column)")?;
    let durations = exprs[2..*arity.start()]
        .iter()
        .map(|e| positive_interval(e, state, at, function))
        .collect::<Result<Vec<i64>>>()?;
    // Windows repeat every slice, so an offset is meaningful only within one slice either way.
    let offset = |slice: i64, what: &str| -> Result<i64> {
        let Some(expr) = exprs.get(*arity.start()) else { return Ok(0) };
        let at = &expr_location(expr, at);
        match interval_nanos(expr, state, at)? {
            Some(n) if n.abs() < slice => Ok(n),
            _ => crate::sql_err!(
                at,
                "{function}: the offset '{expr}' must be a fixed-length interval strictly between minus and plus the {what}; write e.g. INTERVAL '15' MINUTE or INTERVAL '-15' MINUTE ({usage})"
            ),
        }
    };
    let spec = match function {
        "TUMBLE" => {
            WindowSpec::Tumble { size: durations[0], offset: offset(durations[0], "size")? }
        }
        "HOP" => {
            let (slide, size) = (durations[0], durations[1]);
            if size % slide != 0 {
                return crate::sql_err!(
                    at,
                    "HOP: the size must be a multiple of the slide ({usage})"
                );
            }
            WindowSpec::Hop { slide, size, offset: offset(slide, "slide")? }
        }
        _ => WindowSpec::Session { gap: durations[0] },
    };
    Ok(WindowCall {
        relation: format!("__window_{id}"),
        input,
        time_column,
        spec,
        location: at.clone(),
    })
}

/// The length of a positive fixed-length `INTERVAL` in nanoseconds.
fn positive_interval(
    expr: &ast::Expr,
    state: &SessionState,
    at: &Location,
    function: &str,
) -> Result<i64> {
    let at = &expr_location(expr, at);
    match interval_nanos(expr, state, at)? {
        Some(n) if n > 0 => Ok(n),
        _ => crate::sql_err!(
            at,
            "{function}: '{expr}' is not a positive fixed-length interval; write e.g. INTERVAL '1' MINUTE"
        ),
    }
}

/// Where `expr` starts, or `at` when the parser recorded no position.
fn expr_location(expr: &ast::Expr, at: &Location) -> Location {
    let start = expr.span().start;
    if start.line > 0 { Location::new(&at.file, start.line, start.column) } else { at.clone() }
}

/// The length of an `INTERVAL` expression in nanoseconds, of either sign; `None` when it is
/// not a constant interval or has months (they vary in length).
fn interval_nanos(expr: &ast::Expr, state: &SessionState, at: &Location) -> Result<Option<i64>> {
    let planned = plan_expr(state, expr, &DFSchema::empty(), at)?;
    let simplified = state
        .create_physical_expr(planned, &DFSchema::empty())
        .map_err(|e| EngineError::sql(at.clone(), df_message(&e)))?;
    let value = simplified
        .evaluate(&datafusion::arrow::record_batch::RecordBatch::new_empty(std::sync::Arc::new(
            datafusion::arrow::datatypes::Schema::empty(),
        )))
        .ok()
        .and_then(|v| match v {
            datafusion::logical_expr::ColumnarValue::Scalar(s) => Some(s),
            _ => None,
        });
    Ok(match value {
        Some(ScalarValue::IntervalMonthDayNano(Some(v))) if v.months == 0 => i64::from(v.days)
            .checked_mul(86_400_000_000_000)
            .and_then(|d| d.checked_add(v.nanoseconds)),
        Some(ScalarValue::IntervalDayTime(Some(v))) => {
            Some(i64::from(v.days) * 86_400_000_000_000 + i64::from(v.milliseconds) * 1_000_000)
        }
        _ => None,
    })
}

/// Whether a logical expression is a plain reference to a window bound column.
pub fn window_bound(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Column(c) if c.name == crate::time::window::WINDOW_START => {
            Some(crate::time::window::WINDOW_START)
        }
        Expr::Column(c) if c.name == crate::time::window::WINDOW_END => {
            Some(crate::time::window::WINDOW_END)
        }
        _ => None,
    }
}
