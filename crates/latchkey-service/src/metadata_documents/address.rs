//! Which IP addresses a metadata-document fetch may connect to.
//!
//! A `client_id` URL is chosen by whoever sends the request, so fetching it
//! must not become a way to reach the server's own network (SSRF). Only
//! globally routable unicast addresses are allowed. Refused, for IPv4:
//! `0.0.0.0/8` (this network, unspecified), `10/8`, `172.16/12`,
//! `192.168/16` (RFC 1918), `100.64/10` (CGNAT, RFC 6598), `127/8`
//! (loopback), `169.254/16` (link-local, cloud metadata services),
//! `192.0.0/24` (IETF protocol assignments), `192.0.2/24`, `198.51.100/24`,
//! `203.0.113/24` (documentation), `198.18/15` (benchmarking), `224/4`
//! (multicast), `240/4` (reserved) and `255.255.255.255` (broadcast). For
//! IPv6: `::` and `::1`, `fc00::/7` (unique local), `fe80::/10` (link-local),
//! `fec0::/10` (deprecated site-local), `ff00::/8` (multicast),
//! `2001:db8::/32` and `3fff::/20` (documentation), `100::/64` (discard),
//! `2001::/23` (IETF protocol assignments, including Teredo and ORCHID), and
//! `64:ff9b:1::/48` (local-use NAT64). Addresses that embed an IPv4 address
//! (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the embedded address, so
//! `::ffff:127.0.0.1` is loopback.
//!
//! With the development setting on, loopback addresses (and only those) are
//! allowed too, so tests can serve documents on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast: allowed.
    Public,
    /// Loopback (`127/8`, `::1`): allowed only in development.
    Loopback,
    /// Any other special-purpose range: never allowed.
    Special(&'static str),
}

/// Classifies `address` (rules in the module docs).
pub fn classify(address: IpAddr) -> AddressClass {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a fetch may connect to `address`.
pub fn is_allowed(address: IpAddr, allow_loopback: bool) -> bool {
    match classify(address) {
        AddressClass::Public => true,
        AddressClass::Loopback => allow_loopback,
        AddressClass::Special(_) => false,
    }
}

fn classify_v4(address: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = address.octets();
    if a == 127 {
        return AddressClass::Loopback;
    }
    let special = match (a, b, c) {
        (0, _, _) => "unspecified or this-network",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private (RFC 1918)",
        (100, 64..=127, _) => "shared address space (CGNAT)",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return AddressClass::Public,
    };
    AddressClass::Special(special)
}

fn classify_v6(address: Ipv6Addr) -> AddressClass {
    if address == Ipv6Addr::LOCALHOST {
        return AddressClass::Loopback;
    }
    if address.is_unspecified() {
        return AddressClass::Special("unspecified");
    }
    let segments = address.segments();
    let [s0, s1, s2, s3, s4, s5, s6, s7] = segments;
    let embedded = |high: u16, low: u16| {
        let [h1, h2] = high.to_be_bytes();
        let [l1, l2] = low.to_be_bytes();
        Ipv4Addr::new(h1, h2, l1, l2)
    };
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible
    // (::a.b.c.d) forms.
    if s0 == 0 && s1 == 0 && s2 == 0 && s3 == 0 && s4 == 0 && (s5 == 0xffff || s5 == 0) {
        return classify_v4(embedded(s6, s7));
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
    if s0 == 0x64 && s1 == 0xff9b && s2 == 0 && s3 == 0 && s4 == 0 && s5 == 0 {
        return classify_v4(embedded(s6, s7));
    }
    // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
    if s0 == 0x2002 {
        return classify_v4(embedded(s1, s2));
    }
    let special = match s0 {
        0xfc00..=0xfdff => "unique local",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s1 == 0x0db8 => "documentation",
        0x3fff if s1 <= 0x0fff => "documentation",
        0x2001 if s1 <= 0x01ff => "IETF protocol assignment",
        0x0100 if s1 == 0 && s2 == 0 && s3 == 0 => "discard-only",
        0x0064 if s1 == 0xff9b && s2 == 0x0001 => "local-use NAT64",
        // Everything outside 2000::/3 is unassigned or special.
        first if !(0x2000..=0x3fff).contains(&first) => "not global unicast",
        _ => return AddressClass::Public,
    };
    AddressClass::Special(special)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_range_is_refused() {
        let refused = [
            // IPv4.
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6.
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001::1",
            "2001:10::1",
            "64:ff9b:1::1",
            "::2:1",
            "4000::1",
            // IPv4 forms of special addresses.
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
            "2002:0a00:0001::1",
            "2002:c0a8:0101::1",
            "::10.0.0.1",
        ];
        for address in refused {
            let parsed: IpAddr = address.parse().unwrap();
            assert!(
                matches!(classify(parsed), AddressClass::Special(_)),
                "{address}: {:?}",
                classify(parsed)
            );
            assert!(!is_allowed(parsed, true), "{address}");
            assert!(!is_allowed(parsed, false), "{address}");
        }
    }

    #[test]
    fn loopback_only_in_development() {
        for address in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:0001::1",
        ] {
            let parsed: IpAddr = address.parse().unwrap();
            assert_eq!(classify(parsed), AddressClass::Loopback, "{address}");
            assert!(!is_allowed(parsed, false), "{address}");
            assert!(is_allowed(parsed, true), "{address}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.0.1.1",
            "198.17.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
            "2001:4860:4860::8888",
        ] {
            let parsed: IpAddr = address.parse().unwrap();
            assert_eq!(classify(parsed), AddressClass::Public, "{address}");
            assert!(is_allowed(parsed, false), "{address}");
        }
    }
}
