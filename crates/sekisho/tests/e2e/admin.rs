//! The admin API through `sekisho ctl`: listings, JSON output, and clear errors.

use crate::harness::Relay;

#[tokio::test]
async fn ctl_lists_agents_services_and_routes() {
    let relay = Relay::start().await;
    let back = relay.agent("site-a", "back").await;
    let mut front = relay.agent("laptop", "front").await;
    let agents = relay.ctl(&["agent", "list"]).await.unwrap();
    let a = agents.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert!(
        a.iter().all(|x| x["online"] == true && x["version"] == env!("CARGO_PKG_VERSION") && x["address"].is_string())
    );
    relay.service("wiki", &back, "http://127.0.0.1:9").await;
    let (route, _) = relay.route(&mut front, "wiki").await;
    let services = relay.ctl(&["service", "list"]).await.unwrap();
    assert_eq!(services[0]["name"], "wiki");
    assert_eq!(services[0]["agent_name"], "site-a");
    let routes = relay.ctl(&["route", "list"]).await.unwrap();
    assert_eq!(routes[0]["id"], route.as_str());
    assert_eq!(routes[0]["service_name"], "wiki");
    // Removing a service with routes is refused, then allowed once the route is gone.
    let err = relay.ctl(&["service", "rm", "wiki"]).await.unwrap_err();
    assert!(err.contains("in_use"), "{err}");
    relay.ctl(&["route", "rm", &route]).await.unwrap();
    relay.ctl(&["service", "rm", "wiki"]).await.unwrap();
    assert_eq!(relay.ctl(&["service", "list"]).await.unwrap().as_array().unwrap().len(), 0);

    // Human output has headers.
    let out = relay.ctl_command(&relay.admin_key).args(["agent", "list"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("--json", "");
    assert!(text.contains("site-a"));

    // A reader that goes away (`ctl … | head`) ends ctl quietly, not with a panic.
    let mut cmd = relay.ctl_command(&relay.admin_key);
    let mut child = cmd
        .args(["agent", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[tokio::test]
async fn ctl_reports_bad_requests_clearly() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let cases: &[(&[&str], &str)] = &[
        (&["service", "create", "x", "--agent", &back.id, "--target", "ftp://h:1"], "invalid_target"),
        (&["service", "create", "bad name!", "--agent", &back.id, "--target", "tcp://h:1"], "invalid_name"),
        (&["service", "create", "x", "--agent", "nobody", "--target", "tcp://h:1"], "not_found"),
        (&["route", "create", "--agent", &back.id, "--listen", "127.0.0.1:0", "--service", "x"], "wrong_role"),
        (&["route", "create", "--agent", &back.id, "--listen", "nonsense", "--service", "x"], "invalid_listen"),
        (&["token", "create", "--name", "t", "--role", "king"], "invalid_role"),
        (&["route", "rm", "rt_missing"], "not_found"),
    ];
    for (args, code) in cases {
        let err = relay.ctl(args).await.unwrap_err();
        assert!(err.contains(code), "{args:?}: {err}");
    }
    relay.service("dup", &back, "tcp://127.0.0.1:9").await;
    let err = relay.ctl(&["service", "create", "dup", "--agent", &back.id, "--target", "tcp://h:1"]).await.unwrap_err();
    assert!(err.contains("conflict"), "{err}");

    let out = relay.ctl_command("sk_wrong").args(["agent", "list"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("API key is not valid"));
    // Japanese messages.
    let out = relay
        .ctl_command(&relay.admin_key)
        .env("SEKISHO_LANG", "ja")
        .env_remove("SEKISHO_CA")
        .args(["agent", "list"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("リレーの CA がありません"));
}

#[tokio::test]
async fn the_health_endpoint_answers_without_a_key_and_the_api_with_one() {
    let relay = Relay::start().await;
    let pem = std::fs::read(&relay.ca_file).unwrap();
    let client =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let health: serde_json::Value = client
        .get(format!("https://localhost:{}/api/v1/health", relay.addr.port()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    // Without the operator's key: up or down, nothing across tenants.
    assert!(health.get("agents_online").is_none() && health.get("streams_open").is_none(), "{health}");
    let detailed = relay.health().await;
    assert!(detailed["agents_online"].is_number() && detailed["audit"] == "ok", "{detailed}");
    let (_, tenant) =
        relay.api("POST", "/api/v1/tenants", Some(serde_json::json!({"name": "healthco"})), &relay.admin_key).await;
    let tenant_key = tenant["admin_key"].as_str().unwrap();
    let (_, as_tenant) = relay.api("GET", "/api/v1/health", None, tenant_key).await;
    assert!(as_tenant.get("agents_online").is_none(), "a tenant admin sees no cross-tenant numbers: {as_tenant}");
    let r = client.get(format!("https://localhost:{}/api/v1/agents", relay.addr.port())).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let r = client
        .post(format!("https://localhost:{}/api/v1/services", relay.addr.port()))
        .bearer_auth(&relay.admin_key)
        .header("content-type", "application/json")
        .body("{\"name\": 5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_json");
}

/// When `ctl` cannot reach the relay it says why, as curl would: a CA that did not sign the
/// relay's certificate, a plain `http://` URL, a port that does not speak TLS, nobody listening.
#[tokio::test]
async fn ctl_says_why_it_cannot_reach_the_relay() {
    let relay = Relay::start().await;
    let dir = relay.dir.path();
    let other_ca = dir.join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not the relay", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let plain = crate::targets::http().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let https = relay.api_url.clone();
    let cases = [
        (https.clone(), other_ca.display().to_string(), "not signed by the CA in --ca"),
        (https.replacen("https://", "http://", 1), relay.ca_file.clone(), "the relay speaks HTTPS only; use https://"),
        (format!("https://{plain}"), relay.ca_file.clone(), "TLS expected, but the other end does not speak TLS"),
        (format!("https://{closed}"), relay.ca_file.clone(), "connection refused"),
    ];
    for (url, ca, expected) in cases {
        let out = relay
            .ctl_command(&relay.admin_key)
            .env("SEKISHO_URL", &url)
            .env("SEKISHO_CA", &ca)
            .args(["agent", "list"])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expected), "{url} with {ca}: {err}");
    }
}
