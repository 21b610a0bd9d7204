//! One decision against an engine holding 1,000 services' policies (2 required + 1 deny conditions
//! each, mixing group, IP range, country and hour conditions): allowed, denied because a required
//! condition does not hold (which also evaluates the explanation policies), denied by a deny condition,
//! and allowed for a principal and address the engine's caches have not seen.

#![expect(clippy::unwrap_used, reason = "a benchmark has nowhere to report a setup failure but a panic")]
#![allow(clippy::disallowed_methods, reason = "measures the policy engine itself")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sekisho_policy::{AccessRequest, Engine, Principal, ServiceInfo, ServicePolicy};
use time::macros::datetime;

const SERVICES: usize = 1_000;

fn policy(i: usize) -> ServicePolicy {
    let (required, deny): (&[&str], &str) = match i % 4 {
        0 => (&["principal in Group::\"ops\"", "context.hour >= 8 && context.hour < 20"], "context.country == \"KP\""),
        1 => (
            &["context.source_ip.isInRange(ip(\"10.0.0.0/8\"))", "principal in Group::\"dev\""],
            "[\"sat\",\"sun\"].contains(context.weekday)",
        ),
        2 => (
            &["[\"JP\",\"US\"].contains(context.country)", "context.path == \"tunnel\""],
            "context.source_ip.isInRange(ip(\"10.66.0.0/16\"))",
        ),
        _ => (
            &["context has agent && context.agent.site == \"tokyo\"", "context.minute_of_day >= 540"],
            "principal in Group::\"contractors\"",
        ),
    };
    ServicePolicy {
        required: required.iter().map(|s| (*s).to_owned()).collect(),
        deny: vec![deny.to_owned()],
        ..Default::default()
    }
}

fn request(service: &str, groups: &[&str], source_ip: &str) -> AccessRequest {
    AccessRequest {
        tenant: "acme".to_owned(),
        principal: Principal::User {
            name: "alice".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        },
        via_agent: None,
        service: ServiceInfo { name: service.to_owned(), protocol: "http".to_owned() },
        source_ip: source_ip.parse().unwrap(),
        country: "JP".to_owned(),
        at: datetime!(2026-11-23 09:00 +09:00),
        auth_method: sekisho_policy::AuthMethod::PasswordTotp,
        path: sekisho_policy::AccessPath::Tunnel,
        destination: None,
    }
}

fn decide(c: &mut Criterion) {
    let mut engine = Engine::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i}");
        let compiled = engine.compile(&name, &policy(i)).unwrap();
        engine.insert("acme", &name, compiled);
    }
    // svc-501: 10.0.0.0/8 and group `dev` required, weekends denied (a Monday).
    let allowed = request("svc-501", &["dev", "staff"], "10.1.2.3");
    let not_in_group = request("svc-501", &["staff"], "10.1.2.3");
    // svc-502: from 10.66.0.0/16 is denied.
    let deny_hit = request("svc-502", &["dev"], "10.66.1.1");
    assert!(engine.decide(&allowed).allowed);
    assert_eq!(engine.decide(&not_in_group).policy_id, "svc-501/required/1");
    assert_eq!(engine.decide(&deny_hit).policy_id, "svc-502/deny/0");

    c.bench_function("decide/allowed", |b| b.iter(|| engine.decide(black_box(&allowed))));
    // A different user and address every time, so neither the entity nor the address cache helps.
    let strangers: Vec<_> = (0..8_192)
        .map(|i| {
            let mut req = request("svc-501", &["dev"], &format!("10.0.{}.{}", i / 256, i % 256));
            req.principal = Principal::User { name: format!("user-{i}"), groups: vec!["dev".to_owned()] };
            req
        })
        .collect();
    let mut next = strangers.iter().cycle();
    c.bench_function("decide/allowed_uncached", |b| {
        b.iter(|| engine.decide(black_box(next.next().unwrap_or(&allowed))))
    });
    c.bench_function("decide/denied_required_unmet", |b| b.iter(|| engine.decide(black_box(&not_in_group))));
    c.bench_function("decide/denied_by_deny", |b| b.iter(|| engine.decide(black_box(&deny_hit))));
}

criterion_group!(benches, decide);
criterion_main!(benches);
