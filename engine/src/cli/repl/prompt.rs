//! The interactive prompt: a line editor with history, completion and multi-line statements.

use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};

use super::complete::ReplHelper;
use super::{Flow, Repl};

/// Reads and runs what is typed until `\q` or Ctrl-D. Ctrl-C clears the line being typed.
pub async fn interact(repl: &mut Repl) -> anyhow::Result<()> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)?
        .build();
    let mut editor: Editor<ReplHelper, FileHistory> = Editor::with_config(config)?;
    let names = repl.session.names().await;
    println!(
        "engine repl: {} tables and views; statements end with ';'. \\? for help, \\q to quit.",
        names.len()
    );
    editor.set_helper(Some(ReplHelper::new(names)));
    let history = history_file();
    if let Some(path) = &history {
        // A first session has no history yet.
        let _missing = editor.load_history(path);
    }
    loop {
        match tokio::task::block_in_place(|| editor.readline("engine> ")) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => {
                editor.add_history_entry(text.as_str())?;
                if let Some(path) = &history {
                    save_history(&mut editor, path);
                }
                if repl.run_text(&text).await == Flow::Quit {
                    break;
                }
                let names = repl.session.names().await;
                if let Some(helper) = editor.helper_mut() {
                    helper.set_names(names);
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// `$XDG_STATE_HOME/engine/repl_history`, else `~/.engine_repl_history`; none without either.
fn history_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty());
    match state {
        Some(dir) => Some(PathBuf::from(dir).join("engine").join("repl_history")),
        None => {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".engine_repl_history"))
        }
    }
}

/// Saves the history after every statement, so that a killed session keeps it. A history that
/// cannot be written is not worth stopping for.
fn save_history(editor: &mut Editor<ReplHelper, FileHistory>, path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _unwritable = std::fs::create_dir_all(dir);
    }
    if let Err(err) = editor.save_history(path) {
        tracing::debug!(path = %path.display(), error = %err, "cannot save the REPL history");
    }
}
