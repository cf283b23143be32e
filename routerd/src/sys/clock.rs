//! Setting the system clock and the hardware clock (`/dev/rtc0`, kept in UTC), so that the next boot starts
//! from the right time even before NTP answers.

use std::{io, os::fd::AsRawFd, time::SystemTime};

/// `struct rtc_time` of <linux/rtc.h>.
#[repr(C)]
struct RtcTime {
    tm_sec: libc::c_int,
    tm_min: libc::c_int,
    tm_hour: libc::c_int,
    tm_mday: libc::c_int,
    tm_mon: libc::c_int,
    tm_year: libc::c_int,
    tm_wday: libc::c_int,
    tm_yday: libc::c_int,
    tm_isdst: libc::c_int,
}

/// `_IOW('p', 0x0a, struct rtc_time)`
const RTC_SET_TIME: libc::c_ulong = 0x4024_700a;

pub fn set_system_clock(time: SystemTime) -> io::Result<()> {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).map_err(|_| io::Error::other("a time before 1970"))?;
    let spec =
        libc::timespec { tv_sec: since.as_secs() as libc::time_t, tv_nsec: since.subsec_nanos() as libc::c_long };
    // SAFETY: reads the timespec only.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &spec) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn set_hardware_clock(time: SystemTime) -> io::Result<()> {
    let utc = time::OffsetDateTime::from(time);
    let rtc = RtcTime {
        tm_sec: i32::from(utc.second()),
        tm_min: i32::from(utc.minute()),
        tm_hour: i32::from(utc.hour()),
        tm_mday: i32::from(utc.day()),
        tm_mon: i32::from(u8::from(utc.month())) - 1,
        tm_year: utc.year() - 1900,
        tm_wday: 0,
        tm_yday: 0,
        tm_isdst: 0,
    };
    let device = std::fs::OpenOptions::new().write(true).open("/dev/rtc0")?;
    // SAFETY: the ioctl reads one struct rtc_time, which `rtc` is.
    if unsafe { libc::ioctl(device.as_raw_fd(), RTC_SET_TIME, &rtc) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
