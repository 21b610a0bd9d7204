//! Recursive input at growing depth, sent as a tenant admin would: a policy condition of nested
//! parentheses (about 150 levels once aborted the whole relay), and JSON bodies nested 10,000
//! deep. Each gets a precise `400`, and the relay goes on serving every tenant.

use serde_json::json;

use crate::harness::Relay;
use crate::targets;

#[tokio::test]
async fn nested_policy_text_and_json_are_refused_and_no_tenant_notices() {
    let relay = Relay::start().await;
    // Another tenant's working route, checked after every attack.
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    let still_works = || async { assert_eq!(targets::roundtrip(addr, b"x").await.unwrap(), b"ok:x") };

    let (status, v) = relay.api("POST", "/api/v1/tenants", Some(json!({ "name": "acme" })), &relay.admin_key).await;
    assert_eq!(status, 201, "{v}");
    let acme = v["admin_key"].as_str().unwrap().to_owned();
    let (status, v) =
        relay.api("POST", "/api/v1/services", Some(json!({"name": "web", "target": "socks"})), &acme).await;
    assert_eq!(status, 201, "{v}");

    for depth in [33, 150, 1_000, 10_000] {
        let deep = format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
        let body = json!({ "required": ["true"], "deny": [deep] });
        let (status, v) = relay.api("PUT", "/api/v1/policies/web", Some(body), &acme).await;
        assert_eq!(status, 400, "depth {depth}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        let expected = if depth * 2 + 4 > 8 * 1024 { "longer than 8192 bytes" } else { "nests more than 32 levels" };
        assert!(message.contains(expected), "depth {depth}: {v}");
        assert_eq!(v["error"]["diagnostics"][0]["kind"], "deny", "{v}");
        still_works().await;
    }
    // At the bound the condition is ordinary Cedar.
    let ok = format!("{}false{}", "(".repeat(32), ")".repeat(32));
    let (status, v) =
        relay.api("PUT", "/api/v1/policies/web", Some(json!({"required": ["true"], "deny": [ok]})), &acme).await;
    assert_eq!(status, 200, "{v}");

    // JSON nested 10,000 deep, in each place a body can nest: refused by the parser's own limit.
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    for body in [
        nest(10_000),
        format!("{{\"required\": {}}}", nest(10_000)),
        format!("{{\"required\": [\"true\"], \"extra\": {}}}", "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000)),
    ] {
        let (status, text) = relay.api_raw("PUT", "/api/v1/policies/web", body, &acme).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("bad_json"), "{text}");
        still_works().await;
    }
    let (status, text) = relay.api_raw("POST", "/api/v1/policies/test", nest(10_000), &acme).await;
    assert_eq!(status, 400, "{text}");

    // The refusals did not touch the policy that was accepted, and the relay still answers.
    let (status, v) = relay.api("GET", "/api/v1/policies/web", None, &acme).await;
    assert_eq!((status, v["deny"][0].as_str()), (200, Some(ok.as_str())), "{v}");
    still_works().await;
}
