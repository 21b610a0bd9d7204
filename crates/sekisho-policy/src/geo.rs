//! Country of a source address, for `context.country`.
//!
//! Reads a MaxMind or DB-IP country database (`.mmdb`) into memory once. Local addresses (loopback,
//! RFC 1918, link-local, CGNAT, IPv6 ULA, and IPv4-mapped forms of those) get the operator's configured
//! local country instead of a lookup; anything the database does not know, or every non-local address
//! when there is no database, is `??`. [`write_test_db`] writes small databases for test fixtures.

mod writer;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, Reader, geoip2};
pub use writer::write_test_db;

/// The country of an address nobody knows.
pub const UNKNOWN_COUNTRY: &str = "??";

/// What `testdata/geo-test.mmdb` (in this crate) holds, as written by [`write_test_db`].
pub const TEST_DB_ENTRIES: &[(&str, &str)] = &[("1.2.3.0/24", "US"), ("203.0.113.0/24", "JP"), ("2001:db8::/32", "DE")];

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open GeoIP database `{}`: {source}", path.display())]
    Open { path: PathBuf, source: MaxMindDbError },
}

/// A country lookup: an optional database plus the country of local addresses.
pub struct Geo {
    reader: Option<Reader<Vec<u8>>>,
    local_country: String,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("database_type", &self.reader.as_ref().map(|r| r.metadata.database_type.as_str()))
            .field("local_country", &self.local_country)
            .finish()
    }
}

impl Geo {
    /// Loads the country database at `path` (none: every non-local address is `??`).
    /// Local addresses are reported as `local_country`.
    pub fn open(path: Option<&Path>, local_country: &str) -> Result<Geo, GeoError> {
        let reader = path
            .map(|p| Reader::open_readfile(p).map_err(|source| GeoError::Open { path: p.to_owned(), source }))
            .transpose()?;
        Ok(Geo { reader, local_country: local_country.to_owned() })
    }

    /// ISO country code of `ip` (`JP`), the local country for local addresses, or `??`.
    pub fn country(&self, ip: IpAddr) -> String {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if is_local(ip) {
            return self.local_country.clone();
        }
        let Some(reader) = &self.reader else {
            return UNKNOWN_COUNTRY.to_owned();
        };
        match reader.lookup::<geoip2::Country>(ip) {
            Ok(Some(record)) => record
                .country
                .and_then(|c| c.iso_code)
                .or_else(|| record.registered_country.and_then(|c| c.iso_code))
                .unwrap_or(UNKNOWN_COUNTRY)
                .to_owned(),
            Ok(None) | Err(_) => UNKNOWN_COUNTRY.to_owned(),
        }
    }
}

/// Whether `ip` is an address that never leaves the operator's networks (loopback, private,
/// link-local, carrier-grade NAT, unique local; IPv4-mapped IPv6 by its IPv4 address).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| is_local_v6(v6), is_local_v4),
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (b & 0b1100_0000) == 64;
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || cgnat
}

fn is_local_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    ip.is_loopback() || unique_local || link_local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ranges() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local} should be local");
        }
        for public in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "100.63.255.255", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_local(public.parse().unwrap()), "{public} should not be local");
        }
    }
}
