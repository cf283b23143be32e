//! Blocking work from async code that must not be moved to the blocking pool: it is short, or its caller waits
//! for it anyway, and the hop to another thread and back costs about as much as the work.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` on this thread, with the runtime's other tasks handed to another worker meanwhile
/// (`block_in_place`), so a flush to disk or a walk over every lease does not hold them up. On a current-thread
/// runtime (tests) or outside a runtime it just runs.
pub(crate) fn in_place<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|runtime| runtime.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
