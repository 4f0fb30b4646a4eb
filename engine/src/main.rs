//! The `engine` binary: parse the command line, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc keeps freed pages for reuse (for seconds): with the system allocator, every
/// micro-batch's large buffers went back to the kernel and came back as freshly zeroed pages
/// (about a fifth of the run time in page faults).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = engine::cli::Cli::parse();
    match engine::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
