//! Durable leases under SIGKILL: while real DHCP exchanges run, routerd is killed (keeper and daemon at once)
//! at random moments and started again, over and over. Every address a client got an ACK for is still leased to
//! that client afterwards, and no address was ever acknowledged to two clients.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use integration::{Lab, LabOptions, wait};

/// How often routerd is killed.
const KILLS: usize = 100;
const CLIENTS: usize = 40;

/// A small pseudo-random sequence (no dependency, reproducible from the seed in the failure message).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn every_acknowledged_lease_survives_sigkill_and_no_address_goes_to_two_clients() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    // Fold the lease journal into leases.json every few changes, so that kills also land in compactions.
    lab.router().set_routerd_env("ROUTERD_LEASE_COMPACTION_ENTRIES", "6");
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "routerd with frequent compactions");
    let acks = lab.work_dir().join("acks.txt");
    let script = lab.work_dir().join("dora_loop.py");
    std::fs::write(&script, include_str!("dora_loop.py")).expect("script");
    let clients = lab.check(
        lab.tracker().spawn(
            "dora-loop",
            lab.lan(1).netns(),
            std::path::Path::new("/usr/bin/python3"),
            &[script.display().to_string(), "eth0".into(), CLIENTS.to_string(), acks.display().to_string()],
            &[],
            &lab.work_dir().join("dora-loop.log"),
        ),
        "scapy (Debian package python3-scapy)",
    );
    let seed = std::process::id() as u64 | 1;
    let mut random = Xorshift(seed);
    let started = Instant::now();
    // At least KILLS kills, and on until as many ACKs went out (a loaded machine completes fewer exchanges between
    // kills), within a bound.
    let acked = || std::fs::read_to_string(&acks).map(|t| t.lines().count()).unwrap_or(0);
    let mut kill = 0;
    while kill < KILLS || (acked() < KILLS && kill < 3 * KILLS) {
        kill += 1;
        // Run a random while, so the kill lands anywhere in an exchange or a lease write.
        std::thread::sleep(Duration::from_millis(50 + random.next(400)));
        let pid = lab.router().routerd_pid().unwrap_or_else(|| lab.fail("routerd is not running"));
        // SAFETY: kill on the process group routerd leads (the keeper and its daemon child), nothing else.
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        lab.check(
            wait::until("routerd to die", Duration::from_secs(10), || Ok(lab.tracker().exit_status(pid).map(drop))),
            &format!("kill {kill} (seed {seed})"),
        );
        lab.router().stop_routerd();
        lab.check(lab.router().start_routerd(), &format!("start after kill {kill} (seed {seed})"));
    }
    // Let the last exchanges finish, then stop the clients and read what routerd kept.
    std::thread::sleep(Duration::from_secs(2));
    lab.tracker().stop(clients);
    let text = std::fs::read_to_string(&acks).unwrap_or_default();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((mac, ip)) = line.split_once(' ') else { continue };
        if let Some(other) = holders.insert(ip.to_string(), mac.to_string())
            && other != mac
        {
            lab.fail(&format!("{ip} was acknowledged to {other} and to {mac} (seed {seed})"));
        }
        last.insert(mac.to_string(), ip.to_string());
    }
    println!("{kill} kills in {:?}: {} ACKs to {} clients", started.elapsed(), text.lines().count(), last.len());
    assert!(text.lines().count() >= KILLS, "too few exchanges to mean anything: {}", text.lines().count());
    // A last kill, then what the next start makes of the files: it replays the journal, and a clean stop folds
    // it into router7's leases.json.
    let pid = lab.router().routerd_pid().unwrap_or_else(|| lab.fail("routerd is not running"));
    // SAFETY: as above.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    // The whole group: a daemon in the middle of an fdatasync dies only when the disk is done with it, which on a
    // machine busy writing (other tests' disk images) can take many seconds, and until then it holds its ports.
    lab.check(
        wait::until("keeper and daemon to die", Duration::from_secs(120), || {
            // The keeper is the lab's child (reaped here); the daemon is reaped by init once the keeper is gone.
            let keeper_gone = lab.tracker().exit_status(pid).is_some();
            // SAFETY: signal 0 to the process group only checks whether any member is left.
            let left = unsafe { libc::kill(-(pid as libc::pid_t), 0) } == 0;
            Ok((keeper_gone && !left).then_some(()))
        }),
        "the last kill",
    );
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "the start after the last kill");
    lab.check(
        lab.router().wait_for_status("the DHCP server to run", Duration::from_secs(60), |s| {
            s["services"]
                .as_array()
                .is_some_and(|all| all.iter().any(|x| x["name"] == "dhcp4d" && x["state"] == "running"))
        }),
        "dhcp4d after the last kill",
    );
    lab.router().stop_routerd();
    let log = lab.router().routerd_log();
    let compactions = log.matches("folded the lease journal").count();
    let replays = log.matches("lease changes from the journal").count();
    println!("{compactions} compactions while serving, {replays} starts that replayed a journal");
    assert!(compactions > 0 && replays > 0, "the kills never met the journal's folding: {compactions}, {replays}");
    assert!(!lab.router().perm().join("dhcp4d/leases.journal").exists(), "a clean stop leaves no journal");
    let file = std::fs::read_to_string(lab.router().perm().join("dhcp4d/leases.json")).expect("leases.json");
    let leases: serde_json::Value = serde_json::from_str(&file).expect("JSON");
    let leased: BTreeMap<String, String> = leases
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["hardware_addr"].as_str()?.to_string(), l["addr"].as_str()?.to_string())))
        .collect();
    for (mac, ip) in &last {
        assert_eq!(
            leased.get(mac),
            Some(ip),
            "{mac} was acknowledged {ip}; routerd has {:?} (seed {seed})",
            leased.get(mac)
        );
    }
}
