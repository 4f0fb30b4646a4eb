//! `engine repl`: a SQL prompt over the tables and views of the query files.
//!
//! On a terminal it is interactive: history, statements over several lines, tab completion,
//! `\timing`, and windowed queries watched live until Ctrl-C. With `-e` or input that is not a
//! terminal it runs the statements, prints their results in `--format`, and exits with status 1
//! if one failed. What statements do is [`crate::repl`]'s; this module reads the input and
//! prints.

mod complete;
mod input;
mod prompt;
mod render;
mod watch;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use self::input::{Command, Input};
pub use self::render::Format;
use self::render::{error_report, timing, write_rows};
use super::RedirectArgs;
use crate::catalog::SchemaSource;
use crate::planner::{Pipeline, PipelineOptions};
use crate::repl::{Failure, Outcome, Rows, Session};
use crate::runtime::load::load_and_plan;
use crate::sql::process_env;

/// `engine repl` options.
#[derive(Debug, clap::Args)]
pub struct ReplArgs {
    /// Directory of .sql files whose tables and views can be queried.
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,
    /// Run these statements (several separated by `;`; the flag repeats) and exit.
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    pub execute: Vec<String>,
    /// How rows are printed.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Tables read from files instead of their connectors (a backtest's input and output).
    #[command(flatten)]
    pub redirect: RedirectArgs,
}

const HELP: &str = "\
Statements end with ';' and may span lines; Tab completes keywords, tables and columns.
  SHOW TABLES, \\d      list the tables and views
  DESCRIBE t, \\d t     the columns of a table or view
  EXPLAIN SELECT ...   how a statement runs
  \\timing              print how long each statement takes (on/off)
  \\q, Ctrl-D           quit
A SELECT over TUMBLE, HOP or SESSION runs live: its windows are redrawn after every
micro-batch until Ctrl-C.";

/// Runs the REPL.
pub async fn repl(args: ReplArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, errors) = match &args.queries {
        Some(dir) => {
            let options = PipelineOptions {
                redirect: args.redirect.redirect(),
                ..PipelineOptions::default()
            };
            load_and_plan(dir, &process_env, &options, &SchemaSource::default()).await
        }
        None => (Pipeline::default(), vec![]),
    };
    for err in &errors {
        eprintln!("warning: {err}");
    }
    let (session, problems) = Session::open(pipeline).await;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    let interactive = args.execute.is_empty() && std::io::stdin().is_terminal();
    let mut repl = Repl { session, format: args.format, timing: false, interactive, failed: false };
    if interactive {
        prompt::interact(&mut repl).await?;
    } else if args.execute.is_empty() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        repl.run_text(&text).await;
    } else {
        for text in &args.execute {
            if repl.run_text(text).await == Flow::Quit {
                break;
            }
        }
    }
    Ok(if repl.failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Whether to go on reading input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// A session and how its results are shown.
struct Repl {
    session: Session,
    format: Format,
    timing: bool,
    interactive: bool,
    /// A statement or command failed.
    failed: bool,
}

impl Repl {
    /// Runs every command and statement of `text`, stopping at `\q`.
    async fn run_text(&mut self, text: &str) -> Flow {
        for input in input::split(text) {
            if self.run(input).await == Flow::Quit {
                return Flow::Quit;
            }
        }
        Flow::Continue
    }

    async fn run(&mut self, input: Input) -> Flow {
        let started = Instant::now();
        match input {
            Input::Command(Command::Quit) => return Flow::Quit,
            Input::Command(Command::Timing) => {
                self.timing = !self.timing;
                self.note(&format!("Timing is {}.", if self.timing { "on" } else { "off" }));
            }
            Input::Command(Command::Help) => println!("{HELP}"),
            Input::Command(Command::Unknown(command)) => {
                eprintln!("error: unknown command {command}; \\? lists the commands");
                self.failed = true;
            }
            Input::Command(Command::Describe(table)) => {
                let rows = match &table {
                    None => self.session.list().await,
                    Some(name) => self.session.describe(name).await,
                };
                let text = format!("\\d {}", table.unwrap_or_default());
                self.show(&text, started, rows.map(Outcome::Rows)).await;
            }
            Input::Sql(sql) => {
                let outcome = if self.interactive {
                    tokio::select! {
                        outcome = self.session.execute(&sql) => outcome,
                        () = ctrl_c() => Err(Failure { position: None, message: "cancelled".into() }),
                    }
                } else {
                    self.session.execute(&sql).await
                };
                self.show(&sql, started, outcome).await;
            }
        }
        Flow::Continue
    }

    /// Prints what `statement` did (rows on standard output, a failure on standard error),
    /// running it first when it is a live query.
    async fn show(&mut self, statement: &str, started: Instant, outcome: Result<Outcome, Failure>) {
        let mut out = std::io::stdout();
        let shown = match outcome {
            Ok(Outcome::Rows(rows)) => self.print(&rows),
            Ok(Outcome::Done(message)) => {
                self.note(&message);
                Ok(())
            }
            Ok(Outcome::Live(live)) if self.interactive => {
                watch::watch(*live, ctrl_c(), &mut out).await
            }
            Ok(Outcome::Live(live)) => match live.run_to_end().await {
                Ok(rows) => self.print(&rows),
                Err(failure) => Err(failure),
            },
            Err(failure) => Err(failure),
        };
        if let Err(failure) = shown {
            eprintln!("{}", error_report(statement, &failure));
            self.failed = true;
        }
        if self.timing {
            self.note(&timing(started.elapsed()));
        }
    }

    /// A message for people: on standard output next to tables, on standard error when the
    /// output is CSV or JSON for programs.
    fn note(&self, text: &str) {
        if self.format == Format::Table {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }

    fn print(&self, rows: &Rows) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        write_rows(&mut out, rows, self.format)?;
        out.flush()?;
        Ok(())
    }
}

/// Completes at the next Ctrl-C.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling here: never interrupted.
        std::future::pending::<()>().await;
    }
}
