//! Time zones by IANA name: the tenant's zone decides the policies' time conditions (daylight
//! saving included) and what the console, the CLI and exports show; a user may pick their own zone
//! for what they are shown; a name that is no zone is refused with a sentence.

use serde_json::{Value, json};

use crate::browser_util::Browser;
use crate::harness::Relay;
use crate::ssh_util::totp_now;
use crate::web::{PASSWORD, web_user};

fn ok((status, v): (u16, Value)) -> Value {
    assert!((200..300).contains(&status), "{status}: {v}");
    v
}

#[tokio::test]
async fn time_zones_drive_time_conditions_and_what_people_see() {
    let (relay, b) = tokio::join!(Relay::start(), Browser::start("ja"));
    let tenants = relay.ctl(&["tenant", "list"]).await.unwrap();
    assert_eq!(tenants[0]["time_zone"], "Asia/Tokyo", "Japan's zone by default: {tenants}");
    let back = relay.agent("site", "back").await;
    relay.service("wiki", &back, "tcp://127.0.0.1:9").await;
    relay.policy("wiki", &["context.hour == 9"], &[]).await;
    let decide = |at: &'static str| {
        let relay = &relay;
        let body = json!({"service": "wiki", "agent": "site", "ip": "203.0.113.5", "at": at});
        async move { ok(relay.api("POST", "/api/v1/policies/test", Some(body), &relay.admin_key).await)["decision"].clone() }
    };
    // 00:00Z is 09:00 in Tokyo, summer and winter alike.
    assert_eq!(decide("2026-01-15T00:00:00Z").await, "allow");
    assert_eq!(decide("2026-07-15T00:00:00Z").await, "allow");

    // Berlin: 08:00Z is 09:00 in winter (CET) and 10:00 in summer (CEST).
    let v = relay.ctl(&["tenant", "set", "default", "--time-zone", "europe/berlin"]).await.unwrap();
    assert_eq!(v["time_zone"], "Europe/Berlin", "spelled as the database does: {v}");
    assert_eq!(decide("2026-01-15T08:00:00Z").await, "allow");
    assert_eq!(decide("2026-07-15T08:00:00Z").await, "deny", "daylight saving moves the clock");
    assert_eq!(decide("2026-07-15T07:00:00Z").await, "allow");

    // A name that is no zone: refused, named, nothing changed.
    let (status, err) = relay
        .api("PATCH", "/api/v1/tenants/default", Some(json!({"time_zone": "Mars/Olympus"})), &relay.admin_key)
        .await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_time_zone")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("Asia/Tokyo"), "{err}");
    let both = json!({"time_zone": "Asia/Tokyo", "utc_offset_minutes": 540});
    assert_eq!(relay.api("PATCH", "/api/v1/tenants/default", Some(both), &relay.admin_key).await.0, 400);
    assert_eq!(decide("2026-01-15T08:00:00Z").await, "allow", "still Berlin");
    let cli = relay.ctl(&["audit", "search", "--tz", "Mars/Olympus"]).await.unwrap_err();
    assert!(cli.contains("Asia/Tokyo"), "{cli}");
    relay.ctl(&["tenant", "set", "default", "--time-zone", "Asia/Tokyo"]).await.unwrap();

    // Exports say each time with the tenant's offset beside the raw milliseconds.
    let csv = relay.http().get(format!("{}/api/v1/audit?format=csv&limit=5", relay.api_url));
    let csv = csv.bearer_auth(&relay.admin_key).send().await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("tenant,seq,at,time,kind"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("+09:00,"), "{csv}");
    // Exported to a file: written whole (renamed when complete), and no progress drawing in a
    // pipe (stderr is no terminal here).
    let file = relay.dir.path().join("audit.csv");
    let out = relay
        .ctl_text(&["audit", "search", "--format", "csv", "--limit", "5", "--output", file.to_str().unwrap()])
        .await;
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("tenant,seq,at,time,kind") && written.lines().count() == 6, "{written}");
    assert!(!relay.dir.path().join("audit.part").exists());
    // The CLI's tables too: in the tenant's zone when not told otherwise.
    let out = relay.ctl_text(&["agent", "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().nth(1).unwrap_or_default().trim_end().ends_with("+09:00"), "LAST SEEN in JST: {table}");

    // A time without an offset on the command line is on the tenant's clock (JST), not UTC: an
    // hour ago in Tokyo finds this test's events, an hour ahead finds none.
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let civil = |delta_h: i64| {
        let at = jiff::Timestamp::now().as_millisecond() + delta_h * 3_600_000;
        jiff::Timestamp::from_millisecond(at).unwrap().to_zoned(tokyo.clone()).strftime("%Y-%m-%d %H:%M").to_string()
    };
    let found = relay.ctl(&["audit", "search", "--from", &civil(-1), "--format", "json"]).await.unwrap();
    assert!(found.as_array().is_some_and(|a| !a.is_empty()), "an hour ago in JST: {found}");
    let none = relay.ctl(&["audit", "search", "--from", &civil(1), "--format", "json"]).await.unwrap();
    assert_eq!(none, json!([]), "an hour ahead in JST");

    // The console: JST for the tenant; a user who picks Berlin sees CET, and only they do.
    let secret = web_user(&relay, "hanako", "admins", "admin", "Hanako").await;
    let origin = format!("https://localhost:{}", relay.addr.port());
    b.goto(&format!("{origin}/login")).await;
    b.fill("#user", "hanako").await.fill("#password", PASSWORD).await;
    b.fill("#totp", &totp_now(&secret, 0)).await.click("#login").await;
    b.wait_text("ダッシュボード").await;
    b.goto(&format!("{origin}/audit")).await;
    let audit = b.text("#audit").await;
    assert!(audit.contains(" JST"), "audit times in JST: {audit}");
    assert!(!audit.contains("UTC"), "{audit}");
    b.goto(&format!("{origin}/agents")).await;
    let agents = b.wait_text("site").await;
    assert!(agents.contains("分前") || agents.contains("たった今"), "last seen as people say it: {agents}");
    b.goto(&format!("{origin}/settings")).await;
    assert!(b.text("#time-zone").await.starts_with("Asia/Tokyo"));
    b.execute("document.querySelector('#tz').value = 'Europe/Berlin';").await;
    b.click("#save-tz").await;
    b.wait_text("完了").await;
    let zone = b.text("#time-zone").await;
    assert!(zone.starts_with("Europe/Berlin") && zone.contains(" CE"), "{zone}");
    b.goto(&format!("{origin}/audit")).await;
    let audit = b.text("#audit").await;
    assert!(audit.contains(" CET") || audit.contains(" CEST"), "{audit}");
    let session = ok(relay.api("GET", "/api/v1/session", None, &relay.admin_key).await);
    assert_eq!(session["time_zone"], "Asia/Tokyo", "the user's choice is theirs alone: {session}");
    b.close().await;
}
