//! A service on a thread of its own, with a current-thread runtime, for services whose every request waits on
//! their own work (the DHCP server's ACK waits for its lease's `fdatasync`): the packet, its handling, the flush
//! and the answer stay on one thread, as in kea's single thread, instead of hopping between the shared runtime's
//! workers (each hop a wake-up of another thread: on this class of machine about as long as the work), and a
//! flush blocks nothing but the service that waits for it anyway.

use std::{
    future::Future,
    panic::{self, AssertUnwindSafe},
    thread,
};

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::supervisor::ServiceError;

/// Runs `service` on a new thread named `name` and returns what it returns; a panic in it is raised again here,
/// so the supervisor reports it as the service's panic. The thread's runtime, and so every socket and task of
/// the service, is gone before this returns (a restarted service can bind the same ports at once). Dropping the
/// returned future stops the service: its thread drops it at its next await.
pub(crate) async fn run<Fut>(name: &'static str, service: Fut) -> Result<(), ServiceError>
where
    Fut: Future<Output = Result<(), ServiceError>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime for {name}'s thread: {e}"))?;
    let (finished, outcome) = oneshot::channel();
    // Dropped with this future, which ends the service.
    let (_keep_running, stopped) = oneshot::channel::<()>();
    let span = tracing::Span::current();
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async move {
                    tokio::select! {
                        result = service.instrument(span) => result,
                        _ = stopped => Ok(()),
                    }
                })
            }));
            drop(runtime);
            let _ = finished.send(result);
        })
        .map_err(|e| format!("starting {name}'s thread: {e}"))?;
    match outcome.await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => panic::resume_unwind(panic),
        Err(_) => Err(format!("{name}'s thread ended without a result").into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returns_the_service_result_from_its_own_thread() {
        let caller = thread::current().id();
        let result = run("test-service", async move {
            assert_ne!(thread::current().id(), caller, "not on the caller's thread");
            assert_eq!(thread::current().name(), Some("test-service"));
            Err::<(), ServiceError>("cannot bind".into())
        })
        .await;
        assert_eq!(result.map_err(|e| e.to_string()), Err("cannot bind".to_string()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_reaches_the_task_that_runs_the_service() {
        let task = tokio::spawn(run("test-panic", async { panic!("bad packet") }));
        let error = task.await.expect_err("the panic is the task's");
        assert!(error.is_panic());
        assert_eq!(error.into_panic().downcast_ref::<&str>(), Some(&"bad packet"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_caller_ends_the_service() {
        struct Dropped(Option<std::sync::mpsc::Sender<()>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.take().map(|tell| tell.send(()));
            }
        }
        let (tell, told) = std::sync::mpsc::channel();
        let (started, running) = oneshot::channel();
        let task = tokio::spawn(run("test-stop", async move {
            let _guard = Dropped(Some(tell));
            let _ = started.send(());
            std::future::pending::<Result<(), ServiceError>>().await
        }));
        running.await.expect("the service started");
        task.abort();
        told.recv_timeout(Duration::from_secs(10)).expect("the service was dropped on its thread");
    }
}
