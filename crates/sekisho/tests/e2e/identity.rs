//! Tenants, scoped API keys and logins against the real relay: isolation between tenants, scopes,
//! expiry, revocation, source-IP allow-lists, rate limits, password + TOTP and lockout, all audited.

use serde_json::{Value, json};

use crate::harness::{Agent, Relay};

/// A tenant made by the relay operator: its admin key.
async fn tenant(relay: &Relay, name: &str) -> String {
    let (status, v) = relay.api("POST", "/api/v1/tenants", Some(json!({ "name": name })), &relay.admin_key).await;
    assert_eq!(status, 201, "{v}");
    v["admin_key"].as_str().unwrap().to_owned()
}

/// Enrolls and starts an agent in the tenant of `key`.
async fn tenant_agent(relay: &Relay, key: &str, name: &str) -> Agent {
    let body = json!({ "name": name, "role": "both" });
    let (status, v) = relay.api("POST", "/api/v1/enrollment-tokens", Some(body), key).await;
    assert_eq!(status, 201, "{v}");
    let mut agent = Agent::start(relay, v["token"].as_str().unwrap(), &[]).await;
    let ev = agent.proc.event("connected").await;
    agent.id = ev["agent_id"].as_str().unwrap().to_owned();
    agent
}

/// Everything a tenant owns, created through its own key: returns (service, route id, key id).
async fn populate(relay: &Relay, key: &str, prefix: &str) -> (Agent, String, String) {
    let agent = tenant_agent(relay, key, &format!("{prefix}-agent")).await;
    let svc = format!("{prefix}-wiki");
    let post = |path: &'static str, body: Value| async move {
        let (status, v) = relay.api("POST", path, Some(body), key).await;
        assert!(status == 201 || status == 200, "{path}: {v}");
        v
    };
    post("/api/v1/services", json!({ "name": svc, "agent": agent.id, "target": "tcp://127.0.0.1:9" })).await;
    let route =
        post("/api/v1/routes", json!({ "agent": agent.id, "listen": "127.0.0.1:0", "service": svc })).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
    post("/api/v1/groups", json!({ "name": format!("{prefix}-ops"), "role": "operator" })).await;
    post("/api/v1/users", json!({ "name": format!("{prefix}-alice"), "password": "correct horse battery" })).await;
    let k = post("/api/v1/api-keys", json!({ "name": format!("{prefix}-ci"), "scopes": ["agents:read"] })).await;
    let (_, keys) = relay.api("GET", "/api/v1/api-keys", None, key).await;
    let key_id = keys.as_array().unwrap().iter().find(|k| k["name"] == format!("{prefix}-ci")).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(k["id"], key_id.as_str(), "the create response names the key's id: {k}");
    let (status, v) =
        relay.api("PUT", &format!("/api/v1/policies/{svc}"), Some(json!({"required": ["true"]})), key).await;
    assert_eq!(status, 200, "{v}");
    (agent, route, key_id)
}

#[tokio::test]
async fn a_tenant_admin_can_read_or_change_nothing_of_another_tenant() {
    let relay = Relay::start().await;
    let acme = tenant(&relay, "acme").await;
    let beta = tenant(&relay, "beta").await;
    let (_a_agent, _a_route, _a_key) = populate(&relay, &acme, "acme").await;
    let (b_agent, b_route, b_key) = populate(&relay, &beta, "beta").await;

    // Reads: acme's admin sees none of beta's names or ids anywhere.
    for path in [
        "/api/v1/agents",
        "/api/v1/services",
        "/api/v1/routes",
        "/api/v1/users",
        "/api/v1/groups",
        "/api/v1/api-keys",
        "/api/v1/policies",
        "/api/v1/audit?limit=10000",
    ] {
        let (status, v) = relay.api("GET", path, None, &acme).await;
        assert_eq!(status, 200, "{path}: {v}");
        let text = v.to_string();
        assert!(!text.contains("beta"), "{path} leaks beta: {text}");
        assert!(!text.contains(&b_agent.id) && !text.contains(&b_route) && !text.contains(&b_key), "{path}: {text}");
        assert!(
            text.contains("acme") || path.contains("audit") || path.contains("policies"),
            "{path} lists nothing: {text}"
        );
    }
    // Changes: every attempt on beta's objects is "not found", and changes nothing.
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("DELETE", format!("/api/v1/agents/{}", b_agent.id), None),
        ("DELETE", "/api/v1/services/beta-wiki".into(), None),
        ("DELETE", format!("/api/v1/routes/{b_route}"), None),
        ("PUT", "/api/v1/policies/beta-wiki".into(), Some(json!({"required": ["false"]}))),
        ("DELETE", "/api/v1/policies/beta-wiki".into(), None),
        ("DELETE", "/api/v1/users/beta-alice".into(), None),
        ("POST", "/api/v1/users/beta-alice/password".into(), Some(json!({"password": "0123456789abc"}))),
        ("POST", "/api/v1/users/beta-alice/totp".into(), None),
        ("DELETE", "/api/v1/groups/beta-ops".into(), None),
        ("PUT", "/api/v1/groups/beta-ops/members/beta-alice".into(), None),
        ("DELETE", format!("/api/v1/api-keys/{b_key}"), None),
        (
            "POST",
            "/api/v1/routes".into(),
            Some(json!({"agent": b_agent.id, "listen": "127.0.0.1:0", "service": "beta-wiki"})),
        ),
        (
            "POST",
            "/api/v1/services".into(),
            Some(json!({"name": "x", "agent": b_agent.id, "target": "tcp://127.0.0.1:9"})),
        ),
        ("POST", "/api/v1/enrollment-tokens".into(), Some(json!({"name": "x", "role": "front", "user": "beta-alice"}))),
        (
            "POST",
            "/api/v1/policies/test".into(),
            Some(json!({"service": "beta-wiki", "agent": b_agent.id, "ip": "10.0.0.1"})),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, v) = relay.api(method, &path, body, &acme).await;
        assert_eq!(status, 404, "{method} {path} by another tenant: {v}");
    }
    // Tenants themselves are the relay operator's.
    let (status, v) = relay.api("GET", "/api/v1/tenants", None, &acme).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("forbidden")));

    // Beta's objects are all still there.
    for (path, needle) in [
        ("/api/v1/agents", b_agent.id.as_str()),
        ("/api/v1/services", "beta-wiki"),
        ("/api/v1/routes", b_route.as_str()),
        ("/api/v1/users", "beta-alice"),
        ("/api/v1/groups", "beta-ops"),
        ("/api/v1/api-keys", b_key.as_str()),
        ("/api/v1/policies", "beta-wiki"),
    ] {
        let (_, v) = relay.api("GET", path, None, &beta).await;
        assert!(v.to_string().contains(needle), "{path} lost {needle}: {v}");
    }
    let (_, p) = relay.api("GET", "/api/v1/policies/beta-wiki", None, &beta).await;
    assert_eq!(p["required"], json!(["true"]));
}

#[tokio::test]
async fn api_keys_hold_scopes_expire_are_revoked_and_keep_to_their_addresses() {
    let relay = Relay::start().await;
    let admin = relay.admin_key.clone();
    let create = |body: Value| {
        let relay = &relay;
        let admin = admin.clone();
        async move {
            let (status, v) = relay.api("POST", "/api/v1/api-keys", Some(body), &admin).await;
            assert_eq!(status, 201, "{v}");
            v["key"].as_str().unwrap().to_owned()
        }
    };
    let reader =
        create(json!({"name": "reader", "scopes": ["agents:read", "apikeys:write"], "expires_in_days": 30})).await;
    assert_eq!(relay.api("GET", "/api/v1/agents", None, &reader).await.0, 200);
    let (status, v) = relay
        .api("POST", "/api/v1/services", Some(json!({"name": "x", "agent": "a", "target": "tcp://h:1"})), &reader)
        .await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("services:write"));
    // A key cannot hand out more than it holds.
    let (status, v) =
        relay.api("POST", "/api/v1/api-keys", Some(json!({"name": "up", "scopes": ["routes:write"]})), &reader).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("scope_escalation")), "{v}");
    let (status, v) =
        relay.api("POST", "/api/v1/api-keys", Some(json!({"name": "bad", "scopes": ["root"]})), &admin).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_scope")), "{v}");

    // Source-IP allow-list.
    let elsewhere = create(json!({"name": "office", "scopes": ["agents:read"], "allowed_ips": ["10.0.0.0/8"]})).await;
    let (status, v) = relay.api("GET", "/api/v1/agents", None, &elsewhere).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("ip_not_allowed")), "{v}");
    let here = create(json!({"name": "local", "scopes": ["agents:read"], "allowed_ips": ["127.0.0.0/8", "::1"]})).await;
    assert_eq!(relay.api("GET", "/api/v1/agents", None, &here).await.0, 200);

    // Expiry (aged directly in the database) and revocation.
    {
        use sqlx::Connection;
        let db = relay.dir.path().join("data/sekisho.db");
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("UPDATE api_keys SET expires_at = 1 WHERE name = 'reader'").execute(&mut c).await.unwrap();
    }
    let (status, v) = relay.api("GET", "/api/v1/agents", None, &reader).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
    let (_, keys) = relay.api("GET", "/api/v1/api-keys", None, &admin).await;
    assert!(!keys.to_string().contains("key_hash"), "hashes never leave the relay: {keys}");
    let id = keys.as_array().unwrap().iter().find(|k| k["name"] == "local").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(relay.api("DELETE", &format!("/api/v1/api-keys/{id}"), None, &admin).await.0, 204);
    let (status, v) = relay.api("GET", "/api/v1/agents", None, &here).await;
    assert!(status == 401 && v["error"]["message"].as_str().unwrap().contains("revoked"), "{v}");

    // Forged or malformed JSON: a clear error, audited, nothing created.
    let forged = json!({"name": "sneaky", "scopes": ["*"], "tenant_id": "other"});
    let (status, v) = relay.api("POST", "/api/v1/api-keys", Some(forged), &admin).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_json")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("tenant_id"), "{v}");
    let (_, keys) = relay.api("GET", "/api/v1/api-keys", None, &admin).await;
    assert!(!keys.to_string().contains("sneaky"));
    let (status, v) = relay.api("POST", "/api/v1/login", Some(json!({"user": 1})), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_json")), "{v}");

    // Every refusal is evidence.
    let (_, audit) = relay.api("GET", "/api/v1/audit?decision=deny&kind=admin&limit=1000", None, &admin).await;
    let text = audit.to_string();
    for needle in ["forbidden", "scope_escalation", "ip_not_allowed", "expired", "revoked", "bad_json"] {
        assert!(text.contains(needle), "no audited refusal with {needle}: {text}");
    }

    // Guessing keys is rate limited per address.
    let mut codes = Vec::new();
    for i in 0..12 {
        let (status, _) = relay.api("GET", "/api/v1/agents", None, &format!("sk_guess{i}")).await;
        codes.push(status);
    }
    assert!(codes[..5].iter().all(|c| *c == 401), "{codes:?}");
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
}

fn totp_now(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).unwrap().generate_current().unwrap()
}

#[tokio::test]
async fn users_log_in_with_password_and_totp_and_slow_down_after_failures() {
    let relay = Relay::start().await;
    let admin = relay.admin_key.clone();
    let ok = |(status, v): (u16, Value)| {
        assert!((200..300).contains(&status), "{v}");
        v
    };
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "ops", "role": "operator"})), &admin).await);
    let body = json!({"name": "alice", "password": "correct horse battery", "groups": ["ops"]});
    ok(relay.api("POST", "/api/v1/users", Some(body), &admin).await);
    let (status, v) =
        relay.api("POST", "/api/v1/users", Some(json!({"name": "bob", "password": "short"})), &admin).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("weak_password")));
    let enrolled = ok(relay.api("POST", "/api/v1/users/alice/totp", None, &admin).await);
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let recovery: Vec<String> =
        enrolled["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    let (_, users) = relay.api("GET", "/api/v1/users", None, &admin).await;
    assert!(!users.to_string().contains(&secret) && !users.to_string().contains("argon2"), "{users}");

    let login = |extra: Value| {
        let relay = &relay;
        async move {
            let mut body = json!({"tenant": "default", "user": "alice", "password": "correct horse battery"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            relay.api("POST", "/api/v1/login", Some(body), "").await
        }
    };
    let (status, v) = login(json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("totp_required")), "{v}");
    let code = totp_now(&secret);
    let (status, v) = login(json!({"totp": code})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["auth_method"], "password+totp");
    let session = v["key"].as_str().unwrap().to_owned();
    // A code is spent once (the next success below uses recovery codes, so no test waits for the clock).
    let (status, v) = login(json!({"totp": code})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("totp_replayed")), "{v}");
    // The operator role: services yes, audit no.
    assert_eq!(relay.api("GET", "/api/v1/services", None, &session).await.0, 200);
    assert_eq!(relay.api("GET", "/api/v1/audit", None, &session).await.0, 403);
    // A recovery code works once.
    assert_eq!(login(json!({"recovery_code": recovery[0]})).await.0, 200);
    assert_eq!(login(json!({"recovery_code": recovery[0]})).await.0, 401);
    assert_eq!(login(json!({"recovery_code": recovery[1]})).await.0, 200, "a success resets the failure count");

    // Wrong passwords slow the account down; meanwhile even the right one is refused.
    for _ in 0..5 {
        let (status, _) = login(json!({"password": "wrong wrong wrong", "totp": totp_now(&secret)})).await;
        assert_eq!(status, 401);
    }
    let (status, v) = login(json!({"totp": totp_now(&secret)})).await;
    // Answered like a wrong password (423 would tell that the user exists); recorded as `locked`.
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthenticated")), "{v}");
    let (_, unknown) =
        relay.api("POST", "/api/v1/login", Some(json!({"user": "nobody-here", "password": "whatever123"})), "").await;
    assert_eq!(v["error"], unknown["error"], "a locked account and an unknown user are told the same");
    // The admin sees the account waiting.
    let (_, users) = relay.api("GET", "/api/v1/users", None, &admin).await;
    let alice = users.as_array().unwrap().iter().find(|u| u["name"] == "alice").unwrap().clone();
    assert_eq!(alice["locked"], true, "{alice}");
    // No hard lockout: once the wait (2 s after five failures) has passed, the right credentials
    // pass again by themselves (an admin's unlock would end the wait at once; this address has
    // used up its failures for the minute, so a second round would be refused per address).
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(login(json!({"recovery_code": recovery[2]})).await.0, 200, "the account only slowed down");
    // Unknown users get the same answer as wrong passwords.
    let (status, v) =
        relay.api("POST", "/api/v1/login", Some(json!({"user": "mallory", "password": "whatever123"})), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthenticated")));

    // All attempts are in the audit log.
    let (_, audit) = relay.api("GET", "/api/v1/audit?kind=login&limit=100", None, &admin).await;
    let reasons: Vec<&str> =
        audit.as_array().unwrap_or_else(|| panic!("{audit}")).iter().map(|e| e["reason"].as_str().unwrap()).collect();
    for r in ["totp_required", "bad_password", "locked", "unknown_user", "login succeeded", "bad_totp", "totp_replayed"]
    {
        assert!(reasons.contains(&r), "no login event `{r}` in {reasons:?}");
    }
}

/// Runs `sekisho ctl --json ARGS` with `stdin`; Ok(parsed stdout) or Err(stderr).
async fn ctl_with_stdin(relay: &Relay, key: &str, args: &[&str], stdin: &str) -> Result<Value, String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = relay.ctl_command(key);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_readme_identity_commands_work_through_ctl() {
    let relay = Relay::start().await;
    let admin = relay.admin_key.clone();
    let v = relay.ctl(&["tenant", "create", "acme", "--max-agents", "5", "--retention-days", "30"]).await.unwrap();
    let acme = v["admin_key"].as_str().unwrap().to_owned();
    let run = |args: &'static [&'static str], stdin: &'static str| {
        let relay = &relay;
        let acme = acme.clone();
        async move { ctl_with_stdin(relay, &acme, args, stdin).await }
    };
    run(&["group", "add", "ops", "--role", "operator"], "").await.unwrap();
    run(&["user", "add", "alice", "--group", "ops", "--password-stdin"], "correct horse battery\n").await.unwrap();
    let totp = run(&["user", "totp", "alice"], "").await.unwrap();
    let secret = totp["secret"].as_str().unwrap().to_owned();
    let users = run(&["user", "list"], "").await.unwrap();
    assert_eq!(users[0]["groups"], json!(["ops"]), "{users}");
    let key = run(&["apikey", "create", "ci", "--scope", "routes:read", "--expires", "30d"], "").await.unwrap();
    assert!(key["key"].as_str().unwrap().starts_with("sk_"), "{key}");
    // An hour is an hour (it used to be rounded up to a day); a lifetime without a unit is refused.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let hour = run(&["apikey", "create", "hour", "--scope", "routes:read", "--ttl", "1h"], "").await.unwrap();
    let left = hour["expires_at"].as_i64().expect("expires_at in ms") - now;
    assert!((3_500_000..=3_700_000).contains(&left), "a 1h key expires in {left} ms: {hour}");
    let bare = run(&["apikey", "create", "bare", "--scope", "routes:read", "--ttl", "30"], "").await.unwrap_err();
    assert!(bare.contains("30m") && bare.contains("2w"), "{bare}");
    for body in [
        json!({"name": "both", "scopes": ["routes:read"], "expires_in_days": 1, "expires_in_secs": 3600}),
        json!({"name": "short", "scopes": ["routes:read"], "expires_in_secs": 59}),
    ] {
        let (status, v) = relay.api("POST", "/api/v1/api-keys", Some(body), &acme).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_expiry")), "{v}");
    }
    let code = totp_now(&secret);
    let login = ctl_with_stdin(
        &relay,
        "",
        &["login", "--tenant", "acme", "--user", "alice", "--totp", &code],
        "correct horse battery\n",
    )
    .await
    .unwrap();
    let session = login["key"].as_str().unwrap().to_owned();
    let (status, _) = relay.api("GET", "/api/v1/services", None, &session).await;
    assert_eq!(status, 200);
    let err = ctl_with_stdin(&relay, "", &["login", "--tenant", "acme", "--user", "alice"], "wrong password!!\n")
        .await
        .unwrap_err();
    assert!(err.contains("unauthenticated"), "{err}");
    // The tenant's audit log, as CSV, holds these actions and nothing of the operator's tenant.
    let out =
        relay.ctl_command(&acme).args(["audit", "search", "--format", "csv", "--limit", "100"]).output().await.unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("tenant,seq,at,time,kind"), "{csv}");
    assert!(csv.contains("POST /users") && csv.contains("login succeeded"), "{csv}");
    let verify = ctl_with_stdin(&relay, &acme, &["audit", "verify"], "").await.unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    let _ = admin;
}

/// Scopes never grant more than they name: a key with `users:write` cannot make or join an admin
/// group or take over an admin's sign-in; a key with `apikeys:write` cannot mint keys that act as
/// a user (that needs `users:act`, the admin role's); the tenant admin can do all of it.
#[tokio::test]
async fn scopes_do_not_escalate() {
    let relay = Relay::start().await;
    let admin = relay.admin_key.clone();
    let ok = |(s, v): (u16, Value)| {
        assert!((200..300).contains(&s), "{v}");
        v
    };
    let key_with = |scopes: &[&str]| {
        let body = json!({ "name": format!("k{}", rand::random::<u32>()), "scopes": scopes });
        let relay = &relay;
        let admin = admin.clone();
        async move { relay.api("POST", "/api/v1/api-keys", Some(body), &admin).await.1["key"].as_str().unwrap().to_owned() }
    };
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "admins", "role": "admin"})), &admin).await);
    let boss = json!({"name": "boss", "password": "correct horse battery", "groups": ["admins"]});
    ok(relay.api("POST", "/api/v1/users", Some(boss), &admin).await);
    let mallory = json!({"name": "mallory", "password": "correct horse battery"});
    ok(relay.api("POST", "/api/v1/users", Some(mallory), &admin).await);

    // (`gateway:use` too: the member role grants it, so giving it needs it.)
    let users_write = key_with(&["users:write", "users:read", "gateway:use"]).await;
    let refused = |(s, v): (u16, Value)| {
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("scope_escalation")), "{v}");
    };
    refused(relay.api("POST", "/api/v1/groups", Some(json!({"name": "mine", "role": "admin"})), &users_write).await);
    refused(relay.api("PUT", "/api/v1/groups/admins/members/mallory", None, &users_write).await);
    let joined = json!({"name": "eve", "password": "correct horse battery", "groups": ["admins"]});
    refused(relay.api("POST", "/api/v1/users", Some(joined), &users_write).await);
    let pw = json!({"password": "a new password here"});
    refused(relay.api("POST", "/api/v1/users/boss/password", Some(pw.clone()), &users_write).await);
    refused(relay.api("POST", "/api/v1/users/boss/totp", None, &users_write).await);
    // What it names it can still do: a member group, and the password of a member.
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "staff", "role": "member"})), &users_write).await);
    ok(relay.api("PUT", "/api/v1/groups/staff/members/mallory", None, &users_write).await);
    ok(relay.api("POST", "/api/v1/users/mallory/password", Some(pw), &users_write).await);

    let keys_write = key_with(&["apikeys:write", "gateway:use"]).await;
    let as_boss = json!({"name": "as-boss", "scopes": ["gateway:use"], "user": "boss"});
    refused(relay.api("POST", "/api/v1/api-keys", Some(as_boss.clone()), &keys_write).await);
    let as_mallory = json!({"name": "as-mallory", "scopes": ["gateway:use"], "user": "mallory"});
    refused(relay.api("POST", "/api/v1/api-keys", Some(as_mallory.clone()), &keys_write).await);
    refused(relay.api("POST", "/api/v1/api-keys", Some(json!({"name": "x", "scopes": ["*"]})), &keys_write).await);
    let agents_write = key_with(&["agents:write"]).await;
    let token = json!({"name": "boss-pc", "role": "front", "user": "boss"});
    refused(relay.api("POST", "/api/v1/enrollment-tokens", Some(token.clone()), &agents_write).await);
    // The tenant admin may.
    ok(relay.api("POST", "/api/v1/api-keys", Some(as_boss), &admin).await);
    ok(relay.api("POST", "/api/v1/enrollment-tokens", Some(token), &admin).await);
}
