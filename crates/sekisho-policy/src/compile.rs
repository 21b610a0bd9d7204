//! Turning one service's admin-written conditions into Cedar policies, and Cedar's complaints back into
//! diagnostics that point into the admin's own text.
//!
//! Each condition is first parsed on its own as a Cedar expression (so text like `true }; permit(…)`
//! cannot smuggle extra statements), then placed on its own lines inside a fixed template. Cedar reports
//! byte offsets into the generated policy; subtracting the offset where the condition was placed gives a
//! position in the condition again. Every condition must be self-contained: it is validated, and on the
//! deny path evaluated, on its own.

use std::fmt;
use std::str::FromStr;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{Expression, Policy, PolicyId, PolicySet, ValidationMode, Validator};
use serde::{Deserialize, Serialize};

/// The most required (and, apart, deny) conditions one service may have.
pub const MAX_CONDITIONS: usize = 64;

/// The most entries each domain list may have. The list becomes one chain of `||` (two terms an
/// entry), which Cedar evaluates recursively; `tests/depth.rs` decides a full list on a 256 KiB stack.
pub const MAX_DOMAINS: usize = 1000;

/// What an admin configured for one service.
///
/// All `required` conditions must hold and no `deny` condition may hold for an access to be allowed.
/// With no required conditions nothing is permitted: write `true` as a required condition to allow
/// everyone (subject to the deny conditions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// Cedar boolean expressions that must all hold.
    #[serde(default)]
    pub required: Vec<String>,
    /// Cedar boolean expressions of which any one holding denies.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Gateways: when not empty, the destination domain must match one of these patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_domains: Vec<String>,
    /// Gateways: a destination domain matching one of these patterns is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_domains: Vec<String>,
}

/// One entry of a domain list: `example.com` matches the domain and every subdomain,
/// `*.example.com` only subdomains. Returns the normalised pattern, or why it is not one.
pub fn domain_pattern(entry: &str) -> Result<String, String> {
    let lower = entry.trim().trim_end_matches('.').to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{entry}` is not a domain pattern: write `example.com` (the domain and its subdomains) or \
             `*.example.com` (subdomains only), in ASCII (punycode for international names)"
        ));
    }
    Ok(if wild { format!("*.{name}") } else { name.to_owned() })
}

/// The Cedar expression that holds when `context.domain` matches one of `patterns` (already
/// normalised by [`domain_pattern`]).
fn domain_expression(patterns: &[String]) -> String {
    let mut terms = Vec::with_capacity(patterns.len() * 2);
    for p in patterns {
        match p.strip_prefix("*.") {
            Some(_) => terms.push(format!("context.domain like \"{p}\"")),
            None => {
                terms.push(format!("context.domain == \"{p}\""));
                terms.push(format!("context.domain like \"*.{p}\""));
            }
        }
    }
    terms.join(" || ")
}

/// The domain lists of `policy` as Cedar expressions (allow, deny), or diagnostics naming the
/// entries that are not domain patterns.
fn domain_lists(policy: &ServicePolicy) -> Result<(Option<String>, Option<String>), PolicyError> {
    let mut diagnostics = Vec::new();
    let mut check = |kind: ConditionKind, entries: &[String]| -> Option<String> {
        if entries.len() > MAX_DOMAINS {
            let message = format!("more than {MAX_DOMAINS} entries in {kind}; use a shorter list or a parent domain");
            diagnostics.push(Diagnostic { kind, index: MAX_DOMAINS, line: 1, column: 1, message, help: None });
            return None;
        }
        let mut patterns = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            match domain_pattern(entry) {
                Ok(p) => patterns.push(p),
                Err(message) => diagnostics.push(Diagnostic { kind, index, line: 1, column: 1, message, help: None }),
            }
        }
        (!entries.is_empty()).then(|| domain_expression(&patterns))
    };
    let allow = check(ConditionKind::AllowDomains, &policy.allow_domains);
    let deny = check(ConditionKind::DenyDomains, &policy.deny_domains);
    finish(diagnostics)?;
    Ok((allow, deny))
}

/// Which list of a [`ServicePolicy`] a condition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    Required,
    Deny,
    /// An entry of the domain allow list.
    AllowDomains,
    /// An entry of the domain deny list.
    DenyDomains,
}

impl fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConditionKind::Required => "required",
            ConditionKind::Deny => "deny",
            ConditionKind::AllowDomains => "allow_domains",
            ConditionKind::DenyDomains => "deny_domains",
        })
    }
}

/// One problem in one condition.
///
/// `index` is 0-based, like the `<service>/deny/<k>` policy ids; `line` and `column` are 1-based and
/// relative to the condition's own text (columns count characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub kind: ConditionKind,
    pub index: usize,
    pub line: usize,
    pub column: usize,
    /// Cedar's own message.
    pub message: String,
    /// Cedar's hint on how to fix it, when it has one.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} condition {}, line {}, column {}: {}",
            self.kind, self.index, self.line, self.column, self.message
        )
    }
}

/// A service policy that does not compile; one diagnostic per problem, in condition order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.diagnostics))]
pub struct PolicyError {
    pub diagnostics: Vec<Diagnostic>,
}

fn display_lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// One condition as the engine needs it at decision time.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    /// `<service>/deny/<k>` for deny conditions, `<service>/required/<i>` (the explanation policy) for
    /// required ones.
    pub(crate) id: PolicyId,
    pub(crate) text: String,
}

/// A service's conditions compiled to Cedar and validated against [`crate::SCHEMA`].
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    service: String,
    source: ServicePolicy,
    cedar_text: String,
    /// SHA-256 of `cedar_text`, first 16 hex digits: which version of the policy decided.
    version: String,
    /// The permit (if any) and the forbids: this set decides.
    pub(crate) main: PolicySet,
    /// One permit per required condition; evaluated only to explain a denial.
    pub(crate) explain: PolicySet,
    /// `<service>/required`.
    pub(crate) permit_id: PolicyId,
    pub(crate) required: Vec<Condition>,
    pub(crate) deny: Vec<Condition>,
}

impl CompiledPolicy {
    /// The service name the policy was compiled for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The Cedar policies that decide, as text (for showing admins what was generated).
    pub fn cedar_text(&self) -> String {
        self.cedar_text.clone()
    }

    /// Which version of the policy this is: the first 16 hex digits of the SHA-256 of its Cedar
    /// text. Kept with every decision it makes.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The conditions and domain lists this policy was compiled from.
    pub fn conditions(&self) -> ServicePolicy {
        self.source.clone()
    }
}

/// Where one condition sits in a generated policy's text.
struct Span {
    start: usize,
    end: usize,
    kind: ConditionKind,
    index: usize,
}

/// One generated policy: its id, text and where each condition was placed.
struct Generated {
    id: String,
    text: String,
    spans: Vec<Span>,
}

impl Generated {
    /// `<effect>` on accessing `service`, with one `when` clause per condition.
    fn new(id: String, effect: &str, service: &str, conditions: &[(ConditionKind, usize, &str)]) -> Self {
        let mut text = format!(
            "@id(\"{}\")\n{effect} (\n  principal,\n  action == Action::\"access\",\n  resource == Service::\"{}\"\n)",
            id.escape_debug(),
            service.escape_debug()
        );
        let mut spans = Vec::with_capacity(conditions.len());
        for &(kind, index, condition) in conditions {
            text.push_str("\nwhen {\n");
            let start = text.len();
            text.push_str(condition);
            spans.push(Span { start, end: text.len(), kind, index });
            text.push_str("\n}");
        }
        text.push(';');
        Generated { id, text, spans }
    }

    /// Maps a Cedar error about this policy back to the condition it is about.
    fn diagnostic(&self, error: &DetailedError) -> Option<Diagnostic> {
        let offset = error.source_locations.first().map(|l| l.loc.start);
        let span = offset
            .and_then(|o| self.spans.iter().find(|s| s.start <= o && o <= s.end))
            .or_else(|| self.spans.first())?;
        let (line, column) = match offset {
            Some(o) if o >= span.start => line_column(&self.text[span.start..span.end], o - span.start),
            _ => (1, 1),
        };
        // Cedar names the generated policy ("for policy `wiki/required/0`, …"); the admin only knows the
        // condition, which the diagnostic already names.
        let prefix = format!("for policy `{}`, ", self.id);
        let strip = |s: &str| s.replacen(&prefix, "", 1);
        let mut d = diagnostic(span.kind, span.index, line, column, error);
        d.message = strip(&d.message);
        d.help = d.help.as_deref().map(strip);
        Some(d)
    }
}

fn diagnostic(kind: ConditionKind, index: usize, line: usize, column: usize, error: &DetailedError) -> Diagnostic {
    Diagnostic { kind, index, line, column, message: error.message.clone(), help: error.help.clone() }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Checks one condition on its own: not empty, and exactly one Cedar expression.
fn parse_condition(kind: ConditionKind, index: usize, text: &str, out: &mut Vec<Diagnostic>) {
    if text.trim().is_empty() {
        out.push(Diagnostic {
            kind,
            index,
            line: 1,
            column: 1,
            message: "condition is empty".to_owned(),
            help: Some("write `true` to make a required condition that always holds".to_owned()),
        });
        return;
    }
    if let Err(refused) = crate::nesting::check(text) {
        let (line, column) = line_column(text, refused.offset());
        out.push(Diagnostic { kind, index, line, column, message: refused.message(), help: None });
        return;
    }
    if let Err(errors) = Expression::from_str(text) {
        for error in errors.iter() {
            let detail = DetailedError::from(error);
            let (line, column) = detail.source_locations.first().map_or((1, 1), |l| line_column(text, l.loc.start));
            out.push(diagnostic(kind, index, line, column, &detail));
        }
    }
}

/// Parses generated policies into a set, mapping any parse error back to its condition.
fn policy_set(generated: &[&Generated], out: &mut Vec<Diagnostic>) -> PolicySet {
    let mut set = PolicySet::new();
    for g in generated {
        match Policy::parse(Some(PolicyId::new(&g.id)), &g.text) {
            Ok(policy) => {
                if let Err(e) = set.add(policy) {
                    let detail = DetailedError::from(&e);
                    out.extend(g.diagnostic(&detail));
                }
            }
            Err(errors) => {
                out.extend(errors.iter().filter_map(|e| g.diagnostic(&DetailedError::from(e))));
            }
        }
    }
    set
}

/// Strictly validates `set`, mapping each error back to its condition through `generated`.
fn validate(validator: &Validator, set: &PolicySet, generated: &[&Generated], out: &mut Vec<Diagnostic>) {
    let result = validator.validate(set, ValidationMode::Strict);
    for error in result.validation_errors() {
        let id: &str = error.policy_id().as_ref();
        if let Some(g) = generated.iter().find(|g| g.id == id) {
            out.extend(g.diagnostic(&DetailedError::from(error)));
        }
    }
}

fn finish(mut diagnostics: Vec<Diagnostic>) -> Result<(), PolicyError> {
    if diagnostics.is_empty() {
        return Ok(());
    }
    diagnostics.sort_by(|a, b| {
        (a.kind, a.index, a.line, a.column, &a.message).cmp(&(b.kind, b.index, b.line, b.column, &b.message))
    });
    diagnostics.dedup();
    Err(PolicyError { diagnostics })
}

/// Compiles and strictly validates `policy` for `service`.
///
/// Domain lists become one more condition each: the allow list a required condition with id
/// `<service>/allow-domains`, the deny list a deny condition with id `<service>/deny-domains`.
pub(crate) fn compile(
    validator: &Validator,
    service: &str,
    policy: &ServicePolicy,
) -> Result<CompiledPolicy, PolicyError> {
    let mut diagnostics = Vec::new();
    for (kind, list) in [(ConditionKind::Required, &policy.required), (ConditionKind::Deny, &policy.deny)] {
        if list.len() > MAX_CONDITIONS {
            diagnostics.push(Diagnostic {
                kind,
                index: MAX_CONDITIONS,
                line: 1,
                column: 1,
                message: format!("more than {MAX_CONDITIONS} {kind} conditions; combine them"),
                help: None,
            });
            continue;
        }
        for (index, text) in list.iter().enumerate() {
            parse_condition(kind, index, text, &mut diagnostics);
        }
    }
    finish(diagnostics)?;
    let (allow_list, deny_list) = domain_lists(policy)?;

    // (id, how a denial explains it, (kind, index, Cedar text)) per condition.
    let mut required: Vec<(String, String, (ConditionKind, usize, &str))> = policy
        .required
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{service}/required/{i}"), t.clone(), (ConditionKind::Required, i, t.as_str())))
        .collect();
    if let Some(expr) = &allow_list {
        let reason = "the destination domain is on the allow list".to_owned();
        required.push((format!("{service}/allow-domains"), reason, (ConditionKind::AllowDomains, 0, expr.as_str())));
    }
    let mut deny: Vec<(String, String, (ConditionKind, usize, &str))> = policy
        .deny
        .iter()
        .enumerate()
        .map(|(k, t)| (format!("{service}/deny/{k}"), t.clone(), (ConditionKind::Deny, k, t.as_str())))
        .collect();
    if let Some(expr) = &deny_list {
        let reason = "the destination domain is on the deny list".to_owned();
        deny.push((format!("{service}/deny-domains"), reason, (ConditionKind::DenyDomains, 0, expr.as_str())));
    }

    let permit_id = format!("{service}/required");
    let all_required: Vec<_> = required.iter().map(|r| r.2).collect();
    let permit = (!required.is_empty()).then(|| Generated::new(permit_id.clone(), "permit", service, &all_required));
    let forbids: Vec<_> = deny.iter().map(|(id, _, c)| Generated::new(id.clone(), "forbid", service, &[*c])).collect();
    let explains: Vec<_> =
        required.iter().map(|(id, _, c)| Generated::new(id.clone(), "permit", service, &[*c])).collect();

    let main_policies: Vec<&Generated> = permit.iter().chain(&forbids).collect();
    let per_condition: Vec<&Generated> = explains.iter().chain(&forbids).collect();
    let mut diagnostics = Vec::new();
    let main = policy_set(&main_policies, &mut diagnostics);
    let explain = policy_set(&explains.iter().collect::<Vec<_>>(), &mut diagnostics);
    let per_condition_set = policy_set(&per_condition, &mut diagnostics);
    finish(diagnostics)?;

    // Validate each condition on its own first, so each problem is reported once and against the
    // condition it is in; the combined permit can then only fail if the conditions pass on their own.
    let mut diagnostics = Vec::new();
    validate(validator, &per_condition_set, &per_condition, &mut diagnostics);
    finish(diagnostics)?;
    let mut diagnostics = Vec::new();
    validate(validator, &main, &main_policies, &mut diagnostics);
    finish(diagnostics)?;

    let cedar_text = main_policies.iter().map(|g| g.text.as_str()).collect::<Vec<_>>().join("\n\n");
    let condition = |g: &Generated, text: &str| Condition { id: PolicyId::new(&g.id), text: text.to_owned() };
    let version = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(cedar_text.as_bytes())[..8])
    };
    Ok(CompiledPolicy {
        service: service.to_owned(),
        source: policy.clone(),
        cedar_text,
        version,
        main,
        explain,
        permit_id: PolicyId::new(permit_id),
        required: explains.iter().zip(&required).map(|(g, r)| condition(g, &r.1)).collect(),
        deny: forbids.iter().zip(&deny).map(|(g, d)| condition(g, &d.1)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a &&\n  日本 == x";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (1, 3));
        let x = text.find('x').unwrap_or_default();
        assert_eq!(line_column(text, x), (2, 9));
    }

    #[test]
    fn template_places_each_condition_verbatim() {
        let g = Generated::new(
            "s\"x/required".to_owned(),
            "permit",
            "s\"x",
            &[(ConditionKind::Required, 0, "a"), (ConditionKind::Required, 1, "b\n// c")],
        );
        assert_eq!(&g.text[g.spans[0].start..g.spans[0].end], "a");
        assert_eq!(&g.text[g.spans[1].start..g.spans[1].end], "b\n// c");
        assert!(g.text.contains(r#"Service::"s\"x""#), "{}", g.text);
        assert!(g.text.ends_with("// c\n};"), "{}", g.text);
    }
}
