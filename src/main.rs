//! `cairn`: CLI dispatch only. Each command lives in `cairn::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cairn::cli;
use cairn::config::master::DEFAULT_PATH;

#[derive(Parser)]
#[command(name = "cairn", version = cli::version(), about = "A hardened process supervisor (lithos-compatible)")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check configs: all sandboxes, one sandbox with another process
    /// config, or one container config inside an image.
    Check {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Check only this sandbox.
        #[arg(long)]
        sandbox: Option<String>,
        /// Use FILE as the sandbox's process config (needs --sandbox).
        #[arg(long = "alternate-config", value_name = "FILE", requires = "sandbox")]
        alternate_config: Option<PathBuf>,
        /// Check one container config in an image: IMAGE_DIR CONFIG_PATH.
        #[arg(long, num_args = 2, value_names = ["IMAGE_DIR", "CONFIG_PATH"],
              conflicts_with_all = ["sandbox", "alternate_config"])]
        container: Option<Vec<String>>,
    },
    /// Run a Command entry in a fresh container; exit with its status.
    Cmd {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        sandbox: String,
        name: String,
        /// Appended to the configured arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let code = match args.command {
        Command::Check {
            config,
            sandbox,
            alternate_config,
            container,
        } => match container {
            Some(c) => cli::check::container(PathBuf::from(&c[0]).as_path(), &c[1]),
            None => cli::check::all(&config, sandbox.as_deref(), alternate_config.as_deref()),
        },
        Command::Cmd {
            config,
            sandbox,
            name,
            args,
        } => cli::cmd::run(&config, &sandbox, &name, &args),
    };
    ExitCode::from(code)
}
