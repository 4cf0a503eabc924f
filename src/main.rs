//! The `keywarden` binary: all printing and exit codes live in `cli`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
