//! Compiling admin conditions: errors come back at the admin's own condition, line and column.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use sekisho_policy::{ConditionKind, Diagnostic, Engine, PolicyError, ServicePolicy};

fn policy(required: &[&str], deny: &[&str]) -> ServicePolicy {
    ServicePolicy {
        required: required.iter().map(|s| (*s).to_owned()).collect(),
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn compile_err(required: &[&str], deny: &[&str]) -> PolicyError {
    Engine::new().compile("wiki", &policy(required, deny)).unwrap_err()
}

/// The one diagnostic of a failed compile, as (kind, index, line, column).
fn only(err: &PolicyError) -> (&Diagnostic, (ConditionKind, usize, usize, usize)) {
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let d = &err.diagnostics[0];
    (d, (d.kind, d.index, d.line, d.column))
}

#[test]
fn parse_error_on_line_two_of_a_deny_condition() {
    let err = compile_err(&["true"], &["context.country == \"KP\"", "context.hour >= 0 &&\n  context.hour == == 3"]);
    let (d, at) = only(&err);
    assert_eq!(at, (ConditionKind::Deny, 1, 2, 19));
    assert_eq!(d.message, "unexpected token `==`");
    assert_eq!(err.to_string(), "deny condition 1, line 2, column 19: unexpected token `==`");
}

#[test]
fn unknown_context_attribute() {
    let err = compile_err(&["true", "principal in Group::\"ops\" && context.foo == \"x\""], &[]);
    let (d, at) = only(&err);
    assert_eq!(at, (ConditionKind::Required, 1, 1, 30));
    assert!(d.message.contains("attribute `foo`"), "{}", d.message);
    // The generated policy's id is an implementation detail the admin never sees.
    assert!(!d.message.contains("wiki/required"), "{}", d.message);
}

#[test]
fn type_error() {
    let err = compile_err(&["true"], &["context.path == \"ssh\"", "true &&\n   context.hour == \"x\""]);
    let (d, at) = only(&err);
    assert_eq!(at, (ConditionKind::Deny, 1, 2, 4));
    assert!(d.message.contains("Long and String"), "{}", d.message);
}

#[test]
fn unknown_entity_type() {
    let err = compile_err(&["principal in Role::\"admin\""], &[]);
    let (d, at) = only(&err);
    assert_eq!(at, (ConditionKind::Required, 0, 1, 14));
    assert!(d.message.contains("unrecognized entity type `Role`"), "{}", d.message);
}

#[test]
fn optional_agent_must_be_tested_first() {
    let err = compile_err(&["context.agent.site == \"tokyo\""], &[]);
    let (d, _) = only(&err);
    assert!(d.message.contains("optional attribute `agent`"), "{}", d.message);
    assert!(d.help.as_deref().unwrap_or_default().contains("context has agent"), "{d:?}");
}

#[test]
fn smuggled_statements_are_rejected() {
    let err = compile_err(&["true }; permit(principal, action, resource) when { true"], &[]);
    let (d, at) = only(&err);
    assert_eq!(at, (ConditionKind::Required, 0, 1, 6));
    assert_eq!(d.message, "unexpected token `}`");

    let err = compile_err(
        &["true"],
        &[
            "false };\n@id(\"x\") permit(principal, action, resource);\nforbid(principal, action, resource) when { false",
        ],
    );
    assert!(err.diagnostics.iter().all(|d| d.kind == ConditionKind::Deny && d.index == 0), "{err}");
}

#[test]
fn template_slots_are_rejected() {
    let err = compile_err(&["?principal == principal"], &[]);
    assert!(!err.diagnostics.is_empty());
    assert!(err.diagnostics.iter().all(|d| d.kind == ConditionKind::Required && d.index == 0), "{err}");
}

#[test]
fn empty_conditions_are_errors() {
    let err = compile_err(&["true", "  \n "], &[""]);
    let at: Vec<_> = err.diagnostics.iter().map(|d| (d.kind, d.index, d.message.as_str())).collect();
    assert_eq!(
        at,
        [(ConditionKind::Required, 1, "condition is empty"), (ConditionKind::Deny, 0, "condition is empty")]
    );
}

#[test]
fn every_bad_condition_is_reported_once_in_order() {
    let err = compile_err(&["context.nope", "true", "context.hour == == 1"], &["1 +", "context.country == \"JP\""]);
    let at: Vec<_> = err.diagnostics.iter().map(|d| (d.kind, d.index)).collect();
    assert_eq!(at, [(ConditionKind::Required, 2), (ConditionKind::Deny, 0)], "{err}");
    assert_eq!(err.to_string().lines().count(), 2);
}

#[test]
fn comments_at_the_end_of_a_condition_do_not_swallow_the_template() {
    let engine = Engine::new();
    let compiled =
        engine.compile("wiki", &policy(&["context.hour >= 9 // from nine", "true"], &["false // never"])).unwrap();
    let text = compiled.cedar_text();
    assert!(text.contains("@id(\"wiki/required\")"), "{text}");
    assert!(text.contains("@id(\"wiki/deny/0\")"), "{text}");
    assert!(text.contains("context.hour >= 9 // from nine\n}"), "{text}");
    assert_eq!(compiled.conditions(), policy(&["context.hour >= 9 // from nine", "true"], &["false // never"]));
}

#[test]
fn service_names_are_escaped_in_the_policy_text() {
    let engine = Engine::new();
    let compiled = engine.compile("wi\"ki 日本", &policy(&["true"], &[])).unwrap();
    assert!(compiled.cedar_text().contains(r#"Service::"wi\"ki 日本""#), "{}", compiled.cedar_text());
}

#[test]
fn service_policy_json_is_strict() {
    let p: ServicePolicy = serde_json::from_str(r#"{"required":["true"]}"#).unwrap();
    assert_eq!(p, policy(&["true"], &[]));
    assert!(serde_json::from_str::<ServicePolicy>(r#"{"required":[],"allow":[]}"#).is_err());
}

#[test]
fn types_are_shareable() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync_clone::<sekisho_policy::CompiledPolicy>();
    assert_send_sync::<Engine>();
}
