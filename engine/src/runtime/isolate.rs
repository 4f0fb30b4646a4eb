//! Keeps one bad row from failing the rows around it: an evaluation over batches runs
//! vectorised, and only when it fails on a data error (a cast, arithmetic or a function failing
//! on a value) are the rows it fails on found, by bisection, and left out. The same helper serves
//! every stage: computed columns, the watermark, the query's plans, the sink mapping.

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use futures::future::BoxFuture;

use crate::error::{EngineError, ErrorClass, Result};

/// A row of a list of batches: the batch's index and the row's index in it.
pub type RowId = (usize, usize);

/// What [`isolate`] found.
#[derive(Debug)]
pub struct Isolated<T> {
    /// The evaluation over the good rows.
    pub value: T,
    /// The rows the evaluation fails on, each with its error, in row order.
    pub rejected: Vec<(RowId, String)>,
    /// Per batch, the rows kept (their indexes in the batch), or `None` when all were kept.
    pub kept: Vec<Option<Vec<usize>>>,
}

impl<T> Isolated<T> {
    /// All rows were good.
    fn all_good(value: T, batches: usize) -> Self {
        Self { value, rejected: vec![], kept: vec![None; batches] }
    }
}

/// Evaluates `eval` over `batches`; on a data error, evaluates halves of the rows until every
/// failing row is found alone, then evaluates the other rows. Errors of any other class are
/// returned as they are. A row-wise evaluation is assumed: the result over some rows does not
/// depend on the others.
pub async fn isolate<'a, T>(
    batches: &[RecordBatch],
    mut eval: impl FnMut(Vec<RecordBatch>) -> BoxFuture<'a, Result<T>>,
) -> Result<Isolated<T>> {
    let failed = match eval(batches.to_vec()).await {
        Ok(value) => return Ok(Isolated::all_good(value, batches.len())),
        Err(err) if err.class() == ErrorClass::Data => err,
        Err(err) => return Err(err),
    };
    let rows: Vec<RowId> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
        .collect();
    let mut rejected = vec![];
    // Ranges of `rows` known to fail, split until each failing row stands alone.
    let mut failing = vec![(0..rows.len(), failed)];
    while let Some((range, err)) = failing.pop() {
        if range.len() == 1 {
            rejected.push((rows[range.start], row_error(&err)));
            continue;
        }
        let middle = range.start + range.len() / 2;
        // The second half first on the stack, so rows are found in order.
        for half in [middle..range.end, range.start..middle] {
            match eval(select(batches, &rows[half.clone()])?).await {
                Ok(_) => {}
                Err(err) if err.class() == ErrorClass::Data => failing.push((half, err)),
                Err(err) => return Err(err),
            }
        }
    }
    rejected.sort_unstable_by_key(first);
    let (kept, good) = split(batches, &rows, &rejected);
    let value = eval(select(batches, &good)?).await.map_err(|err| {
        EngineError::Internal(format!(
            "rows that each evaluate alone fail together ({} rows left out): {err}",
            rejected.len()
        ))
    })?;
    Ok(Isolated { value, rejected, kept })
}

/// The row of a rejection.
fn first(rejected: &(RowId, String)) -> RowId {
    rejected.0
}

/// The rows kept of each batch (`None`: all of them) and the good rows, given the rejected
/// ones (in row order).
fn split(
    batches: &[RecordBatch],
    rows: &[RowId],
    rejected: &[(RowId, String)],
) -> (Vec<Option<Vec<usize>>>, Vec<RowId>) {
    let mut kept: Vec<Vec<usize>> =
        batches.iter().map(|b| Vec::with_capacity(b.num_rows())).collect();
    let mut good = Vec::with_capacity(rows.len() - rejected.len());
    let mut bad = rejected.iter().map(first).peekable();
    for &(b, r) in rows {
        if bad.next_if_eq(&(b, r)).is_none() {
            kept[b].push(r);
            good.push((b, r));
        }
    }
    let kept = kept
        .into_iter()
        .zip(batches)
        .map(|(rows, batch)| (rows.len() < batch.num_rows()).then_some(rows))
        .collect();
    (kept, good)
}

/// The error of one row as a line of text.
fn row_error(err: &EngineError) -> String {
    match err {
        EngineError::Execution(df) => crate::catalog::df_message(df),
        other => other.to_string(),
    }
}

/// `rows` (in order) as batches: one per source batch that has some, each with its rows taken.
fn select(batches: &[RecordBatch], rows: &[RowId]) -> Result<Vec<RecordBatch>> {
    let mut selected = vec![];
    let mut rest = rows;
    while let Some(&(batch, _)) = rest.first() {
        let n = rest.iter().take_while(|(b, _)| *b == batch).count();
        let indexes = UInt32Array::from_iter_values(rest[..n].iter().map(|&(_, r)| r as u32));
        let taken = take_record_batch(&batches[batch], &indexes)
            .map_err(|e| EngineError::Internal(format!("selecting rows: {e}")))?;
        selected.push(taken);
        rest = &rest[n..];
    }
    Ok(selected)
}

/// Rows `kept` of `batch` (all when `None`).
pub fn keep(batch: &RecordBatch, kept: Option<&[usize]>) -> Result<RecordBatch> {
    let Some(kept) = kept else { return Ok(batch.clone()) };
    let indexes = UInt32Array::from_iter_values(kept.iter().map(|&r| r as u32));
    take_record_batch(batch, &indexes)
        .map_err(|e| EngineError::Internal(format!("keeping rows: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::error::DataFusionError;

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    /// Sums the values; a negative value is a data error.
    async fn sum(batches: Vec<RecordBatch>) -> Result<i64> {
        let mut total = 0;
        for b in &batches {
            for &v in b.column(0).as_primitive::<Int64Type>().values() {
                if v < 0 {
                    return Err(DataFusionError::Execution(format!("negative: {v}")).into());
                }
                total += v;
            }
        }
        Ok(total)
    }

    #[tokio::test]
    async fn bad_rows_are_found_and_the_rest_evaluated() {
        let batches = [batch(&[1, -2, 3, 4]), batch(&[5]), batch(&[-6, 7, -8])];
        let mut calls = 0;
        let found = isolate(&batches, |b| {
            calls += 1;
            Box::pin(sum(b))
        })
        .await
        .unwrap();
        assert_eq!(found.value, 1 + 3 + 4 + 5 + 7);
        let rows: Vec<RowId> = found.rejected.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, vec![(0, 1), (2, 0), (2, 2)]);
        assert_eq!(found.rejected[0].1, "negative: -2");
        assert_eq!(found.kept, vec![Some(vec![0, 2, 3]), None, Some(vec![1])]);
        assert!(calls < 20, "{calls} evaluations");
    }

    #[tokio::test]
    async fn good_input_is_evaluated_once() {
        let batches = [batch(&[1, 2]), batch(&[3])];
        let mut calls = 0;
        let found = isolate(&batches, |b| {
            calls += 1;
            Box::pin(sum(b))
        })
        .await
        .unwrap();
        assert_eq!((found.value, calls), (6, 1));
        assert!(found.rejected.is_empty());
    }

    #[tokio::test]
    async fn other_errors_are_not_bisected() {
        let batches = [batch(&[1, 2])];
        let mut calls = 0;
        let err = isolate(&batches, |_| -> BoxFuture<'_, Result<()>> {
            calls += 1;
            Box::pin(async { Err(EngineError::Internal("broken".into())) })
        })
        .await
        .unwrap_err();
        assert_eq!((err.class(), calls), (ErrorClass::Internal, 1));
    }
}
