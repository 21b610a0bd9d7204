//! The Cedar schema every condition is validated against, and the entity/attribute names the engine
//! fills in at request time. Keep the two in step: `engine.rs` builds exactly these entities and context.

/// The Cedar schema (human syntax, no namespace) that conditions are written against.
///
/// Entity ids are names: `User::"alice"`, `Group::"ops"`, `Service::"wiki"`, `Agent::"tokyo-pc"`.
/// Names are unique within a tenant and policies are per tenant, so names never collide in a decision.
pub const SCHEMA: &str = r#"entity Tenant;
entity Group in [Tenant] { name: String };
entity User in [Group, Tenant] { name: String };
// Placeholder for device posture; nothing creates devices yet.
entity Device in [User];
entity Agent in [Tenant] { name: String, site: String, role: String };
entity Service in [Tenant] { name: String, protocol: String };
// An unauthenticated client of a relay edge port; id and name are its IP address.
entity Visitor in [Tenant] { name: String };

action access appliesTo {
  principal: [User, Agent, Visitor],
  resource: [Service],
  context: {
    source_ip: ipaddr,
    country: String,
    hour: Long,
    minute_of_day: Long,
    // "mon", "tue", "wed", "thu", "fri", "sat", "sun"
    weekday: String,
    auth_method: String,
    // "tunnel", "edge", "browser", "ssh" or "socks"
    path: String,
    // the front agent a user came through, when there is one
    agent?: Agent,
    // Gateways (path "socks"): the destination asked for. `domain` is lower-case without a
    // trailing dot, "" when the client sent an address; `port` is 0 on other paths. `dest_ip` is
    // there when the address is known before connecting (an address was sent, or the relay
    // resolved the domain for direct egress).
    domain: String,
    port: Long,
    dest_ip?: ipaddr,
  }
};
"#;
