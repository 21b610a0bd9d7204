//! How much stack Cedar needs for one shape of condition: compiles and decides it on a thread of
//! the given size. A stack overflow aborts the process, so probe from a shell loop:
//!
//! ```sh
//! for k in 256 384 512; do target/debug/examples/depthprobe paren 32 $k; done
//! ```
//!
//! Shapes: `paren`, `set`, `record`, `if-chain`, `or`, `sum`, `tight-sum` (`1+1+…`), `members`.
//! The numbers behind `MAX_NESTING` and `MAX_CONDITION_LEN` (`src/nesting.rs`) came from here.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a probe: a wrong argument should just stop it")]
#![allow(clippy::disallowed_methods, reason = "measures the policy engine itself")]

use sekisho_policy::{AccessRequest, Engine, Principal, ServiceInfo, ServicePolicy};

fn condition(shape: &str, n: usize) -> String {
    let nested = |open: &str, inner: &str, close: &str| format!("{}{inner}{}", open.repeat(n), close.repeat(n));
    match shape {
        "paren" => nested("(", "false", ")"),
        "set" => nested("[", "1", "]") + ".contains(1)",
        "record" => nested("{a: ", "1", "}") + ".a == 1",
        "if-chain" => "if false then true else ".repeat(n) + "false",
        "or" => "false || ".repeat(n) + "false",
        "sum" => "1 + ".repeat(n) + "1 == 0",
        "tight-sum" => "1+".repeat(n) + "1==0",
        "members" => format!("context{}", ".a".repeat(n)),
        other => panic!("unknown shape `{other}`"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, n, kib] = args.as_slice() else { panic!("usage: depthprobe SHAPE N STACK_KIB") };
    let (n, kib): (usize, usize) = (n.parse().unwrap(), kib.parse().unwrap());
    let text = condition(shape, n);
    let outcome = std::thread::Builder::new()
        .stack_size(kib * 1024)
        .spawn(move || {
            let mut engine = Engine::new();
            let policy = ServicePolicy { required: vec!["true".into()], deny: vec![text], ..Default::default() };
            let compiled = match engine.compile("web", &policy) {
                Ok(c) => c,
                Err(e) => return format!("compile error: {e}"),
            };
            engine.insert("acme", "web", compiled);
            let request = AccessRequest {
                tenant: "acme".into(),
                principal: Principal::User { name: "alice".into(), groups: vec![] },
                via_agent: None,
                service: ServiceInfo { name: "web".into(), protocol: "tcp".into() },
                source_ip: "203.0.113.5".parse().unwrap(),
                country: "JP".into(),
                at: time::OffsetDateTime::now_utc(),
                auth_method: sekisho_policy::AuthMethod::AgentKey,
                path: sekisho_policy::AccessPath::Tunnel,
                destination: None,
            };
            engine.decide(&request).reason
        })
        .unwrap()
        .join()
        .unwrap();
    println!("{shape} {n} on {kib} KiB: {}", outcome.chars().take(100).collect::<String>());
}
