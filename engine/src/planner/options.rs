//! Pipeline options: defaults, `SET` statements and command-line overrides.

use std::time::Duration;

use super::redirect::Redirect;
use crate::error::{Location, Result};
use crate::options::parse_duration;
use crate::sql::SetOption;

/// Options that govern how queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Time between micro-batches (`SET 'trigger-interval'`).
    pub trigger_interval: Duration,
    /// How far behind the watermark an event may be and still count (`SET 'allowed-lateness'`).
    pub allowed_lateness: Duration,
    /// A partition without rows for this long stops holding the watermark back
    /// (`SET 'watermark.idle-timeout'`; `'0'` disables).
    pub idle_timeout: Option<Duration>,
    /// At most this many rows per micro-batch, shared fairly among the source's partitions
    /// (`SET 'source.max-rows-per-batch'`): memory is bounded whatever the number of partitions.
    pub max_rows_per_batch: usize,
    /// Tables read from or written to files instead of their connectors (`--replay`,
    /// `--sink-dir`: backtests).
    pub redirect: Redirect,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            trigger_interval: Duration::from_secs(1),
            allowed_lateness: Duration::ZERO,
            idle_timeout: Some(Duration::from_secs(30)),
            max_rows_per_batch: 100_000,
            redirect: Redirect::default(),
        }
    }
}

/// The keys `SET` accepts.
pub const SET_KEYS: &[&str] = &[
    "trigger-interval",
    "allowed-lateness",
    "watermark.idle-timeout",
    "source.max-rows-per-batch",
];

/// Applies `SET key = value` to `options`.
pub fn apply_set(options: &mut PipelineOptions, set: &SetOption, at: &Location) -> Result<()> {
    let duration = || {
        parse_duration(&set.value).map_err(|m| {
            crate::error::EngineError::sql(at.clone(), format!("SET '{}': {m}", set.key))
        })
    };
    match set.key.as_str() {
        "trigger-interval" => {
            let d = duration()?;
            if d.is_zero() {
                return crate::sql_err!(at, "SET 'trigger-interval' must be greater than 0");
            }
            options.trigger_interval = d;
        }
        "allowed-lateness" => options.allowed_lateness = duration()?,
        "watermark.idle-timeout" => {
            let d = duration()?;
            options.idle_timeout = (!d.is_zero()).then_some(d);
        }
        // The former per-partition bound, now the bound of the whole micro-batch.
        "source.max-rows-per-batch" | "source.max-rows-per-partition" => {
            match set.value.trim().parse::<usize>() {
                Ok(n) if n > 0 => options.max_rows_per_batch = n,
                _ => {
                    return crate::sql_err!(
                        at,
                        "SET '{}' needs a positive integer, found '{}'",
                        set.key,
                        set.value
                    );
                }
            }
        }
        other => {
            return crate::sql_err!(
                at,
                "unknown option '{other}' in SET; accepted: {}",
                SET_KEYS.join(", ")
            );
        }
    }
    Ok(())
}
