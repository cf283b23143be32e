//! `lab`: the virtual home network from the command line.
//!
//! `lab demo` builds it, tours what routerd can do, prints a table and removes everything; `lab up` leaves it
//! running for you to explore with rtrctl; `lab down` removes it.

use std::{
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use clap::{Args, Parser, Subcommand};
use integration::{
    Dhcpv6Server, IspOptions, Lab, LabError, LabOptions, Timers,
    demo::{self, Outcome},
    lab,
    router::API_PORT,
    tracker::Tracker,
};

#[derive(Parser)]
#[command(
    name = "lab",
    version,
    about = "The virtual home network: an ISP, routerd and LAN devices in network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the network, tour what routerd can do, print what was seen, and remove everything again.
    /// Exits non-zero if any step failed.
    Demo(#[command(flatten)] Variant),
    /// Build the network and leave it running, with an rtrctl identity issued for you.
    Up {
        /// Name of this lab (namespaces are called rdlab-NAME-isp, -router, -lan1 …)
        #[arg(long, default_value = "lab")]
        name: String,
        /// Stay in the foreground; Ctrl-C removes the lab.
        #[arg(long)]
        foreground: bool,
        #[command(flatten)]
        variant: Variant,
    },
    /// Stop every process of a lab started with `lab up` and remove its namespaces and files.
    Down {
        #[arg(long, default_value = "lab", conflicts_with = "all")]
        name: String,
        /// Remove every lab started with `lab up`.
        #[arg(long)]
        all: bool,
    },
    /// List the labs started with `lab up`.
    List,
}

#[derive(Args, Clone)]
struct Variant {
    /// Number of LAN devices (lan1 … lanN).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=20))]
    lans: u8,
    /// An ISP without prefix delegation: dnsmasq answers DHCPv6 with addresses only.
    #[arg(long)]
    no_prefix_delegation: bool,
    /// Short lease timers, so renewals and expiry happen within a minute or two.
    #[arg(long)]
    short_timers: bool,
    /// IPv6 duplicate address detection on, as on real hardware.
    #[arg(long)]
    dad: bool,
    /// Leave bridge netfilter on in the router namespace (the kernel's default).
    #[arg(long)]
    bridge_netfilter: bool,
    /// Do not start routerd (start it yourself in the router namespace).
    #[arg(long)]
    no_routerd: bool,
    /// The router is the appliance: build its disk image (routerd-image) from the lab's configuration and boot it
    /// in qemu, with its NICs bridged to the ISP and the LAN devices (the image needs `cargo build --workspace
    /// --bins` and the packages the README names).
    #[arg(long)]
    appliance: bool,
}

impl Variant {
    fn options(&self) -> LabOptions {
        LabOptions {
            lan_devices: usize::from(self.lans),
            isp: IspOptions {
                dhcpv6: if self.no_prefix_delegation {
                    Dhcpv6Server::DnsmasqWithoutPrefixDelegation
                } else {
                    Dhcpv6Server::KeaWithPrefixDelegation
                },
                timers: if self.short_timers { Timers::Short } else { Timers::Normal },
            },
            dad: self.dad,
            bridge_netfilter: self.bridge_netfilter,
            start_routerd: !self.no_routerd,
            appliance: self.appliance,
        }
    }
}

/// Set by the signal watcher before it tears the lab down and exits with 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// After a Ctrl-C, the watcher owns the rest of this process's life: wait for its exit instead of reporting
/// results of a lab that is being removed (or exiting while it is still being removed).
fn stop_here_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    // Before any thread exists, so that every thread inherits the mask and only the watcher receives them.
    let signals = block_termination_signals();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(variant) => run_demo(&variant, signals),
        Command::Up { name, foreground, variant } => run_up(&name, foreground, &variant, signals),
        Command::Down { name, all } => run_down(&name, all),
        Command::List => {
            for name in lab::persistent_labs() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    stop_here_if_interrupted();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lab: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_demo(variant: &Variant, signals: libc::sigset_t) -> Result<ExitCode, LabError> {
    let tracker = Tracker::default();
    watch_signals(signals, tracker.clone());
    let start = Instant::now();
    if variant.appliance {
        println!("Building the virtual home network: ISP ⟷ router (the appliance's disk image in qemu) ⟷ LAN devices…");
    } else {
        println!("Building the virtual home network: ISP ⟷ router (routerd) ⟷ LAN devices…");
    }
    let lab = Lab::start_tracked(variant.options(), tracker)?;
    println!("  up in {:.1} s: namespaces {}", lab.uptime().as_secs_f64(), lab.namespaces().join(", "));
    println!();
    let results = demo::tour_until(
        &lab,
        |result| {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return;
            }
            let mark = if matches!(result.outcome, Outcome::Passed(_)) { "✔" } else { "✘" };
            println!("  {mark} {} ({:.1} s)", result.name, result.elapsed.as_secs_f64());
            match &result.outcome {
                Outcome::Failed(problem) => {
                    for line in problem.lines() {
                        println!("      {line}");
                    }
                }
                // A step with more to show (the diagnostics tree) puts it after its first line.
                Outcome::Passed(detail) => {
                    for line in detail.lines().skip(1) {
                        println!("      {line}");
                    }
                }
                Outcome::NotBuiltYet(_) => {}
            }
        },
        || INTERRUPTED.load(Ordering::SeqCst),
    );
    stop_here_if_interrupted();
    let (passed, failed) = (demo::passed(&results), demo::failed(&results));
    if failed > 0 {
        println!("\nSome steps failed. The lab's logs:{}", lab.logs());
    }
    let namespaces = lab.namespaces();
    let problems = lab.teardown();
    let leftovers: Vec<String> =
        namespaces.iter().filter(|ns| integration::netns::Netns::existing(ns).exists()).cloned().collect();
    println!("\nWhat the tour saw:\n");
    print!("{}", demo::table(&results));
    println!();
    if problems.is_empty() && leftovers.is_empty() {
        println!(
            "Removed {} namespaces and every process; took {:.1} s.",
            namespaces.len(),
            start.elapsed().as_secs_f64()
        );
    } else {
        println!("Cleaning up left problems: {problems:?}; namespaces still there: {leftovers:?}");
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && problems.is_empty() && leftovers.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_up(name: &str, foreground: bool, variant: &Variant, signals: libc::sigset_t) -> Result<ExitCode, LabError> {
    let tracker = Tracker::default();
    watch_signals(signals, tracker.clone());
    let lab = Lab::start_persistent(name, variant.options(), tracker)?;
    if variant.appliance {
        println!("Building the appliance's disk image and booting it in qemu (software emulation: about a minute)…");
        let vm = lab.boot_appliance()?;
        vm.wait_for_console("serving gRPC with mutual TLS on 192.0.2.1", 0, std::time::Duration::from_secs(240))?;
        println!("  the appliance serves; its serial console: {}", vm.console.display());
    }
    // No DHCP server on the LAN yet: the devices get fixed addresses so they can reach the router.
    let mut addresses = Vec::new();
    for device in lab.lans() {
        addresses.push(format!("{} {}", device.name(), device.set_static_ipv4()?));
    }
    let router = lab.router();
    let rtrctl = router.rtrctl_binary().display().to_string();
    let identity = router.identity().display().to_string();
    let lan1 = lab.lan(1).netns().name().to_string();
    let router_ns = router.netns().name().to_string();
    let isp_ns = lab.isp().netns().name().to_string();
    let work = lab.work_dir().to_path_buf();
    lab.save_inventory()?;
    println!("Lab {name:?} is up: {isp_ns}, {router_ns}, devices {}.", addresses.join(", "));
    println!();
    println!("rtrctl from a LAN device (identity issued for you):");
    println!("  ip netns exec {lan1} {rtrctl} --router 192.0.2.1:{API_PORT} --identity {identity} status");
    if variant.appliance {
        // The appliance's /perm is on its disk image: pairing codes are made there, not in the lab's copy.
        println!("the appliance's serial console (init's and routerd's log): {}/appliance/console.log", work.display());
        println!("the ISP's logs:         {}/isp/*.log", work.display());
    } else {
        println!("or pair a device yourself:");
        println!(
            "  ip netns exec {lan1} {rtrctl} --router 192.0.2.1:{API_PORT} --identity /tmp/mine.pem pair --code \"$(routerd pki pairing-code --perm {}/router/perm)\"",
            work.display()
        );
        println!("a shell on the router:  ip netns exec {router_ns} bash");
        println!("logs:                   {}/router/routerd.log, {}/isp/*.log", work.display(), work.display());
    }
    if !foreground {
        lab.detach()?;
        println!("remove it:              lab down --name {name}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Press Ctrl-C to remove the lab.");
    // The signal watcher tears the lab down and exits; the lab must outlive this function until then.
    let _lab = lab;
    loop {
        std::thread::park();
    }
}

fn run_down(name: &str, all: bool) -> Result<ExitCode, LabError> {
    let names = if all { lab::persistent_labs() } else { vec![name.to_string()] };
    let mut clean = true;
    for name in names {
        let problems = lab::down(&name)?;
        if problems.is_empty() {
            println!("lab {name:?} removed");
        } else {
            clean = false;
            println!("lab {name:?} removed with problems: {}", problems.join("; "));
        }
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: plain signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// On Ctrl-C (or SIGTERM, SIGHUP): stop every process, remove the namespaces and files, exit 130.
fn watch_signals(set: libc::sigset_t, tracker: Tracker) {
    std::thread::spawn(move || {
        let mut signal: libc::c_int = 0;
        // SAFETY: the set is valid and blocked in every thread.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return;
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\nlab: interrupted; stopping every process and removing the namespaces…");
        let problems = tracker.teardown();
        for problem in problems {
            eprintln!("lab: {problem}");
        }
        eprintln!("lab: cleaned up");
        std::process::exit(130);
    });
}
