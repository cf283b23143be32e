//! routerd: the daemon (`routerd run`) and its local administration commands (`routerd pki …`).

#![forbid(unsafe_code)]

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use routerd::{
    daemon,
    pki::{Authority, PkiPaths, Validity},
    store::{self, Mode},
};

#[derive(Parser)]
#[command(name = "routerd", version, about = "A home internet router daemon, managed through gRPC over mutual TLS")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon under its keeper (the default): the keeper restarts it after an update or a restore, and
    /// rolls an update back when the new version exits at start or is not healthy in time.
    Run(RunArgs),
    /// Run the daemon alone, without a keeper (what the keeper starts).
    #[command(hide = true)]
    Serve(RunArgs),
    /// Manage client identities of this router.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Directory holding all configuration and state.
    #[arg(long, default_value = "/perm")]
    perm: PathBuf,
    /// Serve the gRPC API on ADDR:PORT (repeatable). Default: port 9339 on every loopback and LAN address.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Serve Prometheus metrics (plain HTTP, GET /metrics) on ADDR:PORT (repeatable). Default: port 8066 on
    /// every loopback and LAN address.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Vec<SocketAddr>,
}

#[derive(Args, Clone)]
struct PermArg {
    /// Directory holding all configuration and state.
    #[arg(long, default_value = "/perm")]
    perm: PathBuf,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Issue a client identity (CA certificate, client certificate, private key) to a file for rtrctl.
    IssueClient {
        #[command(flatten)]
        perm: PermArg,
        /// Name of the identity, e.g. "laptop".
        #[arg(long)]
        name: String,
        /// Where to write the identity (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a client identity: a running routerd rejects it from the next handshake on.
    Revoke {
        #[command(flatten)]
        perm: PermArg,
        #[arg(long)]
        name: String,
    },
    /// Print a one-time pairing code for `rtrctl pair`, valid for 10 minutes.
    PairingCode {
        #[command(flatten)]
        perm: PermArg,
    },
    /// Replace the router's CA (after a backup or a paired device leaked): a new CA and server certificate,
    /// every client identity invalid, and a one-time pairing code printed to pair again. A running routerd
    /// closes every API connection and starts again with the new CA.
    RotateCa {
        #[command(flatten)]
        perm: PermArg,
    },
    /// List the client identities this router issued.
    List {
        #[command(flatten)]
        perm: PermArg,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        None => keep(cli.run),
        Some(Command::Run(args)) => keep(args),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Pki(command)) => pki(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("routerd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROUTERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// The daemon's command line, for the keeper to start it with.
fn serve_args(args: &RunArgs) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec!["serve".into(), "--perm".into(), args.perm.clone().into()];
    for listen in &args.listen {
        out.extend(["--listen".into(), listen.to_string().into()]);
    }
    for listen in &args.metrics_listen {
        out.extend(["--metrics-listen".into(), listen.to_string().into()]);
    }
    out
}

fn keep(args: RunArgs) -> Result<(), String> {
    let installed = std::env::current_exe().map_err(|e| format!("finding routerd's own executable: {e}"))?;
    let keeper = routerd::update::keeper::Keeper { perm: args.perm.clone(), installed, child_args: serve_args(&args) };
    match routerd::update::keeper::run(keeper) {
        0 => Ok(()),
        code => std::process::exit(code),
    }
}

fn serve(args: RunArgs) -> Result<(), String> {
    routerd::sys::malloc::use_one_heap();
    routerd::limits::raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let options = daemon::Options {
        perm: args.perm.clone(),
        listen: args.listen.clone(),
        metrics_listen: args.metrics_listen.clone(),
    };
    let stopped = runtime.block_on(daemon::run(options)).map_err(|e| e.to_string())?;
    drop(runtime);
    if stopped == daemon::Stopped::Restart {
        if routerd::update::has_keeper() {
            std::process::exit(routerd::update::RESTART_EXIT_CODE);
        }
        // Alone: start over in this process (same PID, fresh state from --perm).
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().map_err(|e| format!("finding routerd's own executable: {e}"))?;
        let error = std::process::Command::new(exe).args(serve_args(&args)).exec();
        return Err(format!("starting again: {error}"));
    }
    Ok(())
}

fn authority(perm: &std::path::Path) -> Result<Authority, String> {
    Authority::load_or_create(PkiPaths::new(perm), &routerd::system::hostname()).map_err(|e| e.to_string())
}

fn pki(command: PkiCommand) -> Result<(), String> {
    match command {
        PkiCommand::IssueClient { perm, name, out, force } => {
            if out.exists() && !force {
                return Err(format!("{} exists; pass --force to overwrite it", out.display()));
            }
            let authority = authority(&perm.perm)?;
            let (cert, key) = authority.issue_client(&name, Validity::default()).map_err(|e| e.to_string())?;
            let identity = routerd_proto::identity::to_pem(&name, &cert, &key, authority.ca_pem());
            store::write_atomic(&out, identity.as_bytes(), Mode::Secret).map_err(|e| e.to_string())?;
            println!("wrote identity {name:?} to {}", out.display());
            println!("use it with: rtrctl --identity {} --router HOST status", out.display());
            Ok(())
        }
        PkiCommand::Revoke { perm, name } => {
            let entry = authority(&perm.perm)?.revoke(&name).map_err(|e| e.to_string())?;
            println!("revoked {:?} (serial {}); a running routerd rejects it from now on", entry.name, entry.serial);
            Ok(())
        }
        PkiCommand::PairingCode { perm } => {
            let (code, expires) = authority(&perm.perm)?
                .create_pairing_code(time::OffsetDateTime::now_utc())
                .map_err(|e| e.to_string())?;
            println!("{code}");
            eprintln!(
                "valid once, until {}: rtrctl pair --router HOST --code {code}",
                expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            );
            Ok(())
        }
        PkiCommand::RotateCa { perm } => {
            let rotated = routerd::pki::rotation::rotate_ca(
                &perm.perm,
                &routerd::system::hostname(),
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| e.to_string())?;
            let code = rotated.pairing_code;
            println!("{code}");
            eprintln!(
                "replaced the router's CA: every client identity is now invalid (a running routerd drops them at once).\n\
                 pair again, once, until {}: rtrctl pair --router HOST --code {code} --force",
                rotated.pairing_code_expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            );
            Ok(())
        }
        PkiCommand::List { perm } => {
            let clients = authority(&perm.perm)?.clients().map_err(|e| e.to_string())?;
            if clients.is_empty() {
                println!("no client identities issued yet");
            }
            for client in clients {
                println!(
                    "{:<24} serial {}  {}",
                    client.name,
                    client.serial,
                    if client.revoked { "revoked" } else { "active" }
                );
            }
            Ok(())
        }
    }
}
