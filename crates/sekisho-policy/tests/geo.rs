//! GeoIP lookups against databases written by `write_test_db`, read back by `maxminddb` itself.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};
use sekisho_policy::geo::{Geo, GeoError, TEST_DB_ENTRIES, write_test_db};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write(entries: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("country.mmdb");
    write_test_db(&path, entries).unwrap();
    (dir, path)
}

fn iso(reader: &Reader<Vec<u8>>, addr: &str) -> Option<String> {
    let record = reader.lookup::<geoip2::Country>(ip(addr)).unwrap()?;
    Some(record.country.unwrap().iso_code.unwrap().to_owned())
}

#[test]
fn maxminddb_reads_what_the_writer_wrote() {
    let (_dir, path) = write(&[("1.2.3.0/24", "US"), ("203.0.113.0/24", "JP"), ("2001:db8::/32", "DE")]);
    let reader = Reader::open_readfile(&path).unwrap();
    assert_eq!(reader.metadata.database_type, "GeoLite2-Country");
    assert_eq!(reader.metadata.ip_version, 6);
    assert_eq!(reader.metadata.record_size, 32);
    assert_eq!(reader.metadata.binary_format_major_version, 2);
    assert_eq!(reader.metadata.languages, ["en"]);

    assert_eq!(iso(&reader, "1.2.3.4").as_deref(), Some("US"));
    assert_eq!(iso(&reader, "1.2.3.255").as_deref(), Some("US"));
    assert_eq!(iso(&reader, "203.0.113.9").as_deref(), Some("JP"));
    assert_eq!(iso(&reader, "2001:db8:1234::1").as_deref(), Some("DE"));
    assert_eq!(iso(&reader, "1.2.4.0"), None);
    assert_eq!(iso(&reader, "203.0.112.255"), None);
    assert_eq!(iso(&reader, "2001:db9::1"), None);
    assert_eq!(iso(&reader, "8.8.8.8"), None);

    let (_, prefix) = reader.lookup_prefix::<geoip2::Country>(ip("203.0.113.9")).unwrap();
    assert_eq!(prefix, 24);
}

#[test]
fn longer_prefixes_win_inside_shorter_ones_in_any_order() {
    let (_dir, path) =
        write(&[("10.20.30.0/24", "FR"), ("10.0.0.0/8", "IT"), ("2001:db8:1::/48", "NL"), ("2001:db8::/32", "DE")]);
    let reader = Reader::open_readfile(&path).unwrap();
    assert_eq!(iso(&reader, "10.20.30.40").as_deref(), Some("FR"));
    assert_eq!(iso(&reader, "10.20.31.1").as_deref(), Some("IT"));
    assert_eq!(iso(&reader, "10.255.255.255").as_deref(), Some("IT"));
    assert_eq!(iso(&reader, "2001:db8:1::5").as_deref(), Some("NL"));
    assert_eq!(iso(&reader, "2001:db8:2::5").as_deref(), Some("DE"));
}

#[test]
fn geo_country_uses_the_database() {
    let (_dir, path) = write(TEST_DB_ENTRIES);
    let geo = Geo::open(Some(&path), "LOCAL").unwrap();
    assert_eq!(geo.country(ip("1.2.3.4")), "US");
    assert_eq!(geo.country(ip("203.0.113.200")), "JP");
    assert_eq!(geo.country(ip("2001:db8::1")), "DE");
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(geo.country(ip("::ffff:203.0.113.1")), "JP");
    assert_eq!(geo.country(ip("8.8.8.8")), "??");
    assert_eq!(geo.country(ip("2a00::1")), "??");
}

#[test]
fn local_addresses_get_the_configured_country() {
    let (_dir, path) = write(&[("10.0.0.0/8", "US"), ("1.2.3.0/24", "US")]);
    let geo = Geo::open(Some(&path), "JP-HQ").unwrap();
    // Local wins even where the database has an answer.
    for local in ["10.1.1.1", "127.0.0.1", "192.168.0.10", "172.20.0.1", "169.254.1.1", "100.100.0.1"] {
        assert_eq!(geo.country(ip(local)), "JP-HQ", "{local}");
    }
    for local in ["::1", "fd00::1", "fe80::1", "::ffff:192.168.1.1"] {
        assert_eq!(geo.country(ip(local)), "JP-HQ", "{local}");
    }
    assert_eq!(geo.country(ip("1.2.3.4")), "US");
    assert_eq!(geo.country(ip("100.128.0.1")), "??");
}

#[test]
fn without_a_database_only_local_addresses_are_known() {
    let geo = Geo::open(None, "LOCAL").unwrap();
    assert_eq!(geo.country(ip("10.0.0.1")), "LOCAL");
    assert_eq!(geo.country(ip("1.2.3.4")), "??");
}

#[test]
fn a_missing_database_is_an_error_naming_the_path() {
    let err = Geo::open(Some(Path::new("/nonexistent/country.mmdb")), "LOCAL").unwrap_err();
    assert!(matches!(err, GeoError::Open { .. }));
    assert!(err.to_string().starts_with("cannot open GeoIP database `/nonexistent/country.mmdb`: "), "{err}");
}

#[test]
fn the_writer_rejects_bad_networks() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_test_db(&dir.path().join("x.mmdb"), &[("1.2.3.0/40", "US")]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// The shipped fixture is exactly what the writer produces today. Run with `SEKISHO_WRITE_FIXTURES=1`
/// to regenerate it after changing the writer or [`TEST_DB_ENTRIES`].
#[test]
fn shipped_fixture_matches_the_writer() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo-test.mmdb");
    if std::env::var_os("SEKISHO_WRITE_FIXTURES").is_some() {
        write_test_db(&shipped, TEST_DB_ENTRIES).unwrap();
    }
    let (_dir, fresh) = write(TEST_DB_ENTRIES);
    assert!(std::fs::read(&fresh).unwrap() == std::fs::read(&shipped).unwrap(), "testdata/geo-test.mmdb is stale");

    let geo = Geo::open(Some(&shipped), "LOCAL").unwrap();
    assert_eq!(geo.country(ip("1.2.3.4")), "US");
    assert_eq!(geo.country(ip("203.0.113.1")), "JP");
    assert_eq!(geo.country(ip("2001:db8::1")), "DE");
}
