//! A small MaxMind DB writer, for test fixtures only.
//!
//! Writes an IPv6 tree (IPv4 networks live under `::/96`, where readers look them up) with 32-bit
//! records, one `{"country": {"iso_code": …}}` record per distinct code, and GeoLite2-Country metadata.
//! Output is deterministic (a fixed build epoch), so a checked-in fixture can be compared against a
//! fresh one. Format: <https://maxmind.github.io/MaxMind-DB/>.

use std::io;
use std::net::IpAddr;
use std::path::Path;

/// Bytes between the search tree and the data section.
const DATA_SECTION_SEPARATOR: [u8; 16] = [0; 16];
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Fixed so that the same entries always give the same bytes (2026-01-01T00:00:00Z).
const BUILD_EPOCH: u64 = 1_767_225_600;

// MaxMind DB data types.
const POINTER_FREE_STRING: u8 = 2;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// Writes a GeoLite2-Country-shaped database mapping each CIDR (`"1.2.3.0/24"`, `"2001:db8::/32"`) to
/// an ISO country code, for test fixtures. Longer prefixes win over shorter ones they fall in; host bits
/// are ignored. Errors on an unparsable CIDR or `::/0`.
pub fn write_test_db(path: &Path, entries: &[(&str, &str)]) -> io::Result<()> {
    std::fs::write(path, build(entries)?)
}

/// One child of a search-tree node.
#[derive(Debug, Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    /// Index into the distinct data records.
    Data(usize),
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The network as a 128-bit IPv6 tree key and prefix length.
fn parse_cidr(cidr: &str) -> io::Result<(u128, u32)> {
    let (addr, len) = cidr.split_once('/').ok_or_else(|| invalid(format!("`{cidr}` is not a CIDR")))?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid(format!("`{cidr}` has an invalid address")))?;
    let len: u32 = len.parse().map_err(|_| invalid(format!("`{cidr}` has an invalid prefix length")))?;
    match addr {
        IpAddr::V4(v4) if len <= 32 => Ok((u128::from(u32::from(v4)), len + 96)),
        IpAddr::V6(v6) if (1..=128).contains(&len) => Ok((u128::from(v6), len)),
        _ => Err(invalid(format!("`{cidr}` has an unusable prefix length"))),
    }
}

pub(crate) fn build(entries: &[(&str, &str)]) -> io::Result<Vec<u8>> {
    let mut codes: Vec<&str> = Vec::new();
    let mut networks = Vec::with_capacity(entries.len());
    for &(cidr, code) in entries {
        let (key, len) = parse_cidr(cidr)?;
        let data = codes.iter().position(|c| *c == code).unwrap_or_else(|| {
            codes.push(code);
            codes.len() - 1
        });
        networks.push((key, len, data));
    }
    // Shorter prefixes first, so a longer one nested in them splits their data further down.
    networks.sort_by_key(|&(_, len, _)| len);

    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    for (key, len, data) in networks {
        let mut node = 0;
        for depth in 0..len {
            let bit = ((key >> (127 - depth)) & 1) as usize;
            if depth == len - 1 {
                nodes[node][bit] = Record::Data(data);
                break;
            }
            node = match nodes[node][bit] {
                Record::Node(next) => next,
                fill @ (Record::Empty | Record::Data(_)) => {
                    nodes.push([fill; 2]);
                    let next = nodes.len() - 1;
                    nodes[node][bit] = Record::Node(next);
                    next
                }
            };
        }
    }

    let mut data_section = Vec::new();
    let mut offsets = Vec::with_capacity(codes.len());
    for code in &codes {
        offsets.push(data_section.len());
        map_header(&mut data_section, 1);
        string(&mut data_section, "country");
        map_header(&mut data_section, 1);
        string(&mut data_section, "iso_code");
        string(&mut data_section, code);
    }

    let node_count = nodes.len();
    let mut out = Vec::with_capacity(node_count * 8 + data_section.len() + 256);
    for node in &nodes {
        for record in node {
            let value = match *record {
                Record::Empty => node_count,
                Record::Node(n) => n,
                Record::Data(d) => node_count + DATA_SECTION_SEPARATOR.len() + offsets[d],
            };
            let value = u32::try_from(value).map_err(|_| invalid("test database too large".to_owned()))?;
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
    out.extend_from_slice(&DATA_SECTION_SEPARATOR);
    out.extend_from_slice(&data_section);
    out.extend_from_slice(METADATA_MARKER);
    metadata(&mut out, node_count as u64);
    Ok(out)
}

fn metadata(out: &mut Vec<u8>, node_count: u64) {
    map_header(out, 9);
    string(out, "binary_format_major_version");
    uint(out, UINT16, 2);
    string(out, "binary_format_minor_version");
    uint(out, UINT16, 0);
    string(out, "build_epoch");
    uint(out, UINT64, BUILD_EPOCH);
    string(out, "database_type");
    string(out, "GeoLite2-Country");
    string(out, "description");
    map_header(out, 1);
    string(out, "en");
    string(out, "Sekisho test fixture");
    string(out, "ip_version");
    uint(out, UINT16, 6);
    string(out, "languages");
    control(out, ARRAY, 1);
    string(out, "en");
    string(out, "node_count");
    uint(out, UINT32, node_count);
    string(out, "record_size");
    uint(out, UINT16, 32);
}

/// A control byte (plus extended-type and size bytes) for a value of `type_num` and `size`.
fn control(out: &mut Vec<u8>, type_num: u8, size: usize) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&extra);
}

fn map_header(out: &mut Vec<u8>, entries: usize) {
    control(out, MAP, entries);
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, POINTER_FREE_STRING, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer in as few big-endian bytes as it needs.
fn uint(out: &mut Vec<u8>, type_num: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, type_num, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_cidrs() {
        for bad in ["1.2.3.4", "1.2.3.0/33", "::/129", "::/0", "x/8", "1.2.3.0/x"] {
            assert!(build(&[(bad, "US")]).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn control_bytes_follow_the_spec() {
        let mut out = Vec::new();
        control(&mut out, POINTER_FREE_STRING, 3);
        assert_eq!(out, [0b010_00011]);
        out.clear();
        control(&mut out, ARRAY, 2);
        assert_eq!(out, [0b000_00010, 4]);
        out.clear();
        control(&mut out, POINTER_FREE_STRING, 100);
        assert_eq!(out, [0b010_11101, 71]);
        out.clear();
        uint(&mut out, UINT16, 0);
        assert_eq!(out, [0b101_00000]);
    }
}
