//! Policy text is admin input that reaches a parser: random and near-Cedar text must never panic the
//! compiler, and every rejection must point into the text it came from.

use proptest::prelude::*;
use sekisho_policy::{Engine, ServicePolicy};

/// Fragments that make near-valid conditions, so the parser goes deep rather than failing at once.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "principal",
        "context",
        ".",
        "country",
        "hour",
        "source_ip",
        "agent",
        "has",
        "in",
        "is",
        "Group::",
        "User::",
        "Agent::",
        "\"ops\"",
        "\"JP\"",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        "if",
        "then",
        "else",
        "like",
        "\"*.jp\"",
        "ip(\"10.0.0.0/8\")",
        ".isInRange(",
        "9",
        "-1",
        "true",
        "false",
        "\n",
        " ",
        "};",
        "permit",
        "forbid",
        "resource",
        "action",
        "//",
        "\"",
        "\\",
        "é",
        "関所",
    ])
}

fn check(engine: &Engine, text: &str) {
    let lines = text.split('\n').count();
    let policy = ServicePolicy { required: vec![text.to_owned()], deny: vec!["true".into()], ..Default::default() };
    if let Err(e) = engine.compile("svc", &policy) {
        assert!(!e.diagnostics.is_empty());
        for d in &e.diagnostics {
            assert!(d.line >= 1 && d.column >= 1, "{d:?} for {text:?}");
            if d.index == 0 {
                assert!(d.line <= lines.max(1) + 1, "{d:?} points past {text:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        check(&Engine::new(), &text);
    }

    #[test]
    fn near_cedar_text_never_panics(tokens in prop::collection::vec(token(), 1..24)) {
        check(&Engine::new(), &tokens.join(" "));
    }
}
