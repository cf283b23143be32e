//! The generic driver with the DHCPv4 client, against routerd's I/O-free DHCPv4 server behind an in-memory
//! link, on tokio's paused clock: restore before asking, save/apply/publish in order, release and renew on
//! command, all without sockets or root.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use dhcproto::v4::MessageType;
use tokio::sync::mpsc;

use super::{
    control::{Answer, Command, Control},
    dhcp4::{Client, ClientConfig, Lease, LeaseTimes, Transmit},
    driver::{Driver, Effects, Link},
    entropy::Sequence,
    state::Dhcp4Status,
};
use crate::{
    lan::dhcp4d::{PoolConfig, Server},
    supervisor::Shutdown,
};

const ROUTER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);

/// Delivers each message to the server and queues the server's reply for the client.
struct MemoryLink {
    server: Arc<Mutex<Server>>,
    sent: Arc<Mutex<Vec<MessageType>>>,
    replies_in: mpsc::UnboundedSender<Vec<u8>>,
    replies_out: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Link for MemoryLink {
    type Transmit = Transmit;

    async fn send(&self, transmit: &Transmit) {
        self.sent.lock().expect("sent").push(transmit.message_type);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let handled = self.server.lock().expect("server").handle(wall, &transmit.payload).expect("server takes it");
        if let Some(reply) = handled.reply {
            self.replies_in.send(reply.payload).expect("the link holds the receiver");
        }
    }

    async fn receive(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(self.replies_out.recv().await.expect("the link holds the sender"))
    }
}

/// Records what the driver made happen, in order.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    last_published: Arc<Mutex<Option<Dhcp4Status>>>,
}

impl Recorder {
    fn note(&self, what: String) {
        self.log.lock().expect("log").push(what);
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Effects for Recorder {
    type Lease = Lease;
    const FAMILY: &'static str = "DHCPv4";

    fn describe(lease: &Lease) -> String {
        format!("{}/{}", lease.address, lease.prefix_len)
    }
    fn same_configuration(lease: &Lease, other: &Lease) -> bool {
        lease.same_configuration(other)
    }
    fn save(&mut self, lease: &Lease, _times: LeaseTimes, reply: Option<&[u8]>) {
        self.note(format!("save {} with ack {}", lease.address, reply.is_some()));
    }
    fn forget(&mut self) {
        self.note("forget".into());
    }
    async fn apply(&mut self, lease: &Lease, previous: Option<&Lease>) -> Result<(), String> {
        self.note(format!("apply {} over {:?}", lease.address, previous.map(|p| p.address)));
        Ok(())
    }
    async fn remove(&mut self, lease: &Lease) -> Result<(), String> {
        self.note(format!("remove {}", lease.address));
        Ok(())
    }
    fn publish(&mut self, status: Option<Dhcp4Status>) {
        self.note(format!("publish {}", status.as_ref().map(|s| s.phase.label()).unwrap_or("nothing")));
        *self.last_published.lock().expect("published") = status;
    }
    fn refused(&mut self, reason: &str, configured: bool) {
        self.note(format!("refused {reason} configured {configured}"));
    }
}

struct Running {
    recorder: Recorder,
    sent: Arc<Mutex<Vec<MessageType>>>,
    control: Control,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts the driver with `saved` restored first, against `server`.
    async fn start(saved: Option<Lease>, server: Arc<Mutex<Server>>) -> Running {
        let recorder = Recorder::default();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (replies_in, replies_out) = mpsc::unbounded_channel();
        let link = MemoryLink { server, sent: sent.clone(), replies_in, replies_out };
        let config = ClientConfig { hardware_addr: [0x02, 0, 0, 0, 0x19, 0x02], hostname: None };
        let now = tokio::time::Instant::now().into_std();

        let (control, inbox) = Control::new("dhcp4");
        let (stop, mut shutdown) = Shutdown::new();
        let mut driver = Driver::new(recorder.clone());
        let saved = driver.restore(Ok(saved)).await;
        let client = Client::new(config, Box::new(Sequence::new(vec![0x1234_5678, 7])), saved, now);
        let task = tokio::spawn(async move { driver.run(client, link, &inbox, &mut shutdown).await });
        Running { recorder, sent, control, stop, task }
    }

    /// Lets the driver run (tokio's paused clock jumps to each timer) until `done` holds.
    async fn until(&self, done: impl Fn(&[String]) -> bool) {
        for _ in 0..1000 {
            if done(&self.recorder.log()) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("never happened; log: {:?}", self.recorder.log());
    }

    fn leased(&self) -> Option<Lease> {
        self.recorder.last_published.lock().expect("published").as_ref().map(|s| s.lease.clone())
    }

    async fn stop(self) -> Recorder {
        self.stop.send(true).expect("the driver holds the receiver");
        self.task.await.expect("the driver does not panic").expect("the link does not fail");
        self.recorder
    }
}

fn server() -> Arc<Mutex<Server>> {
    let mut pool = PoolConfig::whole_subnet("lan0", ROUTER, 24).expect("a /24 pool");
    pool.lease_time = Duration::from_secs(600);
    Arc::new(Mutex::new(Server::new(pool, [])))
}

fn bound(log: &[String]) -> bool {
    log.iter().any(|l| l == "publish bound")
}

#[tokio::test(start_paused = true)]
async fn a_new_lease_is_saved_then_applied_then_published() {
    let running = Running::start(None, server()).await;
    running.until(bound).await;
    let lease = running.leased().expect("a lease");
    let sent = running.sent.lock().expect("sent").clone();
    let log = running.stop().await.log();
    assert_eq!(sent, [MessageType::Discover, MessageType::Request]);
    let address = lease.address;
    assert_eq!(
        log[..3],
        [format!("save {address} with ack true"), format!("apply {address} over None"), "publish bound".to_string()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_saved_lease_is_applied_before_any_server_is_asked_and_not_again_when_confirmed() {
    let server = server();
    let first = Running::start(None, server.clone()).await;
    first.until(bound).await;
    let lease = first.leased().expect("a lease");
    first.stop().await;

    let again = Running::start(Some(lease.clone()), server).await;
    let before_start = again.recorder.log();
    again.until(|log| log.iter().filter(|l| *l == "publish bound").count() == 1).await;
    let sent = again.sent.lock().expect("sent").clone();
    let log = again.stop().await.log();
    let address = lease.address;
    assert_eq!(before_start, [format!("apply {address} over None"), "publish restored".to_string()]);
    assert_eq!(sent, [MessageType::Request], "INIT-REBOOT asks for the saved address, no DISCOVER");
    assert!(log.contains(&format!("save {address} with ack true")), "{log:?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("apply")).count(),
        1,
        "the same lease is not applied twice: {log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn release_gives_the_lease_back_removes_it_and_renew_gets_one_again() {
    let running = Running::start(None, server()).await;
    running.until(bound).await;
    let address = running.leased().expect("a lease").address;

    let outcome = running.control.send(Command::Release).await;
    assert_eq!(outcome.answer, Some(Answer::Released(format!("{address}/24"))));
    assert_eq!(outcome.to_string(), format!("dhcp4: released {address}/24"));
    let log = running.recorder.log();
    let tail = &log[log.len() - 3..];
    assert_eq!(tail, [format!("remove {address}"), "forget".to_string(), "publish nothing".to_string()]);
    assert_eq!(running.sent.lock().expect("sent").last(), Some(&MessageType::Release));

    // Released: quiet until asked.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(running.sent.lock().expect("sent").len(), 3, "DISCOVER, REQUEST, RELEASE and nothing after");
    assert_eq!(running.control.send(Command::Release).await.answer, Some(Answer::NothingToRelease));

    assert_eq!(running.control.send(Command::Renew).await.answer, Some(Answer::Renewing));
    running.until(|log| log.iter().filter(|l| *l == "publish bound").count() == 2).await;
    let sent = running.sent.lock().expect("sent").clone();
    assert_eq!(sent[3..], [MessageType::Discover, MessageType::Request]);
    let log = running.stop().await.log();
    assert!(log.iter().rev().any(|l| l.starts_with("apply") && l.ends_with("over None")), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn renewing_at_t1_is_published_and_an_unchanged_renewal_is_not_reapplied() {
    let running = Running::start(None, server()).await;
    running.until(bound).await;
    // T1 of a 600 s lease is at 300 s.
    running.until(|log| log.iter().any(|l| l == "publish renewing")).await;
    running.until(|log| log.iter().filter(|l| *l == "publish bound").count() == 2).await;
    let log = running.stop().await.log();
    assert_eq!(log.iter().filter(|l| l.starts_with("apply")).count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|l| l.starts_with("save")).count(), 2, "{log:?}");
}
