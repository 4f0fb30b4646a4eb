//! Refuses comparisons between text and numbers. DataFusion would plan
//! `user_id != 123` over a TEXT column as a cast of every value to a number, which fails at run
//! time on the first value that is not one (`''`); `engine check` says so instead, with the
//! position and the explicit forms to write.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};

use crate::error::{EngineError, Location, Result};

/// Fails on the first expression of `plan` (as planned from SQL, before coercion) that mixes
/// text and a number; `at` is the statement, for expressions without a position.
pub(super) fn refuse_text_number_mixes(plan: &LogicalPlan, at: &Location) -> Result<()> {
    let mut found = None;
    plan.apply(|node| {
        let inputs = node.inputs();
        let [input] = inputs.as_slice() else { return Ok(TreeNodeRecursion::Continue) };
        let schema = input.schema();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                found = mixed(e, schema, at);
                Ok(if found.is_some() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    })?;
    found.map_or(Ok(()), Err)
}

/// The error for `expr` when it compares or combines text with a number.
fn mixed(expr: &Expr, schema: &DFSchema, at: &Location) -> Option<EngineError> {
    let pairs: Vec<(&Expr, &Expr, String)> = match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if casts_operands(*op) => {
            vec![(left, right, op.to_string())]
        }
        Expr::Between(Between { expr, low, high, .. }) => {
            vec![(expr, low, "BETWEEN".into()), (expr, high, "BETWEEN".into())]
        }
        Expr::InList(list) => {
            list.list.iter().map(|item| (&*list.expr, item, "IN".into())).collect()
        }
        _ => return None,
    };
    for (left, right, op) in pairs {
        let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else { continue };
        let (text, number, number_type) = if is_text(&l) && r.is_numeric() {
            (left, right, r)
        } else if l.is_numeric() && is_text(&r) {
            (right, left, l)
        } else {
            continue;
        };
        // A text literal is converted once, when the query is planned.
        if matches!(text, Expr::Literal(..)) {
            continue;
        }
        let text_sql = sql(text);
        let sql_type = sql_type(&number_type);
        let as_text = match number {
            Expr::Literal(value, _) => format!("{text_sql} {op} '{value}'"),
            other => format!("{text_sql} {op} CAST({} AS TEXT)", sql(other)),
        };
        return Some(EngineError::sql(
            position(text).map_or_else(|| at.clone(), |(l, c)| Location::new(&at.file, l, c)),
            format!(
                "{text_sql} is text and {} is a number: `{op}` would cast every value of {text_sql} to {sql_type} while the query runs, and fail on the first one that is not a number; compare text with text ({as_text}) or convert explicitly: TRY_CAST({text_sql} AS {sql_type}) (NULL where it is not a number)",
                sql(number),
            ),
        ));
    }
    None
}

/// Comparisons: the operators DataFusion coerces text to a number for (it refuses arithmetic
/// between text and numbers itself).
fn casts_operands(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// `expr` as the user would write it: a column by its name.
fn sql(expr: &Expr) -> String {
    match expr {
        Expr::Column(column) => column.name.clone(),
        Expr::Literal(value, _) => value.to_string(),
        other => other.to_string(),
    }
}

/// Where the first column `expr` reads is written, as (line, column).
fn position(expr: &Expr) -> Option<(u64, u64)> {
    let mut found = None;
    expr.apply(|e| {
        if let Expr::Column(column) = e
            && let Some(span) = column.spans().first()
            && span.start.line > 0
        {
            found = Some((span.start.line, span.start.column));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("the visitor never fails");
    found
}

/// The SQL name of a numeric Arrow type, for the suggested CAST.
fn sql_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "BIGINT UNSIGNED".into()
        }
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        other => other.to_string(),
    }
}
