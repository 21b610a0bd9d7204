//! The typed parts of an access that policies see as strings: the path it came by
//! (`context.path`) and how its subject proved who they are (`context.auth_method`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The front door an access came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessPath {
    /// A stream from a front agent along a route.
    Tunnel,
    /// A plain TCP connection to a relay edge port.
    Edge,
    /// A request of a signed-in browser to a service host.
    Browser,
    /// A session through the SSH bastion.
    Ssh,
    /// A connection through the SOCKS5 / HTTP CONNECT gateway.
    Socks,
}

impl AccessPath {
    pub const ALL: [AccessPath; 5] =
        [AccessPath::Tunnel, AccessPath::Edge, AccessPath::Browser, AccessPath::Ssh, AccessPath::Socks];

    /// The word policies compare `context.path` with.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessPath::Tunnel => "tunnel",
            AccessPath::Edge => "edge",
            AccessPath::Browser => "browser",
            AccessPath::Ssh => "ssh",
            AccessPath::Socks => "socks",
        }
    }
}

/// How the subject of an access authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthMethod {
    /// An agent's enrolled key (tunnel streams).
    #[serde(rename = "agent_key")]
    AgentKey,
    /// Nobody: a relay edge port's visitor.
    #[serde(rename = "none")]
    None,
    /// An API key (the gateway's proxy password).
    #[serde(rename = "api_key")]
    ApiKey,
    /// A password alone.
    #[serde(rename = "password")]
    Password,
    /// A password and a TOTP code.
    #[serde(rename = "password+totp")]
    PasswordTotp,
    /// An SSH key and a TOTP code.
    #[serde(rename = "publickey+totp")]
    PublicKeyTotp,
    /// Single sign-on with the tenant's OpenID Connect provider.
    #[serde(rename = "oidc")]
    Oidc,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 7] = [
        AuthMethod::AgentKey,
        AuthMethod::None,
        AuthMethod::ApiKey,
        AuthMethod::Password,
        AuthMethod::PasswordTotp,
        AuthMethod::PublicKeyTotp,
        AuthMethod::Oidc,
    ];

    /// The word policies compare `context.auth_method` with.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::AgentKey => "agent_key",
            AuthMethod::None => "none",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Password => "password",
            AuthMethod::PasswordTotp => "password+totp",
            AuthMethod::PublicKeyTotp => "publickey+totp",
            AuthMethod::Oidc => "oidc",
        }
    }
}

/// A word that names no path or method; the message lists the ones there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not one of {expected}")]
pub struct UnknownWord {
    pub word: String,
    pub expected: String,
}

fn parse<T: Copy>(word: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Result<T, UnknownWord> {
    all.iter().copied().find(|v| name(*v) == word).ok_or_else(|| UnknownWord {
        word: word.to_owned(),
        expected: all.iter().map(|v| format!("`{}`", name(*v))).collect::<Vec<_>>().join(", "),
    })
}

impl FromStr for AccessPath {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s, &AccessPath::ALL, AccessPath::as_str)
    }
}

impl FromStr for AuthMethod {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s, &AuthMethod::ALL, AuthMethod::as_str)
    }
}

impl fmt::Display for AccessPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_list_the_known_ones() {
        for p in AccessPath::ALL {
            assert_eq!(p.as_str().parse::<AccessPath>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).ok(), Some(format!("\"{p}\"")));
        }
        for m in AuthMethod::ALL {
            assert_eq!(m.as_str().parse::<AuthMethod>(), Ok(m));
            assert_eq!(serde_json::to_string(&m).ok(), Some(format!("\"{m}\"")));
        }
        let e = "carrier-pigeon".parse::<AccessPath>().unwrap_err();
        assert_eq!(e.to_string(), "`carrier-pigeon` is not one of `tunnel`, `edge`, `browser`, `ssh`, `socks`");
    }
}
