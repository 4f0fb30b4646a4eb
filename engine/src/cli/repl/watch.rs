//! A live windowed query at the prompt: its windows redrawn in place after every micro-batch
//! until Ctrl-C.

use std::future::Future;
use std::io::Write;

use super::render::table;
use crate::repl::{Failure, Following, LiveQuery};

/// At most this many windows are drawn: the most recently updated ones.
const MAX_DRAWN: usize = 30;

/// Follows `live`'s input, redrawing its windows on `out` after every micro-batch, until `stop`
/// completes.
pub async fn watch(
    live: LiveQuery,
    stop: impl Future<Output = ()>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut following = live.follow().await?;
    let mut drawn_lines = 0;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            stepped = following.step() => stepped?,
        }
        let frame = frame(&following)?;
        if drawn_lines > 0 {
            // Back to where the last frame started, and clear it.
            write!(out, "\x1b[{drawn_lines}A\x1b[J")?;
        }
        writeln!(out, "{frame}")?;
        out.flush()?;
        drawn_lines = frame.lines().count();
    }
    writeln!(out, "stopped after {} micro-batches", following.micro_batches())?;
    Ok(())
}

/// The windows as a table, then a status line.
fn frame(following: &Following) -> Result<String, Failure> {
    let (rows, hidden) = following.recent_windows(MAX_DRAWN)?;
    let count = following.window_count();
    let shown = if hidden > 0 {
        format!("the {MAX_DRAWN} most recently updated of {count} windows")
    } else {
        format!("{count} windows")
    };
    Ok(format!(
        "{}\n{shown} · {} rows read · {} micro-batches · Ctrl-C stops",
        table(&rows)?,
        following.rows_read(),
        following.micro_batches()
    ))
}
