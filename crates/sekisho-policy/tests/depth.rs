//! Recursive input: conditions nested 10,000 deep are refused before Cedar parses them, and what
//! the bounds let through compiles and decides on a stack far smaller than a worker thread's.
//!
//! Every case runs on a thread with a [`SMALL_STACK`] stack: a stack overflow aborts the test
//! process, so a bound that is too loose fails here rather than in the relay. The README test
//! command runs this file in the debug build and again optimised (`--profile depth`), since
//! frame sizes differ between the two.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]
#![allow(clippy::disallowed_methods, reason = "the policy engine's own tests call it directly")]

use sekisho_policy::{
    AccessRequest, Destination, Engine, MAX_CONDITION_LEN, MAX_DOMAINS, MAX_NESTING, Principal, ServiceInfo,
    ServicePolicy,
};
use time::macros::datetime;

/// Half of a tokio worker's 2 MiB.
const SMALL_STACK: usize = 1024 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(SMALL_STACK).spawn(f).unwrap().join().unwrap()
}

fn request() -> AccessRequest {
    AccessRequest {
        tenant: "acme".into(),
        principal: Principal::User { name: "alice".into(), groups: vec!["dev".into()] },
        via_agent: None,
        service: ServiceInfo { name: "web".into(), protocol: "socks".into() },
        source_ip: "203.0.113.5".parse().unwrap(),
        country: "JP".into(),
        at: datetime!(2026-11-23 09:00 +09:00),
        auth_method: sekisho_policy::AuthMethod::PasswordTotp,
        path: sekisho_policy::AccessPath::Socks,
        destination: Some(Destination { domain: "zzz.example".into(), ip: None, port: 443 }),
    }
}

/// Compiles `policy` and, when it compiles, decides one request with it; all on a small stack.
/// Returns the compile error's text, or whether the request was allowed.
fn compile_and_decide(policy: ServicePolicy) -> Result<bool, String> {
    on_small_stack(move || {
        let mut engine = Engine::new();
        let compiled = engine.compile("web", &policy).map_err(|e| e.to_string())?;
        engine.insert("acme", "web", compiled);
        Ok(engine.decide(&request()).allowed)
    })
}

fn deny(text: String) -> ServicePolicy {
    ServicePolicy { required: vec!["true".into()], deny: vec![text], ..Default::default() }
}

/// `open`ⁿ `inner` `close`ⁿ.
fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// The shapes that nest in Cedar's grammar, as deny conditions that are false.
fn shapes(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("parentheses", nested("(", "false", ")", n)),
        ("sets", format!("{}.contains(1)", nested("[", "1", "]", n))),
        ("records", format!("{}.a == 1", nested("{a: ", "1", "}", n))),
        ("if chains", format!("{}false", "if false then true else ".repeat(n))),
        // Each level is an `if` and a bracket: two levels of the bound.
        ("nested ifs", nested("if (", "false", ") then true else false", n / 2)),
        ("negations", format!("{}true", "!".repeat(n))),
        ("minus signs", format!("{}1 == 1", "-".repeat(n))),
        ("calls", format!("{}false", "context.domain.isEmpty() || ".repeat(n))),
    ]
}

#[test]
fn ten_thousand_levels_are_refused_with_a_message_not_a_crash() {
    for (shape, text) in shapes(10_000) {
        let refused = compile_and_decide(deny(text)).expect_err(shape);
        assert!(refused.contains("nests more than") || refused.contains("longer than"), "{shape}: {refused}");
    }
    // Within the length bound, the refusal points at the first level too deep.
    let required = ServicePolicy { required: vec![nested("(", "true", ")", 4_000)], ..Default::default() };
    let refused = compile_and_decide(required).expect_err("required");
    assert!(refused.starts_with("required condition 0, line 1, column 33: the condition nests more than 32 levels"));
}

#[test]
fn what_the_bounds_let_through_compiles_and_decides_on_a_small_stack() {
    for (shape, text) in shapes(MAX_NESTING) {
        let text = if text.len() > MAX_CONDITION_LEN { text[..MAX_CONDITION_LEN].to_owned() } else { text };
        // Some shapes are not valid Cedar at every depth (a number cannot be negated 32 times);
        // what matters is that Cedar answers at all.
        // (Cedar may also stop evaluating an `if` chain with "recursion limit reached", a deny.)
        if let Err(e) = compile_and_decide(deny(text)) {
            assert!(!e.contains("nests more than"), "{shape} refused at the bound: {e}");
        }
    }
}

#[test]
fn the_longest_chains_decide_on_a_small_stack() {
    // Without brackets Cedar still builds one level per operator: the length bound is what limits these.
    let fill = |unit: &str, last: &str| {
        let mut s = unit.repeat((MAX_CONDITION_LEN - last.len()) / unit.len());
        s.push_str(last);
        s
    };
    for (shape, text) in [
        ("or", fill("false || ", "false")),
        ("and", fill("true && ", "false")),
        ("sum", fill("1 + ", "1 == 0")),
        ("attributes", fill("context.domain == \"a\" || ", "false")),
        ("tight sum", fill("1+", "1==0")),
        ("tight or", fill("1==1||", "false")),
        ("members", format!("context{}", ".a".repeat((MAX_CONDITION_LEN - 7) / 2))),
    ] {
        assert!(text.len() <= MAX_CONDITION_LEN, "{shape}");
        // Cedar may answer "recursion limit reached" when evaluating (a deny, failing closed) or
        // refuse the text as a type error; what matters is that it answers.
        if let Err(e) = compile_and_decide(deny(text)) {
            assert!(!e.contains("longer than"), "{shape} refused within the bound: {e}");
        }
    }
    let too_long = deny(fill("false || ", "false") + " || false");
    assert!(compile_and_decide(too_long).unwrap_err().contains("longer than 8192 bytes"));
}

#[test]
fn the_longest_domain_lists_decide_on_a_small_stack() {
    let list: Vec<String> = (0..MAX_DOMAINS).map(|i| format!("d{i}.example.com")).collect();
    let policy = ServicePolicy {
        required: vec!["true".into()],
        allow_domains: list.clone(),
        deny_domains: list.clone(),
        ..Default::default()
    };
    // zzz.example is on neither list: the allow list does not hold.
    assert_eq!(compile_and_decide(policy), Ok(false));
    let mut longer = list;
    longer.push("one-more.example".into());
    let policy = ServicePolicy { required: vec!["true".into()], deny_domains: longer, ..Default::default() };
    assert!(compile_and_decide(policy).unwrap_err().contains("more than 1000 entries in deny_domains"));
}

#[test]
fn too_many_conditions_are_refused() {
    let policy = ServicePolicy { required: vec!["true".into(); 65], ..Default::default() };
    assert!(compile_and_decide(policy).unwrap_err().contains("more than 64 required conditions"));
}
