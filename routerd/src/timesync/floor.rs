//! `/perm/clock.json`: the last time the clock was known good (after a synchronisation, and when the image was
//! built). At start, a clock behind it is set forward to it: certificates issued before then would otherwise
//! be "not yet valid" until NTP answers, and the router could not be managed.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};

use crate::store::{self, Mode, StoreError};

pub const CLOCK_JSON: &str = "clock.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockFile {
    /// RFC 3339.
    pub known_good: String,
}

pub fn path(perm: &Path) -> PathBuf {
    perm.join(CLOCK_JSON)
}

pub fn save(perm: &Path, time: SystemTime) -> Result<(), StoreError> {
    let known_good =
        time::OffsetDateTime::from(time).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    store::write_json(&path(perm), &ClockFile { known_good }, Mode::Public)
}

/// The saved time, if the file is there and readable.
pub fn load(perm: &Path) -> Result<Option<SystemTime>, String> {
    let Some(file) = store::read_json_optional::<ClockFile>(&path(perm)).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let parsed = time::OffsetDateTime::parse(&file.known_good, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{CLOCK_JSON}: known_good {:?}: {e}", file.known_good))?;
    Ok(Some(parsed.into()))
}

/// At start, on the appliance: a clock behind the floor (a flat clock battery, a board without one) is set
/// forward to it. Elsewhere the host keeps time: only said.
pub fn apply_at_start(perm: &Path, owns_the_clock: bool) {
    let floor = match load(perm) {
        Ok(floor) => floor,
        Err(error) => {
            tracing::warn!("{error}: the clock's floor is ignored");
            return;
        }
    };
    let Some(floor) = behind(SystemTime::now(), floor) else { return };
    let shown =
        time::OffsetDateTime::from(floor).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    if !owns_the_clock {
        tracing::warn!("the clock is behind the last time it was known good ({shown}); the host should fix it");
        return;
    }
    match crate::sys::clock::set_system_clock(floor) {
        Ok(()) => tracing::warn!(
            "the clock was behind the last time it was known good: set forward to {shown} until NTP answers"
        ),
        Err(error) => tracing::warn!("the clock is behind {shown} and cannot be set: {error}"),
    }
}

/// What to do at start: `Some(floor)` when the clock (`now`) is behind the floor.
pub fn behind(now: SystemTime, floor: Option<SystemTime>) -> Option<SystemTime> {
    floor.filter(|floor| now < *floor)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_floor_round_trips_and_only_a_clock_behind_it_moves() {
        let dir = tempfile::tempdir().expect("temp");
        assert_eq!(load(dir.path()), Ok(None));
        let floor = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        save(dir.path(), floor).expect("save");
        assert_eq!(load(dir.path()), Ok(Some(floor)));
        let year_2020 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        assert_eq!(behind(year_2020, Some(floor)), Some(floor));
        assert_eq!(behind(floor + Duration::from_secs(1), Some(floor)), None);
        std::fs::write(path(dir.path()), r#"{"known_good":"yesterday"}"#).expect("write");
        assert!(load(dir.path()).expect_err("bad time").contains("yesterday"));
    }
}
