//! Decision reasons as sentences a person reads (「必須条件『…』を満たしていません」), made from
//! the stored policy id and reason; the id stays beside them on every page that shows one.

use maud::{Markup, html};

use super::i18n::Lang;

/// The sentence for a decision's `policy_id` and `reason` in `lang`; the stored reason itself when
/// it is none of the known forms. (Pages use [`markup`]; this is what it says, as text.)
#[cfg(test)]
fn sentence(lang: Lang, policy_id: &str, reason: &str) -> String {
    match parts(lang, policy_id, reason) {
        (text, Some((slot, value))) => text.replace(slot, &value),
        (text, None) => text,
    }
}

/// [`sentence`] for a page: what it quotes (a Cedar condition, a scope, a token id) as code, and
/// a reason of no known form as the stored value it is.
pub(crate) fn markup(lang: Lang, policy_id: &str, reason: &str) -> Markup {
    match parts(lang, policy_id, reason) {
        (text, Some((slot, value))) => {
            let (before, after) = text.split_once(slot).unwrap_or((&text, ""));
            html! { (before) code { (value) } (after) }
        }
        (text, None) if text == reason.strip_prefix("policy_denied: ").unwrap_or(reason) => html! { code { (text) } },
        (text, None) => html! { (text) },
    }
}

/// The catalogue's sentence and what fills its slot (`{c}`, `{s}`, `{t}`).
fn parts(lang: Lang, policy_id: &str, reason: &str) -> (String, Option<(&'static str, String)>) {
    let reason = reason.strip_prefix("policy_denied: ").unwrap_or(reason);
    if reason == "all required conditions hold" {
        return (lang.t("why.allowed").to_owned(), None);
    }
    if let Some(text) = reason.strip_prefix("required condition not met: ") {
        return (lang.t("why.required").to_owned(), Some(("{c}", text.to_owned())));
    }
    if policy_id.contains("/deny/") {
        return (lang.t("why.deny").to_owned(), Some(("{c}", reason.to_owned())));
    }
    if policy_id == "default-deny" {
        return (lang.t("why.no_policy").to_owned(), None);
    }
    if let Some(scope) = reason.strip_prefix("scope ") {
        return (lang.t("why.scope").to_owned(), Some(("{s}", scope.to_owned())));
    }
    if let Some(token) = reason.strip_prefix("enrolled with token ") {
        return (lang.t("why.enrolled").to_owned(), Some(("{t}", token.to_owned())));
    }
    // Refusals before policy lead with their code (`store_unavailable: …`).
    let code = reason.split(':').next().unwrap_or("");
    match CODES.iter().find(|(c, _)| *c == code || *c == policy_id) {
        Some((_, key)) => (lang.t(key).to_owned(), None),
        None => (reason.to_owned(), None),
    }
}

/// Refusal codes and their catalogue keys.
const CODES: &[(&str, &str)] = &[
    ("store_unavailable", "why.store_unavailable"),
    ("audit_unavailable", "why.audit_unavailable"),
    ("audit_backlog", "why.audit_backlog"),
    ("cross_site", "why.cross_site"),
    ("route_not_found", "why.route_not_found"),
    ("agent_offline", "why.agent_offline"),
    ("session_unknown", "why.session"),
    ("session_missing", "why.session"),
    ("credential_revoked", "why.credential_revoked"),
    ("private_destination", "why.private_destination"),
    ("policy_unreadable", "why.policy_unreadable"),
    ("login succeeded", "why.login_ok"),
    ("browser session started", "why.browser_session"),
    ("unknown_user", "why.bad_login"),
    ("bad_password", "why.bad_login"),
    ("locked", "why.locked"),
    ("rate_limited", "why.rate_limited"),
    ("bad_totp", "why.bad_totp"),
    ("totp_replayed", "why.totp_replayed"),
    ("totp_required", "why.totp_required"),
    ("totp_not_enrolled", "why.totp_not_enrolled"),
    ("totp_unreadable", "why.totp_unreadable"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences_in_both_languages() {
        let req = "policy_denied: required condition not met: principal in Group::\"営業部\"";
        assert_eq!(
            sentence(Lang::Ja, "wiki/required/0", req),
            "必須条件『principal in Group::\"営業部\"』を満たしていません"
        );
        assert_eq!(
            sentence(Lang::En, "wiki/required/0", req),
            "The required condition “principal in Group::\"営業部\"” does not hold"
        );
        assert_eq!(
            sentence(Lang::Ja, "wiki/deny/0", "policy_denied: context.country != \"JP\""),
            "拒否条件『context.country != \"JP\"』に該当します"
        );
        assert_eq!(
            sentence(Lang::Ja, "wiki/required", "all required conditions hold"),
            "すべての必須条件を満たしています"
        );
        assert!(
            sentence(Lang::Ja, "default-deny", "policy_denied: no policy for service `x`").contains("ポリシーがない")
        );
        assert!(sentence(Lang::Ja, "store_unavailable", "store_unavailable: cannot check").contains("データベース"));
        assert_eq!(sentence(Lang::Ja, "x", "something new"), "something new", "unknown forms stay as stored");
        for (_, key) in CODES {
            assert_ne!(Lang::Ja.t(key), *key, "`{key}` is in the catalogue");
        }
    }
}
