//! Waiting for a condition with a deadline: the one way the lab waits. Never a bare sleep.

use std::time::{Duration, Instant};

use crate::error::LabError;

const POLL: Duration = Duration::from_millis(20);

/// Calls `probe` until it returns `Some`, an error, or `timeout` passes.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, LabError>,
) -> Result<T, LabError> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            return Err(LabError::Timeout { what: what.to_string(), waited: start.elapsed() });
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value_and_times_out_with_the_condition_named() {
        let mut calls = 0;
        let value = until("three calls", Duration::from_secs(5), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        });
        assert_eq!(value.expect("reached"), 3);

        let error = until("never", Duration::from_millis(50), || Ok(None::<()>)).expect_err("times out");
        assert!(error.to_string().contains("waiting for never"), "{error}");
    }
}
