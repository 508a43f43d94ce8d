//! The `sandtrace` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use sandtrace::{
    cli::{Cli, Command},
    exit,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => status(sandtrace::run(&args.to_options())),
        Command::Policy(cmd) => sandtrace::policy::command::run_policy_command(&cmd.to_request()),
        Command::Probe => {
            print!("{}", sandtrace::plan::KernelFeatures::probe(true).report());
            ExitCode::SUCCESS
        }
        Command::Learn(args) => ExitCode::from(sandtrace::learn::command(&args) as u8),
        Command::Report(args) => sandtrace::report::command(&args),
        Command::Export(args) => sandtrace::output::capture::command(&args),
        Command::Completions { shell } => {
            sandtrace::cli::write_completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { command } => {
            match sandtrace::cli::write_man_page(&command, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sandtrace: error: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
    }
}

/// CMD's exit status (truncated as a shell would), or the failure's.
fn status(result: Result<i32, exit::Error>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_status())
        }
    }
}
