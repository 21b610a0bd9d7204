//! The SOCKS5 handshake (RFC 1928) with username/password authentication (RFC 1929), as pure
//! functions over a byte buffer: each `parse_*` answers `Ok(None)` while the message is incomplete,
//! `Ok(Some((message, length)))` once it is whole, and an error for bytes no client should send.
//! No I/O here, so the parser is tested (and fuzzed) on its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sekisho_door::names::normalize_domain;

pub(crate) const VERSION: u8 = 5;
/// RFC 1929 sub-negotiation version.
pub(crate) const AUTH_VERSION: u8 = 1;
pub(crate) const METHOD_USER_PASSWORD: u8 = 2;
pub(crate) const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
pub(crate) const CMD_CONNECT: u8 = 1;
pub(crate) const CMD_BIND: u8 = 2;
pub(crate) const CMD_UDP_ASSOCIATE: u8 = 3;

/// Reply codes of RFC 1928 section 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// Bytes that are not a SOCKS5 handshake, with what to tell the client (if anything) and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SocksError {
    #[error("not a SOCKS5 client: version byte {0:#04x} (expected 0x05)")]
    Version(u8),
    #[error("the client offered no authentication methods")]
    NoMethods,
    #[error("bad username/password sub-negotiation version {0:#04x} (expected 0x01)")]
    AuthVersion(u8),
    #[error("the username is empty")]
    EmptyUser,
    #[error("the username or password is not UTF-8")]
    NotUtf8,
    #[error("address type {0:#04x} is not supported")]
    AddressType(u8),
    #[error("the domain name is empty or not a host name")]
    BadDomain,
}

impl SocksError {
    /// The reply a client gets for this error in a request, if one is due.
    pub(crate) fn reply(&self) -> Option<Reply> {
        match self {
            SocksError::AddressType(_) => Some(Reply::AddressTypeNotSupported),
            SocksError::BadDomain => Some(Reply::GeneralFailure),
            _ => None,
        }
    }
}

pub(crate) type Parsed<T> = Result<Option<(T, usize)>, SocksError>;

/// The client's first message: the authentication methods it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Greeting {
    pub(crate) methods: Vec<u8>,
}

pub(crate) fn parse_greeting(buf: &[u8]) -> Parsed<Greeting> {
    let Some(&version) = buf.first() else { return Ok(None) };
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let Some(&n) = buf.get(1) else { return Ok(None) };
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + usize::from(n);
    let Some(methods) = buf.get(2..end) else { return Ok(None) };
    Ok(Some((Greeting { methods: methods.to_vec() }, end)))
}

/// Username and password (RFC 1929).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

pub(crate) fn parse_credentials(buf: &[u8]) -> Parsed<Credentials> {
    let Some(&version) = buf.first() else { return Ok(None) };
    if version != AUTH_VERSION {
        return Err(SocksError::AuthVersion(version));
    }
    let Some(&ulen) = buf.get(1) else { return Ok(None) };
    let user_end = 2 + usize::from(ulen);
    let Some(user) = buf.get(2..user_end) else { return Ok(None) };
    let Some(&plen) = buf.get(user_end) else { return Ok(None) };
    let end = user_end + 1 + usize::from(plen);
    let Some(password) = buf.get(user_end + 1..end) else { return Ok(None) };
    if user.is_empty() {
        return Err(SocksError::EmptyUser);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SocksError::NotUtf8);
    Ok(Some((Credentials { user: text(user)?, password: text(password)? }, end)))
}

/// Where the client wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Ip(SocketAddr),
    /// A host name, lower case without a trailing dot ("remote DNS").
    Domain(String, u16),
}

impl Target {
    pub(crate) fn port(&self) -> u16 {
        match self {
            Target::Ip(a) => a.port(),
            Target::Domain(_, p) => *p,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ip(a) => write!(f, "{a}"),
            Target::Domain(d, p) => write!(f, "{d}:{p}"),
        }
    }
}

/// A request: the command and its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) command: u8,
    pub(crate) target: Target,
}

pub(crate) fn parse_request(buf: &[u8]) -> Parsed<Request> {
    let Some(&version) = buf.first() else { return Ok(None) };
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let (Some(&command), Some(&atyp)) = (buf.get(1), buf.get(3)) else { return Ok(None) };
    let (host_start, host_end) = match atyp {
        1 => (4, 8),
        4 => (4, 20),
        3 => {
            let Some(&len) = buf.get(4) else { return Ok(None) };
            (5, 5 + usize::from(len))
        }
        other => return Err(SocksError::AddressType(other)),
    };
    let end = host_end + 2;
    let Some(port) = buf.get(host_end..end) else { return Ok(None) };
    let port = u16::from_be_bytes([port[0], port[1]]);
    let host = &buf[host_start..host_end];
    let target = match atyp {
        1 => Target::Ip(SocketAddr::new(IpAddr::V4(v4(host)), port)),
        4 => Target::Ip(SocketAddr::new(IpAddr::V6(v6(host)), port)),
        _ => domain_target(host, port)?,
    };
    Ok(Some((Request { command, target }, end)))
}

fn v4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&b[..16]);
    Ipv6Addr::from(octets)
}

/// `name:port` as a domain target, if `name` is a host name.
pub(crate) fn domain(name: &str, port: u16) -> Option<Target> {
    domain_target(name.as_bytes(), port).ok()
}

/// A domain sent for remote resolution; an address written as text counts as that address.
fn domain_target(name: &[u8], port: u16) -> Result<Target, SocksError> {
    let name = std::str::from_utf8(name).map_err(|_| SocksError::BadDomain)?;
    if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(Target::Ip(SocketAddr::new(ip, port)));
    }
    let name = normalize_domain(name);
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if name.is_empty() || name.starts_with('.') || name.contains("..") || !name.bytes().all(host_char) {
        return Err(SocksError::BadDomain);
    }
    Ok(Target::Domain(name, port))
}

/// A reply to a request, with the address the relay connected from (zeros when there is none).
pub(crate) fn reply(code: Reply, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = vec![VERSION, code as u8, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode_request(command: u8, target: &Target) -> Vec<u8> {
        let mut out = vec![VERSION, command, 0];
        match target {
            Target::Ip(SocketAddr::V4(a)) => {
                out.push(1);
                out.extend_from_slice(&a.ip().octets());
            }
            Target::Ip(SocketAddr::V6(a)) => {
                out.push(4);
                out.extend_from_slice(&a.ip().octets());
            }
            Target::Domain(d, _) => {
                out.push(3);
                out.push(d.len() as u8);
                out.extend_from_slice(d.as_bytes());
            }
        }
        out.extend_from_slice(&target.port().to_be_bytes());
        out
    }

    #[test]
    fn messages_parse_whole_and_wait_when_partial() {
        let greeting = [5, 2, 0, 2];
        for cut in 0..greeting.len() {
            assert_eq!(parse_greeting(&greeting[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(parse_greeting(&greeting), Ok(Some((Greeting { methods: vec![0, 2] }, 4))));

        let auth = [1, 5, b'a', b'l', b'i', b'c', b'e', 3, b'k', b'e', b'y', 0xAA];
        for cut in 0..11 {
            assert_eq!(parse_credentials(&auth[..cut]), Ok(None), "{cut}");
        }
        let (c, n) = parse_credentials(&auth).unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str(), n), ("alice", "key", 11));
        assert!(!format!("{c:?}").contains("key"), "the password stays out of logs");

        let req = encode_request(CMD_CONNECT, &Target::Domain("example.com".into(), 443));
        for cut in 0..req.len() {
            assert_eq!(parse_request(&req[..cut]), Ok(None), "{cut}");
        }
        let mut with_data = req.clone();
        with_data.extend_from_slice(b"GET /");
        let (r, n) = parse_request(&with_data).unwrap().unwrap();
        assert_eq!((r.target.to_string(), n), ("example.com:443".to_owned(), req.len()));
    }

    #[test]
    fn bad_bytes_are_named() {
        assert_eq!(parse_greeting(b"GET / HTTP/1.1"), Err(SocksError::Version(b'G')));
        assert_eq!(parse_greeting(&[5, 0]), Err(SocksError::NoMethods));
        assert_eq!(parse_credentials(&[5, 1, b'a', 0]), Err(SocksError::AuthVersion(5)));
        assert_eq!(parse_credentials(&[1, 0, 1, b'x']), Err(SocksError::EmptyUser));
        assert_eq!(parse_request(&[5, 1, 0, 9, 0, 0]), Err(SocksError::AddressType(9)));
        assert_eq!(SocksError::AddressType(9).reply(), Some(Reply::AddressTypeNotSupported));
        let bad = encode_request(CMD_CONNECT, &Target::Domain("a b".into(), 80));
        assert_eq!(parse_request(&bad), Err(SocksError::BadDomain));
        let empty = [5, 1, 0, 3, 0, 0, 80];
        assert_eq!(parse_request(&empty), Err(SocksError::BadDomain));
    }

    #[test]
    fn domains_are_normalised_and_addresses_as_text_are_addresses() {
        let r = |name: &str| parse_request(&encode_request(1, &Target::Domain(name.into(), 80))).unwrap().unwrap().0;
        assert_eq!(r("WWW.Example.COM.").target, Target::Domain("www.example.com".into(), 80));
        assert_eq!(r("127.0.0.1").target, Target::Ip("127.0.0.1:80".parse().unwrap()));
        assert_eq!(r("[::1]").target, Target::Ip("[::1]:80".parse().unwrap()));
    }

    #[test]
    fn replies_carry_the_bound_address() {
        assert_eq!(reply(Reply::NotAllowed, None), [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
        let v6 = reply(Reply::Succeeded, Some("[::1]:258".parse().unwrap()));
        assert_eq!((v6.len(), v6[3], &v6[20..]), (22, 4, &[1u8, 2][..]));
    }

    proptest! {
        /// Whatever arrives, the parsers answer (never panic), and what they accept they
        /// accept whole: a message never claims more bytes than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Some((_, n))) = parse_greeting(&bytes) { prop_assert!(n <= bytes.len()); }
            if let Ok(Some((_, n))) = parse_credentials(&bytes) { prop_assert!(n <= bytes.len()); }
            if let Ok(Some((_, n))) = parse_request(&bytes) { prop_assert!(n <= bytes.len()); }
        }

        /// Requests round-trip, whatever the split of the bytes.
        #[test]
        fn requests_round_trip(
            command in 1u8..4,
            v4 in any::<[u8; 4]>(),
            v6 in any::<[u8; 16]>(),
            name in "[a-z0-9][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,20}){0,4}",
            port in any::<u16>(),
            kind in 0u8..3,
        ) {
            let target = match kind {
                0 => Target::Ip(SocketAddr::new(IpAddr::from(v4), port)),
                1 => Target::Ip(SocketAddr::new(IpAddr::from(v6), port)),
                _ => Target::Domain(name.clone(), port),
            };
            prop_assume!(!matches!(&target, Target::Domain(d, _) if d.parse::<IpAddr>().is_ok()));
            let bytes = encode_request(command, &target);
            let parsed = parse_request(&bytes);
            prop_assert_eq!(parsed, Ok(Some((Request { command, target }, bytes.len()))));
        }
    }
}
