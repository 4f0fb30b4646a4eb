//! What a continuous query cannot do, found in its plan and reported at the clause at fault.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast;

use super::window::window_bound;
use crate::error::{Location, Result};

/// Refuses what cannot run on an unbounded stream, saying why.
pub(super) fn refuse_unstreamable(plan: &LogicalPlan, at: &Location) -> Result<()> {
    let mut problem = None;
    plan.apply(|node| {
        problem = match node {
            LogicalPlan::Sort(_) => Some("ORDER BY over a stream never finishes: the sort would wait for the end of an unbounded input. Remove it (windows are written as they are computed; order by a window column when reading the sink)"),
            LogicalPlan::Limit(_) => Some("LIMIT is not supported in a continuous query"),
            LogicalPlan::Window(_) => Some("OVER (...) window functions are not supported in a continuous query; use TUMBLE, HOP or SESSION with GROUP BY"),
            LogicalPlan::Join(_) => Some("joins are not supported yet in a continuous query"),
            LogicalPlan::Union(_) => Some("UNION is not supported yet in a continuous query"),
            LogicalPlan::Distinct(_) => Some("DISTINCT over a stream is an aggregate without a window; group by window_start, window_end of TUMBLE, HOP or SESSION instead"),
            LogicalPlan::RecursiveQuery(_) => Some("recursive queries are not supported in a continuous query"),
            _ => None,
        };
        Ok(if problem.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    match problem {
        Some(message) => crate::sql_err!(at, "{message}"),
        None => Ok(()),
    }
}

/// A clause of a query whose position an error can point at.
#[derive(Debug, Clone, Copy)]
pub(super) enum Clause {
    OrderBy,
    GroupBy,
}

/// Where `clause` starts in `query` (its first expression), else `fallback`.
pub(super) fn clause_location(query: &ast::Query, clause: Clause, fallback: &Location) -> Location {
    use datafusion::sql::sqlparser::ast::Spanned;
    let span = match clause {
        Clause::OrderBy => query.order_by.as_ref().map(|o| o.span()),
        Clause::GroupBy => match query.body.as_ref() {
            ast::SetExpr::Select(select) => match &select.group_by {
                ast::GroupByExpr::Expressions(exprs, _) => exprs.first().map(|e| e.span()),
                ast::GroupByExpr::All(_) => None,
            },
            _ => None,
        },
    };
    match span {
        Some(span) if span.start.line > 0 => {
            Location::new(&fallback.file, span.start.line, span.start.column)
        }
        _ => fallback.clone(),
    }
}

/// The tables `plan` scans.
pub(super) fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut scans = vec![];
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("the visitor never fails");
    scans
}

/// Whether `plan` aggregates.
pub(super) fn has_aggregate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_)))).unwrap_or(false)
}

/// The nodes allowed around the aggregate: those that act row by row.
pub(super) fn is_row_by_row(node: &LogicalPlan) -> bool {
    matches!(
        node,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::TableScan(_)
    )
}

/// Whether `plan` filters on `window_start` or `window_end` before aggregating.
pub(super) fn filters_on_window_bounds(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(f) => f
                .predicate
                .column_refs()
                .iter()
                .any(|c| window_bound(&Expr::Column((*c).clone())).is_some()),
            _ => false,
        })
    })
    .unwrap_or(false)
}
