//! Headless Chromium against a real relay: the smoke test of the browser harness
//! (`browser_util`) and of its steps (forms, clicks, cookies) before the web console's tests use them.

use crate::browser_util::Browser;
use crate::harness::Relay;

#[tokio::test]
async fn browser_smoke() {
    let (relay, b) = tokio::join!(Relay::start(), Browser::start("ja"));
    let url = format!("https://localhost:{}/api/v1/health", relay.addr.port());
    b.goto(&url).await.screenshot("relay-health").await;
    assert_eq!(b.current_url().await, url);
    let text = b.page_text().await;
    assert!(text.contains(r#""status":"ok""#), "health page: {text}");
    assert_eq!(b.execute("return navigator.language;").await, "ja");
    assert_eq!(b.execute("return navigator.languages;").await, serde_json::json!(["ja", "en"]));
    b.close().await;
}

/// Fill, submit, click and cookies, on a page of the test's own (a `data:` URL) whose form
/// goes to the relay.
#[tokio::test]
async fn browser_steps() {
    let (relay, b) = tokio::join!(Relay::start(), Browser::start("en"));
    let origin = format!("https://localhost:{}", relay.addr.port());
    let form = format!(
        "data:text/html;charset=utf-8,<form id=f action={origin}/api/v1/health>\
         <input id=q name=q value=old><button id=go name=via value=button>Go</button></form>"
    );

    b.goto(&form).await;
    assert_eq!(b.text("#go").await, "Go");
    b.fill("#q", "関所").await.submit_form("#f").await;
    let url = b.wait_url("/api/v1/health?").await;
    assert!(url.ends_with("?q=%E9%96%A2%E6%89%80"), "typed text, no button: {url}");
    assert!(b.page_text().await.contains(r#""status":"ok""#));

    b.goto(&form).await.click("#go").await;
    let url = b.wait_url("/api/v1/health?").await;
    assert!(url.ends_with("?q=old&via=button"), "the clicked button is sent: {url}");

    assert!(b.cookies().await.is_empty());
    b.execute("document.cookie = 'probe=1; Secure; SameSite=Lax; Path=/';").await;
    let cookies = b.cookies().await;
    let probe = cookies.iter().find(|c| c.name() == "probe").expect("the cookie set by the page");
    assert_eq!((probe.value(), probe.secure()), ("1", Some(true)));
    b.close().await;
}
