//! The interfaces' addresses, as the C library lists them.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// (interface, address, prefix length) for every address of every interface, from getifaddrs(3).
pub fn addresses() -> std::io::Result<Vec<(String, IpAddr, u8)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: cursor points into the list getifaddrs returned, which stays valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: ifa_addr is non-null and its family says which sockaddr type it points to; so does ifa_netmask.
        let parsed = unsafe { (sockaddr_ip(entry.ifa_addr), sockaddr_ip(entry.ifa_netmask)) };
        if let (Some(addr), mask) = parsed {
            let prefix = match mask {
                Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
                Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
                None => {
                    if addr.is_ipv4() {
                        32
                    } else {
                        128
                    }
                }
            };
            out.push((name, addr, prefix));
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// # Safety
/// `addr` must be null or point to a sockaddr whose family field tells its real type.
unsafe fn sockaddr_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees the family matches the pointee's type.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let v4 = &*(addr as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*(addr as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// The index of interface `name`.
pub fn index(name: &str) -> std::io::Result<u32> {
    let c_name = std::ffi::CString::new(name).map_err(|_| std::io::Error::other("an interface name with NUL"))?;
    // SAFETY: a valid NUL-terminated string that outlives the call; if_nametoindex only reads it.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        index => Ok(index),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_has_its_address_with_its_prefix() {
        let addresses = super::addresses().expect("getifaddrs");
        assert!(
            addresses.iter().any(|(name, addr, prefix)| name == "lo" && addr.is_loopback() && *prefix == 8),
            "{addresses:?}"
        );
        assert_eq!(super::index("lo").expect("lo has an index"), 1);
        assert!(super::index("no-such-if0").is_err());
    }
}
