//! How a service asks for the daemon to be started again (after an update is activated, a backup restored or
//! the CA rotated): the daemon's wiring holds the receiving end, the services only this handle.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

/// Lets a service ask for the daemon to be started again.
#[derive(Clone)]
pub struct Restarter(Arc<watch::Sender<bool>>);

impl Restarter {
    /// The handle, and the receiver that becomes `true` once a restart is asked for.
    pub fn new() -> (Restarter, watch::Receiver<bool>) {
        let (sender, receiver) = watch::channel(false);
        (Restarter(Arc::new(sender)), receiver)
    }

    /// Asks for a restart after `delay` (so the answer to the request that caused it gets out first).
    pub fn request_after(&self, delay: Duration) {
        let sender = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = sender.send(true);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_asked_for_after_the_delay() {
        let (restarter, mut requested) = Restarter::new();
        restarter.request_after(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(499)).await;
        assert!(!*requested.borrow_and_update());
        requested.changed().await.expect("asked");
        assert!(*requested.borrow());
    }
}
