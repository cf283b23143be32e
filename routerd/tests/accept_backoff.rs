//! An accept loop that runs out of file descriptors (EMFILE) waits and retries instead of spinning, and takes
//! the waiting connection once descriptors are free again. Its own test binary: it lowers this process's
//! open-file limit, which would starve tests running beside it.

use std::{
    fs::File,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::net::TcpListener;

fn set_open_file_limit(soft: libc::rlim_t) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Opens /dev/null until the process has no descriptor left; the files free them again when dropped.
fn exhaust_descriptors() -> Vec<File> {
    let mut files = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => files.push(file),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
                return files;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_accept_loop_out_of_descriptors_backs_off_and_recovers() {
    set_open_file_limit(256);
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let address = listener.local_addr().expect("address");
    // The kernel completes the handshake and queues the connection; only accept needs a descriptor.
    let client = std::net::TcpStream::connect(address).expect("connect");
    let held = exhaust_descriptors();
    assert!(std::net::TcpStream::connect(address).is_err(), "no descriptor is left");

    let attempts = Arc::new(AtomicU32::new(0));
    let acceptor = {
        let (listener, attempts) = (listener.clone(), attempts.clone());
        tokio::spawn(async move {
            routerd::limits::with_backoff("test listener", || {
                attempts.fetch_add(1, Ordering::Relaxed);
                listener.accept()
            })
            .await
        })
    };
    // A loop that spins never lets the paused clock move on, so this test would hang: end it with the count.
    let watched = attempts.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("the accept loop spins: {} attempts and the clock never moved", watched.load(Ordering::Relaxed));
        std::process::exit(1);
    });
    // Ten seconds (of the test's paused clock) out of descriptors: a loop that spins would try without end.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tried = attempts.load(Ordering::Relaxed);
    assert!(!acceptor.is_finished(), "accept cannot succeed without a descriptor");
    assert!((3..=20).contains(&tried), "{tried} accept attempts in 10 s: it should retry, waiting up to 1.28 s");

    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(acceptor.is_finished(), "the waiting connection is accepted once descriptors are free");
    let (_stream, peer) = acceptor.await.expect("the acceptor");
    assert_eq!(peer, client.local_addr().expect("client address"));
}
