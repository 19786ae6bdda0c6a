//! `cairn-agent`: one per host. Watches the host's process configs in etcd
//! and applies each change with `cairn switch --wait`; writes back the
//! host's status under a lease. See docs/fleet.md.

mod agent;
mod files;
mod host;
mod keys;
mod metrics;
mod outcome;
mod session;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// cairn's fleet agent: applies the process configs etcd holds for this
/// host, as `cairn switch --wait` does, and reports the host's status.
#[derive(Parser, Debug)]
#[command(name = "cairn-agent", version)]
pub struct Args {
    /// The master config of this host's tree.
    #[arg(short = 'c', long = "config", default_value = "/etc/cairn/master.yaml")]
    pub master: PathBuf,
    /// etcd endpoints, comma-separated (`https://...` with the TLS
    /// options).
    #[arg(long, value_delimiter = ',', required = true)]
    pub etcd: Vec<String>,
    /// This host's name in the key layout (`/cairn/v1/hosts/NAME/...`).
    #[arg(long)]
    pub host: String,
    /// TTL of the lease the status key lives under, seconds: the status
    /// disappears this long after the agent stops answering.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(2..=3600))]
    pub lease_ttl: i64,
    /// The CA that signed the etcd servers' certificates (PEM).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// The agent's client certificate (PEM), with `--key`.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// etcd user (auth), with `--password-file`.
    #[arg(long, requires = "password_file")]
    pub user: Option<String>,
    /// A file holding the etcd user's password (first line), root's and
    /// not readable by others.
    #[arg(long, requires = "user")]
    pub password_file: Option<PathBuf>,
    /// The cairn binary to run `switch --wait` with (default: `cairn` next
    /// to this binary).
    #[arg(long)]
    pub cairn: Option<PathBuf>,
    /// How long one `switch --wait` may wait for its rollout, seconds.
    #[arg(long, default_value_t = 300.0)]
    pub wait_timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(why) = keys::check_name(&args.host) {
        eprintln!("cairn-agent: --host {why}");
        return ExitCode::from(2);
    }
    let cairn = match args.cairn.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("cairn")))
            .filter(|p| p.is_file())
    }) {
        Some(p) => p,
        None => {
            eprintln!("cairn-agent: no cairn binary next to this one; give its path with --cairn");
            return ExitCode::from(2);
        }
    };
    if !(args.wait_timeout.is_finite() && args.wait_timeout >= 0.0) {
        eprintln!("cairn-agent: --wait-timeout must be a number of seconds");
        return ExitCode::from(2);
    }
    let host = match host::Host::load(
        &args.master,
        cairn,
        Duration::from_secs_f64(args.wait_timeout),
    ) {
        Ok(h) => h,
        Err(why) => {
            eprintln!("cairn-agent: {why}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(agent::run(args, host)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("cairn-agent: {why}");
            ExitCode::from(1)
        }
    }
}
