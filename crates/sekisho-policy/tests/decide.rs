//! Decisions: who, from where and when, against required and deny conditions.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]
#![allow(clippy::disallowed_methods, reason = "the policy engine's own tests call it directly")]

use std::net::IpAddr;

use sekisho_policy::{AccessRequest, AgentInfo, Decision, Engine, Principal, ServiceInfo, ServicePolicy};
use time::OffsetDateTime;
use time::macros::datetime;

/// Monday, 09:00 in the tenant's offset.
const MONDAY_NINE: OffsetDateTime = datetime!(2026-11-23 09:00 +09:00);

fn engine(tenant: &str, service: &str, required: &[&str], deny: &[&str]) -> Engine {
    let mut engine = Engine::new();
    add(&mut engine, tenant, service, required, deny);
    engine
}

fn add(engine: &mut Engine, tenant: &str, service: &str, required: &[&str], deny: &[&str]) {
    let policy = ServicePolicy {
        required: required.iter().map(|s| (*s).to_owned()).collect(),
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let compiled = engine.compile(service, &policy).unwrap();
    engine.insert(tenant, service, compiled);
}

/// alice (groups `dev`) of tenant `acme` from 203.0.113.5 in JP at [`MONDAY_NINE`], to `wiki` by tunnel.
fn alice() -> AccessRequest {
    AccessRequest {
        tenant: "acme".to_owned(),
        principal: Principal::User { name: "alice".to_owned(), groups: vec!["dev".to_owned()] },
        via_agent: None,
        service: ServiceInfo { name: "wiki".to_owned(), protocol: "http".to_owned() },
        source_ip: "203.0.113.5".parse().unwrap(),
        country: "JP".to_owned(),
        at: MONDAY_NINE,
        auth_method: sekisho_policy::AuthMethod::PasswordTotp,
        path: sekisho_policy::AccessPath::Tunnel,
        destination: None,
    }
}

fn in_groups(groups: &[&str]) -> AccessRequest {
    AccessRequest {
        principal: Principal::User {
            name: "alice".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        },
        ..alice()
    }
}

fn from_ip(ip: &str) -> AccessRequest {
    AccessRequest { source_ip: ip.parse::<IpAddr>().unwrap(), ..alice() }
}

fn at(at: OffsetDateTime) -> AccessRequest {
    AccessRequest { at, ..alice() }
}

fn allowed(d: &Decision) {
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policy_id, "wiki/required");
    assert_eq!(d.reason, "all required conditions hold");
}

fn gateway_allows(d: &Decision) {
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policy_id, "internet/required");
}

fn denied<'a>(d: &'a Decision, policy_id: &str) -> &'a str {
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.policy_id, policy_id, "{d:?}");
    &d.reason
}

#[test]
fn allowed_when_all_required_hold_and_no_deny_does() {
    let e = engine("acme", "wiki", &["true", "context.path == \"tunnel\""], &["context.country == \"KP\""]);
    allowed(&e.decide(&alice()));
}

#[test]
fn denied_by_a_deny_condition_names_it() {
    let e =
        engine("acme", "wiki", &["true"], &["context.country == \"KP\"", "context.auth_method == \"password+totp\""]);
    let d = e.decide(&alice());
    assert_eq!(denied(&d, "wiki/deny/1"), "context.auth_method == \"password+totp\"");
    allowed(&e.decide(&AccessRequest { auth_method: sekisho_policy::AuthMethod::PublicKeyTotp, ..alice() }));
}

#[test]
fn denied_by_an_unmet_required_condition_names_its_index() {
    let e = engine("acme", "wiki", &["true", "context.country == \"JP\"", "context.path == \"ssh\"", "false"], &[]);
    let d = e.decide(&alice());
    assert_eq!(denied(&d, "wiki/required/2"), "required condition not met: context.path == \"ssh\"");
}

#[test]
fn no_policy_for_the_service_is_default_deny() {
    let e = engine("acme", "git", &["true"], &[]);
    let d = e.decide(&alice());
    assert_eq!(denied(&d, "default-deny"), "no policy for service `wiki`");
}

#[test]
fn removing_a_policy_denies_again() {
    let mut e = engine("acme", "wiki", &["true"], &[]);
    allowed(&e.decide(&alice()));
    e.remove("acme", "wiki");
    denied(&e.decide(&alice()), "default-deny");
}

#[test]
fn inserting_replaces_the_previous_policy() {
    let mut e = engine("acme", "wiki", &["false"], &[]);
    denied(&e.decide(&alice()), "wiki/required/0");
    add(&mut e, "acme", "wiki", &["true"], &[]);
    allowed(&e.decide(&alice()));
}

#[test]
fn deny_conditions_without_required_ones_deny_everyone() {
    let e = engine("acme", "wiki", &[], &["context.country == \"KP\""]);
    let d = e.decide(&alice());
    assert_eq!(denied(&d, "wiki/required"), "no required conditions are set");
}

#[test]
fn group_membership() {
    let e = engine("acme", "wiki", &["principal in Group::\"ops\""], &["principal in Group::\"contractors\""]);
    allowed(&e.decide(&in_groups(&["dev", "ops"])));
    denied(&e.decide(&in_groups(&["dev"])), "wiki/required/0");
    denied(&e.decide(&in_groups(&["ops", "contractors"])), "wiki/deny/0");
    // Duplicate group names are harmless.
    allowed(&e.decide(&in_groups(&["ops", "ops"])));
}

#[test]
fn principal_and_tenant_entities() {
    let e = engine(
        "acme",
        "wiki",
        &["principal == User::\"alice\"", "principal in Tenant::\"acme\"", "principal.name == \"alice\""],
        &[],
    );
    allowed(&e.decide(&alice()));
    let bob = AccessRequest { principal: Principal::User { name: "bob".to_owned(), groups: vec![] }, ..alice() };
    denied(&e.decide(&bob), "wiki/required/0");
}

#[test]
fn user_through_a_front_agent() {
    let e = engine("acme", "wiki", &["context has agent && context.agent.site == \"tokyo\""], &[]);
    let via = |site: &str| AccessRequest {
        via_agent: Some(AgentInfo { name: "tokyo-pc".to_owned(), site: site.to_owned(), role: "front".to_owned() }),
        ..alice()
    };
    allowed(&e.decide(&via("tokyo")));
    denied(&e.decide(&via("osaka")), "wiki/required/0");
    denied(&e.decide(&alice()), "wiki/required/0");
}

#[test]
fn agent_as_principal() {
    let e = engine("acme", "wiki", &["principal is Agent && principal.role == \"connector\""], &[]);
    let agent = |role: &str| AccessRequest {
        principal: Principal::Agent { name: "osaka-1".to_owned(), site: "osaka".to_owned(), role: role.to_owned() },
        ..alice()
    };
    allowed(&e.decide(&agent("connector")));
    denied(&e.decide(&agent("front")), "wiki/required/0");
    denied(&e.decide(&alice()), "wiki/required/0");
}

#[test]
fn source_ip_ranges() {
    let e = engine(
        "acme",
        "wiki",
        &["context.source_ip.isInRange(ip(\"10.0.0.0/8\")) || context.source_ip.isInRange(ip(\"2001:db8::/32\"))"],
        &["context.source_ip.isInRange(ip(\"10.66.0.0/16\"))"],
    );
    allowed(&e.decide(&from_ip("10.1.2.3")));
    allowed(&e.decide(&from_ip("2001:db8::7")));
    denied(&e.decide(&from_ip("192.168.1.1")), "wiki/required/0");
    denied(&e.decide(&from_ip("10.66.1.1")), "wiki/deny/0");
}

#[test]
fn country() {
    let e = engine("acme", "wiki", &["[\"JP\", \"US\"].contains(context.country)"], &["context.country == \"??\""]);
    allowed(&e.decide(&alice()));
    denied(&e.decide(&AccessRequest { country: "FR".to_owned(), ..alice() }), "wiki/required/0");
    denied(&e.decide(&AccessRequest { country: "??".to_owned(), ..alice() }), "wiki/deny/0");
}

#[test]
fn office_hours_and_weekdays() {
    let e = engine(
        "acme",
        "wiki",
        &["context.hour >= 9 && context.hour < 18", "context.minute_of_day >= 540"],
        &["[\"sat\",\"sun\"].contains(context.weekday)"],
    );
    allowed(&e.decide(&at(MONDAY_NINE)));
    denied(&e.decide(&at(datetime!(2026-11-23 08:59 +09:00))), "wiki/required/0");
    denied(&e.decide(&at(datetime!(2026-11-23 18:00 +09:00))), "wiki/required/0");
    denied(&e.decide(&at(datetime!(2026-11-28 10:00 +09:00))), "wiki/deny/0");

    let exact = engine("acme", "wiki", &["context.weekday == \"mon\" && context.minute_of_day == 540"], &[]);
    allowed(&exact.decide(&at(MONDAY_NINE)));
    // The same instant seen from UTC is Monday 00:00.
    denied(&exact.decide(&at(datetime!(2026-11-23 00:00 UTC))), "wiki/required/0");
}

#[test]
fn tenants_are_isolated() {
    let mut e = engine("acme", "wiki", &["true"], &[]);
    add(&mut e, "globex", "wiki", &["false"], &[]);
    allowed(&e.decide(&alice()));
    denied(&e.decide(&AccessRequest { tenant: "globex".to_owned(), ..alice() }), "wiki/required/0");
    denied(&e.decide(&AccessRequest { tenant: "initech".to_owned(), ..alice() }), "default-deny");
    e.remove("globex", "wiki");
    allowed(&e.decide(&alice()));
}

#[test]
fn an_erroring_deny_condition_fails_closed() {
    // Integer overflow is a runtime error; Cedar alone would skip the forbid and allow.
    let e = engine("acme", "wiki", &["true"], &["context.hour * 9223372036854775807 > 0"]);
    let d = e.decide(&alice());
    let reason = denied(&d, "wiki/deny/0");
    assert!(reason.starts_with("policy error: ") && reason.contains("overflow"), "{reason}");
}

#[test]
fn an_erroring_required_condition_is_named() {
    let e = engine("acme", "wiki", &["true", "context.hour * 9223372036854775807 > 0"], &[]);
    let d = e.decide(&alice());
    assert!(denied(&d, "wiki/required/1").starts_with("policy error: "), "{d:?}");
}

#[test]
fn an_explicit_deny_wins_over_an_error() {
    let e = engine("acme", "wiki", &["true"], &["context.hour * 9223372036854775807 > 0", "true"]);
    assert_eq!(denied(&e.decide(&alice()), "wiki/deny/1"), "true");
}

#[test]
fn odd_service_names() {
    let name = "wi\"ki 日本";
    let e = engine("acme", name, &["resource.name == \"wi\\\"ki 日本\" && resource.protocol == \"http\""], &[]);
    let req = AccessRequest { service: ServiceInfo { name: name.to_owned(), protocol: "http".to_owned() }, ..alice() };
    let d = e.decide(&req);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policy_id, format!("{name}/required"));
}

#[test]
fn a_policy_that_does_not_compile_changes_nothing() {
    let e = engine("acme", "wiki", &["true"], &[]);
    let bad = ServicePolicy { required: vec!["context.nope".to_owned()], deny: vec![], ..Default::default() };
    assert!(e.compile("wiki", &bad).is_err());
    allowed(&e.decide(&alice()));
}

#[test]
fn edge_visitors_are_decided_by_address() {
    let mut engine = Engine::new();
    let policy = ServicePolicy {
        required: vec![r#"principal is Visitor && context.source_ip.isInRange(ip("192.0.2.0/24"))"#.into()],
        deny: vec![],
        ..Default::default()
    };
    let compiled = engine.compile("cam", &policy).unwrap();
    engine.insert("t1", "cam", compiled);
    let mut req = AccessRequest {
        tenant: "t1".into(),
        principal: Principal::Visitor { ip: "192.0.2.9".into() },
        via_agent: None,
        service: ServiceInfo { name: "cam".into(), protocol: "tcp".into() },
        source_ip: "192.0.2.9".parse().unwrap(),
        country: "JP".into(),
        at: time::macros::datetime!(2026-11-23 09:00 +09:00),
        auth_method: sekisho_policy::AuthMethod::None,
        path: sekisho_policy::AccessPath::Edge,
        destination: None,
    };
    assert!(engine.decide(&req).allowed);
    req.source_ip = "198.51.100.1".parse().unwrap();
    req.principal = Principal::Visitor { ip: "198.51.100.1".into() };
    let d = engine.decide(&req);
    assert_eq!((d.allowed, d.policy_id.as_str()), (false, "cam/required/0"));
}

fn socks(domain: &str, ip: Option<&str>, port: u16) -> AccessRequest {
    AccessRequest {
        service: ServiceInfo { name: "internet".to_owned(), protocol: "socks".to_owned() },
        path: sekisho_policy::AccessPath::Socks,
        destination: Some(sekisho_policy::Destination {
            domain: domain.to_owned(),
            ip: ip.map(|i| i.parse().unwrap()),
            port,
        }),
        ..alice()
    }
}

#[test]
fn gateway_domain_lists_match_the_domain_and_its_subdomains() {
    let mut e = Engine::new();
    let policy = ServicePolicy {
        required: vec!["context.port == 80 || context.port == 443".to_owned()],
        deny: vec![r#"context has dest_ip && context.dest_ip.isInRange(ip("10.0.0.0/8"))"#.to_owned()],
        allow_domains: vec!["Example.COM.".to_owned(), "*.wiki.test".to_owned()],
        deny_domains: vec!["deepseek.com".to_owned()],
    };
    let compiled = e.compile("internet", &policy).unwrap();
    assert_eq!(compiled.conditions(), policy, "admins see what they wrote");
    e.insert("acme", "internet", compiled);

    gateway_allows(&e.decide(&socks("example.com", None, 443)));
    gateway_allows(&e.decide(&socks("www.example.com", Some("93.184.216.34"), 80)));
    gateway_allows(&e.decide(&socks("a.wiki.test", None, 80)));
    denied(&e.decide(&socks("wiki.test", None, 80)), "internet/allow-domains");
    denied(&e.decide(&socks("notexample.com", None, 80)), "internet/allow-domains");
    denied(&e.decide(&socks("", Some("93.184.216.34"), 80)), "internet/allow-domains");
    denied(&e.decide(&socks("example.com", None, 22)), "internet/required/0");
    denied(&e.decide(&socks("www.example.com", Some("10.1.2.3"), 80)), "internet/deny/0");

    // The deny list wins over the allow list, and names itself in the reason.
    let both = ServicePolicy { deny_domains: vec!["example.com".to_owned()], ..policy.clone() };
    let compiled = e.compile("internet", &both).unwrap();
    e.insert("acme", "internet", compiled);
    let d = e.decide(&socks("cdn.example.com", None, 443));
    denied(&d, "internet/deny-domains");
    assert!(d.reason.contains("deny list"), "{d:?}");

    // Other paths have no domain: a deny list never matches them.
    let open = ServicePolicy {
        required: vec!["true".to_owned()],
        deny_domains: vec!["example.com".to_owned()],
        ..Default::default()
    };
    let compiled = e.compile("wiki", &open).unwrap();
    e.insert("acme", "wiki", compiled);
    allowed(&e.decide(&alice()));
}

#[test]
fn bad_domain_list_entries_are_named() {
    let e = Engine::new();
    let policy = ServicePolicy {
        required: vec!["true".to_owned()],
        deny_domains: vec!["ok.example".to_owned(), "bad domain".to_owned(), "*.".to_owned()],
        ..Default::default()
    };
    let err = e.compile("internet", &policy).unwrap_err();
    let named: Vec<_> = err.diagnostics.iter().map(|d| (d.kind, d.index)).collect();
    assert_eq!(
        named,
        [(sekisho_policy::ConditionKind::DenyDomains, 1), (sekisho_policy::ConditionKind::DenyDomains, 2)]
    );
    assert!(err.diagnostics[0].message.contains("bad domain"), "{err}");
    assert_eq!(sekisho_policy::domain_pattern("*.Example.com.").unwrap(), "*.example.com");
}
