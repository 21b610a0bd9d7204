//! The domain types rows are parsed into at the store boundary: identifiers that cannot be mixed
//! up (a tenant's id is not an agent's), the closed sets of words the database keeps as text
//! (`Role`, `Protocol`), and real booleans for its 0/1 flags. A row whose text is not one of the
//! words fails to load with a named error instead of becoming a default.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id_type!(
    /// A tenant's id (`tn_…`; the first tenant's is `default`).
    TenantId
);
id_type!(
    /// An agent's id (`ag_…`).
    AgentId
);
id_type!(
    /// A service's id (`sv_…`).
    ServiceId
);
id_type!(
    /// A user's id (`us_…`).
    UserId
);
id_type!(
    /// A route's id (`rt_…`).
    RouteId
);

/// A word the database holds that is not one of its closed set (a hand edit, a newer relay's
/// value): the row does not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a known {what}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
}

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word as stored and as the API and the policy language say it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { what: $what, value: s.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;
            fn try_from(s: String) -> Result<Self, UnknownWord> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl From<$name> for String {
            fn from(w: $name) -> String {
                w.as_str().to_owned()
            }
        }
    };
}

word_enum!(
    /// What an agent does: opens local addresses (`front`), forwards to private targets
    /// (`back`), or both.
    Role, "agent role" {
        Front = "front",
        Back = "back",
        Both = "both",
    }
);

impl Role {
    pub fn serves_back(self) -> bool {
        matches!(self, Role::Back | Role::Both)
    }

    pub fn serves_front(self) -> bool {
        matches!(self, Role::Front | Role::Both)
    }
}

word_enum!(
    /// How a service's target is spoken to.
    Protocol, "service protocol" {
        Tcp = "tcp",
        Http = "http",
        Https = "https",
        Ssh = "ssh",
        Telnet = "telnet",
        /// A SOCKS5 gateway (its egress is the relay or a back agent).
        Socks = "socks",
    }
);

impl Protocol {
    /// Reached through the relay's SSH bastion, which records it.
    pub fn is_bastion(self) -> bool {
        matches!(self, Protocol::Ssh | Protocol::Telnet)
    }
}

/// A 0/1 flag column as a boolean (the portable SQL subset has no booleans); serialised as 0/1,
/// as the API has always shown it.
pub mod flag {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::from(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_are_named() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse::<Protocol>(), Ok(*p));
        }
        let e = "sideways".parse::<Role>().unwrap_err();
        assert_eq!(e.to_string(), "`sideways` is not a known agent role");
        assert_eq!(String::from(Protocol::Socks), "socks");
    }

    #[test]
    fn ids_compare_with_text_and_look_up_by_text() {
        let id = TenantId::new("default");
        assert!(id == "default" && *"default" == id);
        let mut m = std::collections::HashMap::new();
        m.insert(id.clone(), 1);
        assert_eq!(m.get("default"), Some(&1));
        assert_eq!(id.to_string(), "default");
    }
}
