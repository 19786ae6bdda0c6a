//! `cairn`: CLI dispatch only. Each command lives in `cairn::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cairn::cli;
use cairn::cli::request::timeout_of;
use cairn::config::LogLevel;
use cairn::config::master::DEFAULT_PATH;
use cairn::tree::request::Kind;

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

/// `--wait [--timeout S]`.
#[derive(clap::Args)]
struct Wait {
    /// Block until the tree has done it: every instance runs its wanted
    /// config and is ready (exit 0), a rollout stopped or a config was
    /// refused (exit 1), or the timeout passed (exit 124).
    #[arg(long)]
    wait: bool,
    /// Give up after S seconds (default 300; 0: no limit).
    #[arg(long, value_name = "S", requires = "wait", value_parser = parse_secs)]
    timeout: Option<f64>,
}

fn parse_days(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of days")),
    }
}

fn parse_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::parse(s).ok_or_else(|| format!("{s:?} is not one of error, warn, info, debug, trace"))
}

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
    /// The supervisor: keep every configured instance running.
    Tree {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Log to stderr instead of the log file, syslog or the journal.
        #[arg(long)]
        log_stderr: bool,
        /// error, warn, info, debug or trace (overrides master.yaml).
        #[arg(long, value_parser = parse_level)]
        log_level: Option<LogLevel>,
    },
    /// Show what runs.
    Ps {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// One JSON object (the format is documented in docs/operations.md).
        #[arg(long)]
        json: bool,
        /// Only the instances of this sandbox.
        #[arg(long, value_name = "NAME")]
        sandbox: Option<String>,
        /// Only the instances in this state (starting, running, stopping,
        /// backoff, failed).
        #[arg(long, value_name = "STATE", value_parser = ["starting", "running", "stopping", "backoff", "failed"])]
        state: Option<String>,
        /// Show the state, then one line per change as it happens, until
        /// Ctrl-C (exit 0) or the tree's end (exit 1).
        #[arg(long)]
        watch: bool,
    },
    /// Check FILE as SANDBOX's process config, install it, reload.
    Switch {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        #[command(flatten)]
        wait: Wait,
        sandbox: String,
        file: PathBuf,
    },
    /// Ask the running tree to re-read its configs (SIGHUP).
    Reload {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        #[command(flatten)]
        wait: Wait,
    },
    /// Ask the running tree to replace itself with the installed binary (SIGQUIT).
    Upgrade {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        #[command(flatten)]
        wait: Wait,
    },
    /// Restart SANDBOX, SANDBOX/PROCESS or SANDBOX/PROCESS.N, one instance
    /// at a time, each next one once the last is ready (no config change).
    Restart {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Block until every instance restarted and is ready.
        #[arg(long)]
        wait: bool,
        /// Give up after S seconds, exit 124 (default 300; 0: no limit).
        #[arg(long, value_name = "S", value_parser = parse_secs)]
        timeout: Option<f64>,
        target: String,
    },
    /// Remove images that no config uses, nothing runs in and the config
    /// log has not shown in use within --keep-days.
    Clean {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// List every image with what would happen to it and why; remove
        /// nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep images the config log shows in use within D days (default:
        /// every image the log names).
        #[arg(long, value_name = "D", value_parser = parse_days)]
        keep_days: Option<f64>,
        /// Keep the N newest (by mtime) unused images of each image-dir.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_recent: usize,
    },
    /// A knot started by exec (internal): only with CAIRN_KNOT_EXEC=1 set
    /// for the tree or cmd, which otherwise fork their knots.
    #[command(hide = true)]
    Knot {
        /// fd holding the instance spec and the knot's context (JSON).
        #[arg(long)]
        spec_fd: i32,
    },
    /// Write the man pages (DIR/man1) and the bash, zsh and fish
    /// completions (DIR/completions) of this CLI (internal: for packaging,
    /// scripts/build-deb).
    #[command(hide = true)]
    Assets { dir: PathBuf },
    /// Encrypt a secret for secret-environ as lithos_crypt does (and
    /// decrypt or check one).
    Crypt {
        #[command(subcommand)]
        action: Crypt,
    },
    /// Run a command inside a running instance (its namespaces, cgroup,
    /// user, system call filter); exit with its status.
    Exec {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Run as UID (and GID) instead of the instance's user; the
        /// sandbox must allow them.
        #[arg(long, value_name = "UID[:GID]")]
        user: Option<String>,
        /// Give the command a new terminal (of the container), sized and
        /// fed as this one.
        #[arg(short = 't')]
        tty: bool,
        /// SANDBOX/PROCESS.N
        instance: String,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
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

#[derive(Subcommand)]
enum Crypt {
    /// Encrypt DATA (or standard input, less one trailing newline) for
    /// the public key and the namespace.
    Encrypt {
        /// The OpenSSH ed25519 public key (the sandbox key's .pub).
        #[arg(short = 'k', long = "key-file", value_name = "KEY.pub")]
        key: PathBuf,
        /// The secrets namespace (one of the sandbox's secrets-namespaces
        /// or the entry's extra-secrets-namespaces; default "").
        #[arg(short = 'n', long, default_value = "")]
        namespace: String,
        /// The secret (visible in `ps` while this runs: prefer stdin).
        #[arg(short = 'd', long)]
        data: Option<String>,
    },
    /// Decrypt a value with the private key (for debugging): the secret
    /// on stdout, its namespace on stderr.
    Decrypt {
        /// The OpenSSH ed25519 private key.
        #[arg(short = 'i', long = "key-file", value_name = "KEY")]
        key: PathBuf,
        /// The value (default: standard input).
        #[arg(short = 'd', long)]
        data: Option<String>,
    },
    /// Whether a value was encrypted for the public key.
    CheckKey {
        #[arg(short = 'k', long = "key-file", value_name = "KEY.pub")]
        key: PathBuf,
        #[arg(short = 'd', long)]
        data: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse_from(cli::cmd::workload_args_last(std::env::args_os().collect()));
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
        Command::Exec {
            config,
            user,
            tty,
            instance,
            command,
        } => cli::exec::run(&cli::exec::Options {
            master: &config,
            user: user.as_deref(),
            tty,
            instance: &instance,
            argv: &command,
        }),
        Command::Tree {
            config,
            log_stderr,
            log_level,
        } => cairn::tree::run::run(cairn::tree::run::Options {
            launch: cairn::knot::launch,
            join: cairn::knot::join::JOINER,
            config,
            log_stderr,
            log_level,
        }),
        Command::Assets { dir } => assets(&dir),
        Command::Crypt { action } => match action {
            Crypt::Encrypt {
                key,
                namespace,
                data,
            } => cli::crypt::encrypt(&key, &namespace, data),
            Crypt::Decrypt { key, data } => cli::crypt::decrypt(&key, data),
            Crypt::CheckKey { key, data } => cli::crypt::check_key(&key, &data),
        },
        Command::Clean {
            config,
            dry_run,
            keep_days,
            keep_recent,
        } => cli::clean::run(
            &config,
            &cli::clean::Options {
                dry_run,
                keep_days,
                keep_recent,
            },
        ),
        Command::Knot { spec_fd } => cairn::knot::exec_main(spec_fd).clamp(0, 255) as u8,
        Command::Ps {
            config,
            json,
            sandbox,
            state,
            watch,
        } => {
            let filter = cli::ps::Filter {
                sandbox: sandbox.as_deref(),
                state: state.as_deref(),
            };
            if watch {
                cli::ps_watch::run(&config, json, &filter)
            } else {
                cli::ps::run(&config, json, &filter)
            }
        }
        Command::Switch {
            config,
            wait,
            sandbox,
            file,
        } => cli::switch::run(
            &config,
            &sandbox,
            &file,
            wait.wait,
            timeout_of(wait.timeout),
        ),
        Command::Reload { config, wait } if wait.wait => {
            cli::request::run(&config, Kind::Reload, None, true, timeout_of(wait.timeout))
        }
        Command::Reload { config, .. } => cli::signal::send(&config, libc::SIGHUP, "reload"),
        Command::Upgrade { config, wait } if wait.wait => {
            cli::request::run(&config, Kind::Upgrade, None, true, timeout_of(wait.timeout))
        }
        Command::Upgrade { config, .. } => cli::signal::send(&config, libc::SIGQUIT, "upgrade"),
        Command::Restart {
            config,
            wait,
            timeout,
            target,
        } => cli::request::run(
            &config,
            Kind::Restart,
            Some(&target),
            wait,
            timeout_of(timeout),
        ),
    };
    ExitCode::from(code)
}

/// `cairn assets DIR`: man pages from the CLI definition (one page for
/// `cairn` and one for each command), and shell completions.
fn assets(dir: &std::path::Path) -> u8 {
    use clap::CommandFactory;
    let write = || -> std::io::Result<()> {
        let man = dir.join("man1");
        let completions = dir.join("completions");
        std::fs::create_dir_all(&man)?;
        std::fs::create_dir_all(&completions)?;
        clap_mangen::generate_to(Args::command(), &man)?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            clap_complete::generate_to(shell, &mut Args::command(), "cairn", &completions)?;
        }
        Ok(())
    };
    match write() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cairn assets: {}: {e}", dir.display());
            1
        }
    }
}

/// musl's allocator unmaps eagerly; dlmalloc keeps freed memory for reuse
/// (see Cargo.toml). glibc builds keep glibc's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
