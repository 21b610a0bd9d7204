//! Every error code of the API as a Japanese sentence. Error answers carry it beside the English
//! `message` (`message_ja`), so the console and the CLI speak Japanese without guessing; the
//! names the English message quotes (`like this`) follow the sentence. A test reads the API's
//! sources and fails when a code has no sentence here, or a sentence names a code that is gone.

/// Code → sentence.
const SENTENCES: &[(&str, &str)] = &[
    ("anchors_unreadable", "監査アンカーファイルを読めません。"),
    ("audit_unavailable", "監査ログに書き込めないため、何も変更していません。"),
    ("audit_unverified", "監査ログの検証に失敗したため、削除を行いませんでした。ctl audit verify を実行してください。"),
    ("bad_json", "リクエストの JSON を読めません。"),
    ("bad_query", "検索条件を読めません。"),
    ("bad_totp", "TOTP のコードが違います。"),
    ("bastion_route", "SSH/Telnet の接続先にはルートを作れません。記録を行う踏み台から接続します。"),
    ("conflict", "同じものがすでにあります。"),
    ("export_too_large", "書き出すイベントが多すぎます。一度に書き出す記録を減らしてください。"),
    ("forbidden", "この API キーには必要なスコープがありません。"),
    ("gateway_route", "ゲートウェイにはルートを作れません。クライアントはリレーの SOCKS5 ポートから接続します。"),
    ("in_use", "使用中のため削除できません。先に使っているものを削除してください。"),
    ("internal", "リレー内部のエラーです。リレーのログを確認してください。"),
    ("invalid_auth_method", "認証方式の指定が正しくありません。"),
    ("invalid_browser", "ブラウザー向けに公開できるのは http:// のサービスだけです。"),
    ("invalid_claim", "ユーザー名に使うクレームは preferred_username か sub です。"),
    ("invalid_client", "クライアント ID とクライアントシークレットが必要です。"),
    ("invalid_expiry", "有効期間の指定が正しくありません。"),
    ("invalid_format", "出力形式は json、jsonl、csv のいずれかです。"),
    ("invalid_ids", "記録の ID の数が正しくありません。"),
    ("invalid_ip", "IP アドレスか CIDR ではありません。"),
    ("invalid_issuer", "発行者は https:// の URL で指定してください (http:// はループバックのみ)。"),
    ("invalid_key", "OpenSSH の公開鍵ではありません。"),
    ("invalid_listen", "待ち受けアドレスが正しくないか、使えません。"),
    ("invalid_login", "ログインの設定が正しくありません。"),
    ("invalid_name", "名前は 1〜64 文字の英数字、-、_、. で付けてください。"),
    ("invalid_path", "経路の指定が正しくありません。"),
    ("invalid_plan", "テナントの設定が正しくありません。"),
    ("invalid_policy", "ポリシーの条件を解釈できません。"),
    ("invalid_recipient", "age の受信者 (age1…) ではありません。"),
    ("invalid_role", "ロールが正しくありません。"),
    ("invalid_scope", "スコープが正しくありません。"),
    ("invalid_target", "接続先は tcp://、http://、ssh://、telnet:// の host:port で指定してください。"),
    ("invalid_time", "時刻は 2026-11-23T09:00+09:00 のような RFC 3339 で指定してください。"),
    (
        "invalid_time_zone",
        "タイムゾーンではありません。Asia/Tokyo のような IANA 名か、+09:00 のようなオフセットで指定してください。",
    ),
    ("invalid_ttl", "有効期間は 1 秒から 30 日までです。"),
    ("ip_not_allowed", "この API キーはこのアドレスからは使えません。"),
    ("missing_agent", "サービスにはそれを提供するバックエージェントが必要です。"),
    ("missing_principal", "ユーザーかエージェントを指定してください。"),
    ("not_a_bastion_target", "ログインを設定できるのは ssh:// と telnet:// の接続先だけです。"),
    ("not_a_user", "このキーはユーザーに結び付いていないため、個人の設定はありません。"),
    ("not_found", "見つかりません。"),
    ("operator_only", "リレーの運用者だけができる操作です。運用者に依頼してください。"),
    ("plan_limit", "テナントの上限に達しています。"),
    ("rate_limited", "失敗が多すぎます。しばらくしてからやり直してください。"),
    ("recording_damaged", "記録のファイルが壊れています。"),
    ("recording_in_progress", "セッションが続いています。終わってから書き出してください。"),
    ("recording_missing", "記録の封印済みファイルが見つかりません。"),
    ("recording_unchained", "記録に対応する監査イベントがありません (セッションの終了前にリレーが止まりました)。"),
    ("scope_escalation", "この API キーの持たない権限は与えられません。"),
    ("seal_required", "パスフレーズか受信者のどちらか一方を指定してください。"),
    ("store_unavailable", "リレーがデータベースを読み書きできません。しばらくしてからやり直してください。"),
    ("totp_not_enrolled", "TOTP が登録されていません。"),
    ("totp_replayed", "この TOTP のコードはもう使われました。次のコードを待ってください。"),
    ("totp_required", "TOTP のコードが必要です。"),
    ("totp_unreadable", "TOTP の設定を読めません。管理者に再登録を依頼してください。"),
    ("unauthenticated", "認証されていません。API キーかサインインが必要です。"),
    ("weak_passphrase", "パスフレーズは 8 文字以上にしてください。"),
    ("weak_password", "パスワードは 10〜1024 文字にしてください。"),
    ("wrong_role", "エージェントの役割が合いません。"),
];

/// The Japanese sentence for `code`, with the names `english` quotes in backticks.
pub(crate) fn sentence(code: &str, english: &str) -> String {
    let base = SENTENCES.iter().find(|(c, _)| *c == code).map_or("要求を処理できませんでした。", |(_, s)| s);
    let names: Vec<&str> = english.split('`').skip(1).step_by(2).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        base.to_owned()
    } else {
        let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("{base} ({})", quoted.join("、"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error codes written in the API's sources (and the credentials check it calls).
    fn codes_in_sources() -> std::collections::BTreeSet<String> {
        let re = regex::Regex::new(
            r#"(?s)(?:ApiError::new\(\s*[^,]+,|bad_request\(|forbidden\(|with_code\(|KeyProblem \{ code:)\s*"([a-z][a-z_]*)""#,
        )
        .unwrap();
        let mut codes: std::collections::BTreeSet<String> =
            ["not_found", "conflict", "unauthenticated", "bad_json"].iter().map(|s| s.to_string()).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("../sekisho-door/src/credentials.rs")];
        let mut dirs = vec![root.join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") && !p.ends_with("error_ja.rs") {
                    files.push(p);
                }
            }
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            codes.extend(re.captures_iter(&text).map(|c| c[1].to_owned()));
        }
        codes
    }

    #[test]
    fn every_error_code_has_a_japanese_sentence() {
        let codes = codes_in_sources();
        assert!(codes.len() > 40, "the scan finds the codes: {codes:?}");
        let missing: Vec<_> = codes.iter().filter(|c| !SENTENCES.iter().any(|(k, _)| k == c)).collect();
        assert!(missing.is_empty(), "codes without a Japanese sentence: {missing:?}");
        let gone: Vec<_> = SENTENCES.iter().filter(|(k, _)| !codes.contains(*k)).map(|(k, _)| k).collect();
        assert!(gone.is_empty(), "sentences for codes the API no longer has: {gone:?}");
    }

    #[test]
    fn quoted_names_follow_the_sentence() {
        assert_eq!(sentence("not_found", "no service `wiki`"), "見つかりません。 (`wiki`)");
        assert_eq!(
            sentence("weak_password", "password must be 10 to 1024 characters long"),
            "パスワードは 10〜1024 文字にしてください。"
        );
        assert_eq!(sentence("brand_new", "x"), "要求を処理できませんでした。");
    }
}
