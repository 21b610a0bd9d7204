//! Decision reasons as sentences a person reads (「必須条件『…』を満たしていません」), made from
//! the stored policy id and reason; the id stays beside them on every page that shows one.

use super::i18n::Lang;

/// The sentence for a decision's `policy_id` and `reason` in `lang`; the stored reason itself when
/// it is none of the known forms.
pub(crate) fn sentence(lang: Lang, policy_id: &str, reason: &str) -> String {
    let reason = reason.strip_prefix("policy_denied: ").unwrap_or(reason);
    if reason == "all required conditions hold" {
        return lang.t("why.allowed").to_owned();
    }
    if let Some(text) = reason.strip_prefix("required condition not met: ") {
        return lang.t("why.required").replace("{c}", text);
    }
    if policy_id.contains("/deny/") {
        return lang.t("why.deny").replace("{c}", reason);
    }
    if policy_id == "default-deny" {
        return lang.t("why.no_policy").to_owned();
    }
    // Refusals before policy lead with their code (`store_unavailable: …`).
    let code = reason.split(':').next().unwrap_or("");
    match CODES.iter().find(|(c, _)| *c == code || *c == policy_id) {
        Some((_, key)) => lang.t(key).to_owned(),
        None => reason.to_owned(),
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
