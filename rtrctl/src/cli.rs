//! Command-line definition and dispatch.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};

use crate::{commands, connect::RouterAddr, error::CliError, output::Format};

#[derive(Parser, Debug)]
#[command(name = "rtrctl", version, about = "Manage a routerd router over its gRPC API (mutual TLS)")]
pub struct Cli {
    /// The router: HOST, HOST:PORT or [IPV6]:PORT (port 9339 unless given).
    #[arg(long, global = true, env = "RTRCTL_ROUTER", default_value = "localhost")]
    pub router: String,
    /// Identity file (client certificate, key, router CA). Default: ~/.config/rtrctl/identity.pem
    #[arg(long, global = true, env = "RTRCTL_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Output format: a table for people, one JSON document for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the router: version, uptime, interfaces, uplink leases, services and configuration problems.
    Status,
    /// Pair this workstation with a router using a code from `routerd pki pairing-code`.
    Pair {
        /// The pairing code, as printed on the router (dashes optional).
        #[arg(required_unless_present = "code_flag", conflicts_with = "code_flag")]
        code: Option<String>,
        /// The pairing code (the earlier spelling `--code CODE`).
        #[arg(long = "code", value_name = "CODE", hide = true)]
        code_flag: Option<String>,
        /// Name for this identity on the router. Default: this machine's hostname.
        #[arg(long)]
        name: Option<String>,
        /// Overwrite an existing identity file.
        #[arg(long)]
        force: bool,
    },
    /// The DHCP leases the router hands out on its LANs.
    Leases {
        #[command(subcommand)]
        action: LeasesAction,
    },
    /// Port forwards from the internet to devices on the LANs (router7's portforwardings.json).
    Forwards {
        #[command(subcommand)]
        action: ForwardsAction,
    },
    /// Stream the router's configuration traffic (DHCP, DHCPv6, RS/RA/NS/NA, DNS) as pcapng: first what it
    /// kept, then live until interrupted. `rtrctl capture | wireshark -k -i -`
    Capture {
        /// Write to FILE instead of standard output.
        #[arg(short = 'w', long = "write")]
        file: Option<std::path::PathBuf>,
        /// Only new packets, not the ones the router kept.
        #[arg(long)]
        no_backfill: bool,
        /// Only these interfaces (repeatable), e.g. uplink0.
        #[arg(long = "interface")]
        interfaces: Vec<String>,
        /// Only these protocols (repeatable): dhcp4, dhcp6, icmp6, dns.
        #[arg(long = "protocol", value_enum)]
        protocols: Vec<CaptureProtocolArg>,
    },
    /// Check the router from the inside: uplink link, leases, gateways, the internet, LAN services. Draws the
    /// tree of checks with ✔/✘ and the reason; a check whose dependency failed is skipped. Exit status 1 when a
    /// check failed.
    Diag {
        /// Only the verdict (GetHealth: what updates and monitoring look at), not the tree.
        #[arg(long)]
        health: bool,
    },
    /// Ping a host from the router (name resolved through the router's upstream DNS). Exit status 1 when no
    /// reply came.
    Ping {
        host: String,
        /// Echo requests to send; 0 means until interrupted.
        #[arg(short = 'c', long, default_value_t = 5)]
        count: u32,
        /// Seconds between requests.
        #[arg(short = 'i', long, default_value_t = 1.0)]
        interval: f64,
        /// Seconds to wait for each reply.
        #[arg(short = 'W', long, default_value_t = 2.0)]
        wait: f64,
        /// Payload bytes.
        #[arg(short = 's', long, default_value_t = 56)]
        size: u16,
        #[command(flatten)]
        family: Family,
    },
    /// Trace the path from the router to a host, hop by hop (ICMP echo with rising TTL, three probes a hop).
    Traceroute {
        host: String,
        /// Give up after this many hops.
        #[arg(short = 'm', long, default_value_t = 30)]
        max_hops: u8,
        /// Seconds to wait for each probe.
        #[arg(short = 'w', long, default_value_t = 2.0)]
        wait: f64,
        #[command(flatten)]
        family: Family,
    },
    /// Save the router's configuration and state (everything under --perm) to a tar.gz, or restore one.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Replace the router's routerd safely: health check, backup, upload, activate, and wait until the new
    /// version reports healthy (or is rolled back by itself). Also: update status|confirm|rollback.
    Update(UpdateArgs),
    /// The uplink's DHCP leases: give them back to the ISP, or ask again now.
    Uplink {
        #[command(subcommand)]
        action: UplinkAction,
    },
    /// The router's certificate authority and client identities.
    Pki {
        #[command(subcommand)]
        action: PkiAction,
    },
    /// Restart the router (the appliance): routerd stops, /perm is unmounted, the machine boots again. Asks first
    /// on a terminal.
    Reboot {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Power the router (the appliance) off; it stays off until someone presses its power button. Asks first on a
    /// terminal.
    Poweroff {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
pub enum PkiAction {
    /// Replace the router's CA after a backup or a paired device leaked: every client identity, this one too,
    /// stops working at once; the router prints nothing, this command shows the one-time pairing code to pair
    /// again with (`rtrctl pair CODE --force`).
    RotateCa {
        /// Yes, lock every paired device out.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Download a backup to FILE (tar.gz; its SHA-256 is checked end to end).
    Create {
        file: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore FILE: the router checks all of it first (a bad archive changes nothing), swaps it in and
    /// restarts routerd to apply it.
    Restore { file: PathBuf },
    /// How the last restore ended: on trial after the restart, confirmed, or rolled back (and why).
    Status,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UpdateArgs {
    /// The new routerd executable.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// A system update bundle (`routerd-image bundle`) for the appliance: kernel, initramfs and root go to the
    /// inactive slot, the router switches to it and keeps it only once it reports healthy.
    #[arg(long, value_name = "BUNDLE")]
    pub image: Option<PathBuf>,
    /// Update even when the router is unhealthy now (the new version is then held only to the checks that pass).
    /// `--force` is the earlier spelling; everywhere else `--force` means "overwrite the file".
    #[arg(long = "ignore-health", alias = "force")]
    pub ignore_health: bool,
    /// Seconds the new version has to report healthy before the router rolls it back (default: the router's
    /// setting, 120 s unless routerd.json says otherwise).
    #[arg(long, value_parser = clap::value_parser!(u64).range(routerd_proto::CONFIRM_WINDOW_SECONDS))]
    pub confirm_window: Option<u64>,
    /// A name for the new version in the router's records (default: its SHA-256 prefix).
    #[arg(long, value_name = "NAME")]
    pub version_name: Option<String>,
    /// Where to save the backup taken first (default: routerd-backup-UNIXTIME.tar.gz here).
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    /// Skip the backup.
    #[arg(long)]
    pub no_backup: bool,
    #[command(subcommand)]
    pub action: Option<UpdateAction>,
}

#[derive(Debug, Subcommand)]
pub enum UpdateAction {
    /// What runs, what is staged or on trial, and the last rollback.
    Status,
    /// Keep the version on trial now, without waiting for its health checks.
    Confirm,
    /// Go back to the previous version (ends a trial, or undoes the last confirmed update).
    Rollback,
}

/// One address family, the same flags for every command: the family a host name resolves to (ping,
/// traceroute), the uplink's lease to act on (uplink release|renew). Neither means both, or either.
#[derive(Clone, Copy, Debug, clap::Args)]
#[group(multiple = false)]
pub struct Family {
    /// IPv4 only (uplink: only the DHCPv4 lease).
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,
    /// IPv6 only (uplink: only the DHCPv6 lease, address and prefix).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CaptureProtocolArg {
    Dhcp4,
    Dhcp6,
    Icmp6,
    Dns,
}

#[derive(Debug, Subcommand)]
pub enum ForwardsAction {
    /// List the port forwards.
    List,
    /// Forward a port (or range) of the router's public address to a device; applied at once, then saved.
    Add {
        /// tcp, udp or tcp,udp (`--proto` is the earlier spelling).
        #[arg(long = "protocol", alias = "proto", default_value = "tcp")]
        protocol: String,
        /// The router's port, or a range like 8040-8060.
        #[arg(long)]
        port: String,
        /// The device's IPv4 address on a LAN.
        #[arg(long)]
        dest_addr: String,
        /// The device's port (range of the same length); default: the same as --port.
        #[arg(long)]
        dest_port: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Change where a forward goes, or its description (its protocols and port identify it).
    Update {
        id: String,
        #[arg(long)]
        dest_addr: Option<String>,
        #[arg(long)]
        dest_port: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove the forward with this ID (as `forwards list` shows it, e.g. tcp:8080).
    Rm { id: String },
    /// Apply portforwardings.json again after editing it by hand (a file with a bad entry changes nothing).
    Reload,
}

#[derive(Debug, Subcommand)]
pub enum LeasesAction {
    /// List leases: address, MAC, name, LAN, state and expiry.
    List {
        /// Only leases in this state (repeatable): active, expired, static; `offered` lists the addresses offered
        /// to devices that have not requested them yet.
        #[arg(long = "state", value_enum)]
        states: Vec<LeaseStateArg>,
    },
    /// Print every lease, then each change as it happens (one line, or one JSON object per line with -o json),
    /// until interrupted.
    Watch,
    /// Name a device (its name in DNS wins over what it sends); an empty NAME clears it.
    SetHostname { mac: String, name: String },
    /// Static leases: always the same address for a device.
    Static {
        #[command(subcommand)]
        action: StaticAction,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LeaseStateArg {
    Active,
    Expired,
    Static,
    /// Addresses offered to devices that have not requested them yet (not leases; listed only when asked for).
    Offered,
}

#[derive(Debug, Subcommand)]
pub enum StaticAction {
    /// Give MAC the address ADDR from now on (also outside the DHCP range, inside the LAN's subnet).
    Add {
        mac: String,
        addr: String,
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Remove the static lease of MAC.
    Rm { mac: String },
}

#[derive(Debug, Subcommand)]
pub enum UplinkAction {
    /// Release the leases (DHCPRELEASE / DHCPv6 Release): the addresses and the delegated prefix are removed and
    /// routerd stops asking until `rtrctl uplink renew`.
    Release(Family),
    /// Ask the ISP for leases now (after a release, or to pick up a change at once).
    Renew(Family),
}

impl Cli {
    pub fn router_addr(&self) -> Result<RouterAddr, CliError> {
        RouterAddr::parse(&self.router)
    }

    pub fn identity_path(&self) -> PathBuf {
        self.identity.clone().unwrap_or_else(default_identity_path)
    }
}

/// `$XDG_CONFIG_HOME/rtrctl/identity.pem`, else `~/.config/rtrctl/identity.pem`.
pub fn default_identity_path() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("rtrctl").join("identity.pem")
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "rtrctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rtrctl: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rtrctl: {error}");
            if let Some(hint) = error.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
pub async fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Status => commands::status::run(cli).await,
        Command::Pair { code, code_flag, name, force } => {
            let code = code.as_deref().or(code_flag.as_deref()).unwrap_or_default();
            commands::pair::run(cli, code, name.as_deref(), *force).await
        }
        Command::Uplink { action } => commands::uplink::run(cli, action).await,
        Command::Pki { action } => commands::pki::run(cli, action).await,
        Command::Leases { action } => commands::leases::run(cli, action).await,
        Command::Forwards { action } => commands::forwards::run(cli, action).await,
        Command::Capture { file, no_backfill, interfaces, protocols } => {
            commands::capture::run(cli, file.as_deref(), *no_backfill, interfaces, protocols).await
        }
        Command::Diag { health } => commands::diag::run(cli, *health).await,
        Command::Backup { action } => commands::backup::run(cli, action).await,
        Command::Update(args) => commands::update::run(cli, args).await,
        Command::Ping { host, count, interval, wait, size, family } => {
            commands::ping::ping(cli, host, *count, *interval, *wait, *size, *family).await
        }
        Command::Traceroute { host, max_hops, wait, family } => {
            commands::ping::traceroute(cli, host, *max_hops, *wait, *family).await
        }
        Command::Reboot { yes } => commands::reboot::run(cli, false, *yes).await,
        Command::Poweroff { yes } => commands::reboot::run(cli, true, *yes).await,
        Command::Completions { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rtrctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_earlier_spellings_still_parse_to_the_same_command() {
        let Ok(Cli { command: Command::Pair { code, code_flag, .. }, .. }) = parse(&["pair", "ABCD-EFGH"]) else {
            panic!("pair CODE");
        };
        assert_eq!((code.as_deref(), code_flag), (Some("ABCD-EFGH"), None));
        let Ok(Cli { command: Command::Pair { code, code_flag, .. }, .. }) = parse(&["pair", "--code", "ABCD"]) else {
            panic!("pair --code CODE");
        };
        assert_eq!((code, code_flag.as_deref()), (None, Some("ABCD")));
        assert!(parse(&["pair"]).is_err(), "a code is required");
        assert!(parse(&["pair", "A", "--code", "B"]).is_err(), "one code");

        for flag in ["--protocol", "--proto"] {
            let parsed = parse(&["forwards", "add", flag, "udp", "--port", "53", "--dest-addr", "192.0.2.9"]);
            let Ok(Cli { command: Command::Forwards { action: ForwardsAction::Add { protocol, .. } }, .. }) = parsed
            else {
                panic!("forwards add {flag}");
            };
            assert_eq!(protocol, "udp");
        }
        for flag in ["--ignore-health", "--force"] {
            let Ok(Cli { command: Command::Update(args), .. }) = parse(&["update", "--binary", "routerd", flag]) else {
                panic!("update {flag}");
            };
            assert!(args.ignore_health, "{flag}");
        }
    }

    #[test]
    fn one_family_flag_set_everywhere() {
        for (args, ipv4, ipv6) in [
            (vec!["uplink", "renew", "-4"], true, false),
            (vec!["uplink", "release", "--ipv6"], false, true),
            (vec!["uplink", "renew"], false, false),
            (vec!["ping", "--ipv4", "example.com"], true, false),
            (vec!["traceroute", "-6", "example.com"], false, true),
        ] {
            let family = match parse(&args).map(|cli| cli.command) {
                Ok(Command::Uplink { action: UplinkAction::Renew(f) | UplinkAction::Release(f) }) => f,
                Ok(Command::Ping { family, .. } | Command::Traceroute { family, .. }) => family,
                other => panic!("{args:?}: {other:?}"),
            };
            assert_eq!((family.ipv4, family.ipv6), (ipv4, ipv6), "{args:?}");
        }
        assert!(parse(&["ping", "-4", "-6", "example.com"]).is_err());
        assert!(parse(&["uplink", "renew", "-4", "-6"]).is_err(), "neither flag means both");
    }
}
