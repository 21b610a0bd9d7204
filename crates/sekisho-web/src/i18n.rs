//! The console's words in English and Japanese, and how a request's language is chosen: the
//! language switch (a cookie), else the browser's `Accept-Language`, else English.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Lang {
        match super::cookie(headers, super::session::LANG_COOKIE).as_deref() {
            Some("ja") => return Lang::Ja,
            Some("en") => return Lang::En,
            _ => {}
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        // The first language the browser names that we have.
        for tag in accept.split(',') {
            let tag = tag.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if tag.starts_with("ja") {
                return Lang::Ja;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// How long ago (or how soon) `then` is from `now`, both in ms, as people say it; `None`
    /// beyond 30 days (the date says it better).
    pub(crate) fn relative(self, now: i64, then: i64) -> Option<String> {
        let (secs, past) = if then <= now { ((now - then) / 1000, true) } else { ((then - now) / 1000, false) };
        let (n, ago, ahead) = match secs {
            0..60 => return Some(self.t(if past { "ago.now" } else { "ago.soon" }).to_owned()),
            60..3600 => (secs / 60, "ago.min", "in.min"),
            3600..86_400 => (secs / 3600, "ago.hour", "in.hour"),
            86_400..2_592_000 => (secs / 86_400, "ago.day", "in.day"),
            _ => return None,
        };
        Some(self.t(if past { ago } else { ahead }).replace("{n}", &n.to_string()))
    }

    /// A stored word shown to people (roles, agent roles, access paths, kinds of subject): in
    /// English the word itself, in Japanese its translation (the word when it has none).
    pub(crate) fn word(self, value: &str) -> String {
        match (self, WORDS.iter().find(|(w, _)| *w == value)) {
            (Lang::Ja, Some((_, ja))) => (*ja).to_owned(),
            _ => value.to_owned(),
        }
    }

    /// The text of `key`; the key itself if the table lacks it (a test keeps that from happening).
    pub(crate) fn t(self, key: &'static str) -> &'static str {
        match MESSAGES.iter().find(|(k, _, _)| *k == key) {
            Some((_, en, ja)) => match self {
                Lang::En => en,
                Lang::Ja => ja,
            },
            None => key,
        }
    }
}

/// Stored words and their Japanese (see [`Lang::word`]).
const WORDS: &[(&str, &str)] = &[
    // Roles of groups.
    ("admin", "管理者"),
    ("operator", "運用者"),
    ("auditor", "監査人"),
    ("member", "メンバー"),
    // Roles of agents.
    ("front", "フロント"),
    ("back", "バック"),
    ("both", "フロントとバック"),
    // Access paths.
    ("tunnel", "トンネル"),
    ("browser", "ブラウザー"),
    ("edge", "エッジポート"),
    ("ssh", "SSH"),
    ("telnet", "Telnet"),
    ("socks", "SOCKS"),
    ("api", "API"),
    ("web", "Web"),
    // Kinds of bastion session.
    ("shell", "シェル"),
    ("exec", "コマンド実行"),
    ("sftp", "SFTP"),
    ("scp", "SCP"),
    // File operations in a recording.
    ("read", "読み出し"),
    ("write", "書き込み"),
    ("open", "開いただけ"),
    ("remove", "削除"),
    ("rename", "名前の変更"),
    ("mkdir", "ディレクトリ作成"),
    ("rmdir", "ディレクトリ削除"),
    ("setstat", "属性の変更"),
    ("symlink", "シンボリックリンク作成"),
    ("link", "リンク作成"),
    ("error", "エラー"),
    ("malformed", "解析の中断"),
    // Kinds of subject.
    ("user", "ユーザー"),
    ("agent", "エージェント"),
    ("api_key", "API キー"),
    ("anonymous", "匿名"),
];

/// (key, English, Japanese).
const MESSAGES: &[(&str, &str, &str)] = &[
    // Layout
    ("app", "Sekisho", "関所"),
    ("nav.dashboard", "Dashboard", "ダッシュボード"),
    ("nav.agents", "Agents", "エージェント"),
    ("nav.services", "Services", "サービス"),
    ("nav.routes", "Routes", "ルート"),
    ("nav.users", "Users", "ユーザー"),
    ("nav.groups", "Groups", "グループ"),
    ("nav.keys", "API keys", "API キー"),
    ("nav.policies", "Policies", "ポリシー"),
    ("nav.audit", "Audit log", "監査ログ"),
    ("nav.live", "Live sessions", "接続中のセッション"),
    ("rec.ended", "ended", "終了"),
    ("live.sessions", "Bastion sessions now", "接続中の踏み台セッション"),
    ("live.watch", "Watch", "見る"),
    ("live.end", "End", "終了させる"),
    ("live.streams", "Streams open now", "開いているストリーム"),
    (
        "live.streams_text",
        "Every access forwarded now, on every path. To end one, change its policy or revoke the key or agent: open accesses are decided again at once.",
        "現在転送中のすべてのアクセスです。終了させるには、ポリシーを変更するか、キーまたはエージェントを失効させてください。開いているアクセスは即座に再判定されます。",
    ),
    ("nav.recordings", "Recordings", "録画"),
    ("nav.settings", "Settings", "設定"),
    ("nav.logout", "Log out", "ログアウト"),
    ("nav.menu", "Main menu", "メインメニュー"),
    ("lang.switch", "日本語", "English"),
    ("signed_in_as", "Signed in as", "ログイン中"),
    // Relative times ({n}: a number)
    ("ago.now", "just now", "たった今"),
    ("ago.soon", "in a moment", "まもなく"),
    ("ago.min", "{n} min ago", "{n}分前"),
    ("ago.hour", "{n} h ago", "{n}時間前"),
    ("ago.day", "{n} days ago", "{n}日前"),
    ("in.min", "in {n} min", "{n}分後"),
    ("in.hour", "in {n} h", "{n}時間後"),
    ("in.day", "in {n} days", "{n}日後"),
    // Login
    ("login.title", "Sign in", "サインイン"),
    (
        "login.store_unavailable",
        "The relay cannot read or write its database now, so nobody can be signed in. Try again shortly.",
        "中継サーバーが現在データベースを読み書きできないため、サインインできません。しばらくしてから再度お試しください。",
    ),
    ("login.tenant", "Organisation", "組織"),
    ("login.user", "User name", "ユーザー名"),
    ("login.password", "Password", "パスワード"),
    ("login.totp", "TOTP code (or a recovery code)", "TOTP コード(またはリカバリーコード)"),
    ("login.submit", "Sign in", "サインイン"),
    ("login.failed", "Sign-in failed", "サインインできませんでした"),
    ("sso.no_tenant", "There is no such organisation.", "その組織はありません。"),
    (
        "sso.busy",
        "Too many sign-ins are under way; try again in a minute.",
        "サインインが混み合っています。1 分ほどしてから再度お試しください。",
    ),
    (
        "sso.store",
        "The relay cannot read its database now; try again shortly.",
        "中継サーバーが現在データベースを読めません。しばらくしてから再度お試しください。",
    ),
    (
        "sso.locked",
        "This account is locked after repeated failed sign-ins; try again later.",
        "サインインの失敗が続いたため、このアカウントはロックされています。後で再度お試しください。",
    ),
    ("sso.provider_error", "The organisation's sign-in did not succeed.", "組織のサインインに失敗しました。"),
    ("sso.provider_refused", "The organisation's sign-in refused.", "組織のサインインで拒否されました。"),
    (
        "sso.bad_answer",
        "The organisation's sign-in sent an incomplete answer; start again.",
        "組織のサインインからの応答が不完全です。最初からやり直してください。",
    ),
    (
        "sso.other_browser",
        "This sign-in did not start in this browser; start it again.",
        "このサインインはこのブラウザーで始まっていません。最初からやり直してください。",
    ),
    (
        "sso.expired",
        "The sign-in took too long or was already used; start it again.",
        "サインインに時間がかかりすぎたか、すでに使われています。最初からやり直してください。",
    ),
    (
        "sso.unknown_user",
        "The organisation signed in someone who is not a user here; ask an admin. Name:",
        "組織のサインインで認証された人は、ここではユーザーではありません。管理者に依頼してください。名前:",
    ),
    ("login.sso", "Or with your organisation's single sign-on", "または組織のシングルサインオンで"),
    ("login.sso_continue", "Continue to your organisation's sign-in", "組織のサインインへ進む"),
    ("login.sso_submit", "Sign in with SSO (OpenID Connect)", "SSO でサインイン (OpenID Connect)"),
    ("login.continue", "Continue to", "続けて開く"),
    ("logout.done", "You are signed out.", "サインアウトしました。"),
    // Common
    ("name", "Name", "名前"),
    ("status", "Status", "状態"),
    ("actions", "Actions", "操作"),
    ("create", "Create", "作成"),
    ("delete", "Delete", "削除"),
    ("revoke", "Revoke", "失効"),
    ("save", "Save", "保存"),
    ("none", "None yet.", "まだありません。"),
    ("online", "online", "オンライン"),
    ("offline", "offline", "オフライン"),
    ("error", "Error", "エラー"),
    ("done", "Done.", "完了しました。"),
    ("reason", "Reason", "理由"),
    ("time", "Time", "時刻"),
    ("confirm", "Are you sure?", "よろしいですか?"),
    ("copy", "Copy", "コピー"),
    ("copied", "Copied", "コピーしました"),
    // Dashboard
    ("dash.agents_online", "Agents online", "オンラインのエージェント"),
    ("dash.agents_offline", "Agents offline", "オフラインのエージェント"),
    ("dash.streams", "Streams now", "現在のストリーム"),
    ("dash.allowed", "Allowed, last 24 h", "許可(24 時間)"),
    ("dash.denied", "Denied, last 24 h", "拒否(24 時間)"),
    ("dash.top_services", "Top services", "よく使われるサービス"),
    ("dash.top_denied", "Most denied users", "拒否の多いユーザー"),
    ("dash.count", "Count", "件数"),
    // Agents
    ("agents.role", "Role", "役割"),
    ("agents.site", "Site", "拠点"),
    ("agents.version", "Version", "バージョン"),
    ("agents.address", "Address", "アドレス"),
    ("agents.last_seen", "Last seen", "最終接続"),
    ("agents.enroll", "Enroll an agent", "エージェントを登録"),
    (
        "agents.enroll_hint",
        "Run this once on the machine; the token works once and expires in 1 hour.",
        "対象のマシンで一度だけ実行してください。トークンは 1 回限り有効で、1 時間で失効します。",
    ),
    ("agents.enroll_submit", "Create enrollment command", "登録コマンドを作成"),
    // Services
    ("services.target", "Target", "接続先"),
    ("services.agent", "Back agent", "バックエージェント"),
    ("services.protocol", "Protocol", "プロトコル"),
    ("services.browser", "Browser access", "ブラウザーアクセス"),
    (
        "services.browser_hint",
        "Publish at its own hostname behind the Sekisho login (http targets)",
        "Sekisho のログインの後ろで専用のホスト名に公開する(http の接続先)",
    ),
    ("services.policy", "Policy", "ポリシー"),
    // Decision reasons as sentences ({c}: the condition's text)
    ("why.allowed", "All required conditions hold", "すべての必須条件を満たしています"),
    ("why.required", "The required condition “{c}” does not hold", "必須条件『{c}』を満たしていません"),
    ("why.deny", "The deny condition “{c}” holds", "拒否条件『{c}』に該当します"),
    (
        "why.no_policy",
        "The service has no policy, so every access is denied",
        "このサービスにはポリシーがないため、すべてのアクセスを拒否します",
    ),
    (
        "why.store_unavailable",
        "The relay could not read its database, so it refused rather than guess",
        "中継サーバーがデータベースを読めなかったため、推測せずに拒否しました",
    ),
    (
        "why.audit_unavailable",
        "The audit log could not be written, so nothing went ahead",
        "監査ログに書き込めなかったため、実行しませんでした",
    ),
    (
        "why.audit_backlog",
        "The audit log could not keep up, so new accesses waited",
        "監査ログの書き込みが追いつかないため、新しいアクセスを待たせました",
    ),
    (
        "why.cross_site",
        "A request from another site's page was refused",
        "別のサイトのページからのリクエストを拒否しました",
    ),
    ("why.route_not_found", "There is no such route", "該当するルートがありません"),
    ("why.agent_offline", "The service's agent is not connected", "サービスのエージェントが接続していません"),
    ("why.session", "The browser was not signed in", "ブラウザーがサインインしていませんでした"),
    (
        "why.credential_revoked",
        "The key or session was revoked or has expired",
        "キーまたはセッションが失効しているか期限切れです",
    ),
    (
        "why.private_destination",
        "The destination is in the relay's own network, which the egress rule does not allow",
        "宛先が中継サーバー自身のネットワーク内にあり、送信ルールで許可されていません",
    ),
    (
        "why.policy_unreadable",
        "The service's policy could not be read, so every access is denied",
        "サービスのポリシーを読めないため、すべてのアクセスを拒否します",
    ),
    ("dash.accesses_24h", "Accesses in the last 24 hours", "過去 24 時間のアクセス"),
    ("dash.per_hour", "per hour", "1 時間ごと"),
    ("dash.top_reasons", "Top deny reasons (24 h)", "拒否の主な理由 (24 時間)"),
    ("dash.countries", "Where accesses came from (24 h)", "アクセス元の国 (24 時間)"),
    ("services.policy_set", "set", "設定済み"),
    ("services.no_policy", "none: every access is denied", "なし: すべてのアクセスを拒否"),
    ("services.new", "New service", "新しいサービス"),
    ("services.open", "Open", "開く"),
    // Routes
    ("routes.front", "Front agent", "フロントエージェント"),
    ("routes.listen", "Local address", "ローカルアドレス"),
    ("routes.service", "Service", "サービス"),
    ("routes.new", "New route", "新しいルート"),
    ("routes.diagram", "Who reaches what", "接続の図"),
    // Users and groups
    ("users.display", "Display name", "表示名"),
    ("users.groups", "Groups", "グループ"),
    ("users.totp", "TOTP", "TOTP"),
    ("users.locked", "Locked", "ロック中"),
    ("users.new", "New user", "新しいユーザー"),
    ("users.enroll_totp", "Enroll TOTP", "TOTP を登録"),
    (
        "users.totp_secret",
        "Scan or type this secret in the authenticator app; it is shown once.",
        "認証アプリでこのシークレットを読み取るか入力してください。一度だけ表示されます。",
    ),
    ("groups.role", "Role", "ロール"),
    ("groups.members", "Members", "メンバー"),
    ("groups.new", "New group", "新しいグループ"),
    ("groups.add_member", "Add member", "メンバーを追加"),
    // API keys
    ("keys.scopes", "Scopes", "スコープ"),
    ("keys.created", "Created", "作成"),
    ("keys.expires", "Expires", "有効期限"),
    ("keys.last_used", "Last used", "最終使用"),
    ("keys.new", "New API key", "新しい API キー"),
    ("keys.sessions", "Sign-in sessions", "サインイン中のセッション"),
    (
        "keys.sessions_text",
        "Made by signing in to the console, and for each service opened in the browser from it. Ending a console session ends its browser sessions too.",
        "コンソールへのサインインと、そこからブラウザーで開いた各サービスのためのものです。コンソールのセッションを終了すると、そのブラウザーのセッションも終了します。",
    ),
    ("keys.user", "User", "ユーザー"),
    ("keys.kind", "Kind", "種類"),
    ("keys.kind_console", "Console", "コンソール"),
    ("keys.kind_browser", "Browser:", "ブラウザー:"),
    ("keys.method", "Sign-in method", "サインイン方法"),
    ("keys.signed_in", "Signed in", "サインイン日時"),
    ("keys.end_session", "End", "終了"),
    ("auth.password", "Password", "パスワード"),
    ("auth.password_totp", "Password and TOTP", "パスワードと TOTP"),
    ("auth.oidc", "Single sign-on (OpenID Connect)", "シングルサインオン (OpenID Connect)"),
    ("auth.other", "Other", "その他"),
    (
        "keys.shown_once",
        "Copy the key now; it is shown only once.",
        "今すぐキーをコピーしてください。一度だけ表示されます。",
    ),
    // Policies
    ("policies.service", "Service", "サービス"),
    (
        "policies.required",
        "Required conditions (all must hold), one per line",
        "必須条件(すべて満たす必要あり)、1 行に 1 つ",
    ),
    (
        "policies.deny",
        "Deny conditions (any one denies), one per line",
        "拒否条件(1 つでも当てはまれば拒否)、1 行に 1 つ",
    ),
    ("list.sep", ", ", "、"),
    ("dash.agents_24h", "Agents online, last 24 hours", "オンラインのエージェント (過去 24 時間)"),
    ("dash.agents_per_hour", "most agents online per hour", "1 時間ごとの最大オンライン数"),
    ("dash.most", "at most", "最大"),
    ("rec.file_op", "Operation", "操作"),
    ("rec.file_path", "Path", "パス"),
    ("rec.file_ok", "done", "成功"),
    ("rec.file_failed", "failed", "失敗"),
    ("rec.file_unknown", "no answer seen", "応答なし"),
    ("rec.offset", "t (s)", "経過 (秒)"),
    ("why.scope", "allowed by scope {s}", "スコープ {s} による許可"),
    ("why.enrolled", "enrolled with token {t}", "トークン {t} で登録"),
    ("why.login_ok", "signed in", "サインインに成功"),
    ("why.browser_session", "browser session started", "ブラウザーのセッションを開始"),
    ("why.bad_login", "wrong user name or password", "ユーザー名かパスワードが違います"),
    ("why.locked", "locked after failed sign-ins", "失敗が続いたためロック中"),
    ("why.rate_limited", "too many failed attempts", "失敗が多すぎます"),
    ("why.bad_totp", "wrong TOTP code", "TOTP のコードが違います"),
    ("why.totp_replayed", "TOTP code used again", "使用済みの TOTP コード"),
    ("why.totp_required", "TOTP code missing", "TOTP のコードがありません"),
    ("why.totp_not_enrolled", "no TOTP enrolled", "TOTP が未登録"),
    ("why.totp_unreadable", "TOTP secret unreadable", "TOTP の設定を読めません"),
    ("diag.required", "required", "必須条件"),
    ("diag.deny", "deny", "拒否条件"),
    ("diag.at", "line {line} column {column}", "{line} 行 {column} 列"),
    ("policies.none", "No policy: every access is denied.", "ポリシーなし:すべてのアクセスが拒否されます。"),
    ("policies.saved", "Policy saved.", "ポリシーを保存しました。"),
    ("policies.invalid", "The policy was not saved:", "ポリシーは保存されませんでした:"),
    ("policies.test", "Test a decision", "判定を試す"),
    ("policies.test_user", "User", "ユーザー"),
    ("policies.test_ip", "Source IP", "送信元 IP"),
    ("policies.test_path", "Path", "経路"),
    ("policies.test_submit", "Decide", "判定"),
    ("policies.allowed", "Allowed", "許可"),
    ("policies.denied", "Denied", "拒否"),
    ("policies.examples", "Examples", "例"),
    // Audit
    ("audit.subject", "Who", "誰が"),
    ("audit.target", "Target", "対象"),
    ("audit.decision", "Decision", "判定"),
    ("audit.path", "Path", "経路"),
    ("audit.domain", "Domain", "ドメイン"),
    ("audit.source", "Source", "送信元"),
    ("audit.kind", "Kind", "種類"),
    ("audit.since_hours", "Last hours", "過去(時間)"),
    ("audit.filter", "Filter", "絞り込み"),
    ("audit.export_csv", "Export CSV", "CSV を書き出す"),
    ("audit.export_jsonl", "Export JSON lines", "JSONL を書き出す"),
    ("audit.subject_kind", "Kind of subject", "主体の種類"),
    ("audit.any", "any", "すべて"),
    ("audit.detail", "Detail", "詳細"),
    ("audit.open", "Open", "開く"),
    ("audit.older", "Older events", "さらに古いイベント"),
    ("audit.request", "Request", "リクエスト"),
    ("audit.bytes", "Bytes", "転送量"),
    ("audit.event", "Audit event", "監査イベント"),
    ("audit.auth_method", "Sign-in method", "認証方法"),
    ("audit.duration", "Duration", "所要時間"),
    ("audit.chain", "Place in the hash chain", "ハッシュチェーン上の位置"),
    ("audit.place", "Number", "番号"),
    ("audit.hash", "Hash", "ハッシュ"),
    ("audit.prev_hash", "Previous event's hash", "直前のイベントのハッシュ"),
    ("audit.chain_ok", "matches", "一致"),
    ("audit.chain_bad", "does not match: altered", "不一致: 改ざんされています"),
    ("audit.chain_unknown", "earlier events pruned", "以前のイベントは保存期間切れで削除済み"),
    (
        "audit.chain_text",
        "Each event's hash covers its fields and the hash before it, so a change anywhere breaks every later link. The signed checkpoints are checked by {cmd}.",
        "各イベントのハッシュはその内容と直前のハッシュを含むため、どこかを変えると以降のつながりがすべて崩れます。署名付きチェックポイントは {cmd} で検証します。",
    ),
    ("kind.access", "access", "アクセス"),
    ("kind.admin", "admin change", "管理操作"),
    ("kind.login", "sign-in", "サインイン"),
    ("kind.system", "system", "システム"),
    ("kind.agent_enroll", "agent enrollment", "エージェント登録"),
    ("kind.agent_auth", "agent sign-in", "エージェント認証"),
    ("audit.policy_id", "Policy id", "ポリシー ID"),
    ("audit.stored_reason", "Reason as recorded", "記録された理由"),
    ("decision.allow", "allow", "許可"),
    ("decision.deny", "deny", "拒否"),
    ("audit.open_streams", "Streams opened and not closed", "開始後まだ終了していないストリーム"),
    (
        "audit.open_streams_help",
        "Open now, or forwarded by a relay that stopped (killed or crashed) and has not started again; a relay that starts again closes its own as open_at_crash.",
        "現在接続中か、停止（強制終了・クラッシュ）したまま再起動していないリレーが中継していたものです。リレーは再起動時に自分のものを open_at_crash として終了させます。",
    ),
    ("audit.stream", "Stream", "ストリーム"),
    ("audit.phase.opened", "opened", "開始"),
    ("audit.phase.closed", "closed", "終了"),
    // Recordings
    ("rec.command", "Command", "コマンド"),
    ("rec.live", "in progress", "接続中"),
    ("rec.replay", "Replay", "再生"),
    ("rec.download", "Download .cast", ".cast をダウンロード"),
    ("rec.commands", "Commands", "コマンド一覧"),
    ("rec.files", "File operations", "ファイル操作"),
    // Settings
    ("settings.time_zone", "Time zone", "タイムゾーン"),
    ("settings.tz_tenant", "The organisation's", "組織の設定"),
    (
        "settings.tz_text",
        "Times in the console are shown in this zone. The organisation's zone also decides the policies' time conditions; the operator sets it.",
        "コンソールの時刻はこのタイムゾーンで表示されます。組織のタイムゾーンはポリシーの時間条件にも使われ、運用者が設定します。",
    ),
    ("settings.tz_save", "Save time zone", "タイムゾーンを保存"),
    ("settings.language", "Language", "言語"),
    ("settings.tenant", "Organisation", "組織"),
    ("settings.session", "Session", "セッション"),
    ("settings.version", "Relay version", "リレーのバージョン"),
    ("settings.scopes", "What you may do", "権限"),
    // Browser access pages
    ("edge.denied", "Access denied", "アクセスが拒否されました"),
    (
        "edge.denied_text",
        "The policy of this service does not allow this access.",
        "このサービスのポリシーはこのアクセスを許可していません。",
    ),
    (
        "edge.cross_site",
        "A page of another site may not send this request with your session.",
        "他のサイトのページから、あなたのセッションでこのリクエストを送ることはできません。",
    ),
    ("edge.unavailable", "Service unavailable", "サービスを利用できません"),
    ("edge.unavailable_text", "The service cannot be reached right now.", "現在このサービスに接続できません。"),
    ("edge.unknown", "No such service", "サービスが見つかりません"),
    (
        "edge.unknown_text",
        "No service is published at this address.",
        "このアドレスで公開されているサービスはありません。",
    ),
    ("edge.login_needed", "Sign-in required", "サインインが必要です"),
    (
        "edge.login_needed_text",
        "Sign in to Sekisho, then try again.",
        "Sekisho にサインインしてから、もう一度お試しください。",
    ),
    ("edge.reason_id", "Reason id", "理由 ID"),
    ("edge.back", "Sign in again", "もう一度サインイン"),
    ("forbidden", "Not allowed", "許可されていません"),
    ("forbidden_text", "Your account lacks the permission for this page.", "このページを使う権限がありません。"),
    ("bad_request", "The request was refused", "リクエストは拒否されました"),
    ("not_found", "Not found", "見つかりません"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_both_languages_once() {
        let mut keys = std::collections::HashSet::new();
        for (k, en, ja) in MESSAGES {
            assert!(keys.insert(*k), "duplicate key `{k}`");
            assert!(!en.is_empty() && !ja.is_empty(), "`{k}` lacks a text");
        }
    }

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = 1_796_601_600_000;
        assert_eq!(Lang::Ja.relative(now, now - 5 * 60_000).as_deref(), Some("5分前"));
        assert_eq!(Lang::En.relative(now, now - 5 * 60_000).as_deref(), Some("5 min ago"));
        assert_eq!(Lang::Ja.relative(now, now - 20_000).as_deref(), Some("たった今"));
        assert_eq!(Lang::Ja.relative(now, now - 3 * 3_600_000).as_deref(), Some("3時間前"));
        assert_eq!(Lang::En.relative(now, now + 2 * 86_400_000).as_deref(), Some("in 2 days"));
        assert_eq!(Lang::Ja.relative(now, now + 2 * 86_400_000).as_deref(), Some("2日後"));
        assert_eq!(Lang::Ja.relative(now, now - 40 * 86_400_000), None, "a date says it better");
    }

    /// Every `t("…")` in the web module names a key of the table.
    #[test]
    fn every_key_used_is_translated() {
        let sources = [
            include_str!("console.rs"),
            include_str!("console/pages.rs"),
            include_str!("console/admin.rs"),
            include_str!("console/recordings.rs"),
            include_str!("console/sso.rs"),
            include_str!("console/settings.rs"),
            include_str!("console/audit.rs"),
            include_str!("console/charts.rs"),
            include_str!("console/live.rs"),
            include_str!("console/login.rs"),
            include_str!("edge.rs"),
            include_str!("page.rs"),
        ];
        for src in sources {
            for part in src.split(".t(\"").skip(1) {
                let key = part.split('"').next().unwrap_or("");
                assert!(MESSAGES.iter().any(|(k, _, _)| *k == key), "untranslated key `{key}`");
            }
        }
    }

    #[test]
    fn the_switch_wins_then_the_browser_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert("accept-language", "ja-JP,ja;q=0.9,en;q=0.8".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::Ja);
        h.insert("cookie", "sekisho_lang=en".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
        let mut h = HeaderMap::new();
        h.insert("accept-language", "fr, en-GB;q=0.8, ja;q=0.5".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
        assert_eq!(Lang::Ja.t("nav.audit"), "監査ログ");
    }
}
