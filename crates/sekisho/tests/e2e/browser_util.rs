//! Headless Chromium for the end-to-end tests, driven as a person would use it: Debian's
//! `chromedriver` on port 0 (ready when it prints the port it took), one Chromium session in a
//! fresh profile with a chosen language, and small steps (go, fill, click, read) that panic with
//! the page's URL and text when something is missing.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{WAIT, test_dir};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long `wait_css` (and every step that looks for an element) waits for it.
pub const ELEMENT_WAIT: Duration = Duration::from_secs(10);

/// Chromium's flags; the machine's closed network needs the ones that stop background fetches.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--ignore-certificate-errors",
    "--window-size=1280,900",
];

/// The words a person reads on the page, for the Japanese check (`latin.rs`): every text node
/// but those in code, preformatted output, form values and what the page marks as not to be
/// translated (`translate="no"`: ids, names, zone names), and the tooltips, labels and
/// placeholders written in prose.
const READ_TEXT: &str = r#"
const skip = 'code, pre, kbd, samp, textarea, script, style, [translate="no"]';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const parts = [document.title];
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (!n.parentElement.closest(skip)) parts.push(n.nodeValue);
}
for (const e of document.querySelectorAll('[title], [placeholder], [aria-label], [alt]')) {
  if (e.closest(skip)) continue;
  for (const a of ['title', 'placeholder', 'aria-label', 'alt']) {
    const v = e.getAttribute(a);
    if (v && /[^\x00-\x7f]/.test(v)) parts.push(v);
  }
}
return parts.join('\n');
"#;

/// The script that reads a page's visible text.
const BODY_TEXT: &str = "return document.body ? document.body.innerText : '';";

/// One chromedriver with one Chromium session. Dropping it (a failed test) kills both.
pub struct Browser {
    /// The WebDriver client, for what the steps below do not cover.
    pub client: Client,
    group: Group,
    driver: Child,
    /// The profile (`--user-data-dir`) and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose language (UI, `navigator.language`,
    /// Accept-Language) is `lang`, e.g. `ja` gives `Accept-Language: ja,en;q=0.9`.
    pub async fn start(lang: &str) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: scripts/test.sh installs Debian's chromium and chromium-driver"
        );
        let dir = test_dir();
        let log = dir.path().join("chromedriver.log");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let group = Group(driver.id().map(|id| Pid::from_raw(i32::try_from(id).unwrap())));

        // chromedriver prints "ChromeDriver was started successfully on port N." once it listens.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("ChromeDriver was started successfully on port ") {
                    return rest.trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!("chromedriver did not start; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        // Keep reading its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let accept = if lang == "en" { "en".to_owned() } else { format!("{lang},en") };
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", dir.path().join("profile").display()));
        args.push(format!("--lang={lang}"));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": { "intl.accept_languages": accept },
            },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session: {e}; chromedriver's log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Browser { client, driver, group, dir }
    }

    /// Opens `url` and waits for it to load (WebDriver's navigation).
    pub async fn goto(&self, url: &str) -> &Self {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("cannot open {url}: {e}")).await;
        }
        self
    }

    pub async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => panic!("no current URL: {e}"),
        }
    }

    /// Waits (up to `ELEMENT_WAIT`) until the current URL contains `part`, e.g. after a
    /// submitted form or a redirect; returns the URL.
    pub async fn wait_url(&self, part: &str) -> String {
        let deadline = tokio::time::Instant::now() + ELEMENT_WAIT;
        loop {
            let url = self.current_url().await;
            if url.contains(part) {
                return url;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("the URL did not come to contain `{part}` in {ELEMENT_WAIT:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to `ELEMENT_WAIT`) for an element matching the CSS `selector`.
    pub async fn wait_css(&self, selector: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(selector))
            .await;
        match found {
            Ok(el) => el,
            Err(e) => self.fail(&format!("no element `{selector}` after {ELEMENT_WAIT:?} ({e})")).await,
        }
    }

    /// The visible text of the element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        let el = self.wait_css(selector).await;
        match el.text().await {
            Ok(t) => t,
            Err(e) => self.fail(&format!("cannot read the text of `{selector}`: {e}")).await,
        }
    }

    /// Waits (up to `ELEMENT_WAIT`) until the page's visible text contains `part`; returns it.
    pub async fn wait_text(&self, part: &str) -> String {
        let deadline = tokio::time::Instant::now() + ELEMENT_WAIT;
        loop {
            let text = self.page_text().await;
            if text.contains(part) {
                return text;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("the page did not come to show `{part}` in {ELEMENT_WAIT:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        self.execute(BODY_TEXT).await.as_str().unwrap_or("").to_owned()
    }

    /// The English words the page shows outside the allow-list and `data` (`latin.rs`).
    pub async fn english_words(&self, data: &[&str]) -> Vec<String> {
        let text = self.execute(READ_TEXT).await.as_str().unwrap_or("").to_owned();
        crate::latin::english_words(&text, data)
    }

    /// Replaces the value of the input matching `selector` by typing `value`.
    pub async fn fill(&self, selector: &str, value: &str) -> &Self {
        let el = self.wait_css(selector).await;
        if let Err(e) = el.clear().await {
            self.fail(&format!("cannot clear `{selector}`: {e}")).await;
        }
        if let Err(e) = el.send_keys(value).await {
            self.fail(&format!("cannot type into `{selector}`: {e}")).await;
        }
        self
    }

    /// Clicks the element matching `selector` (waiting for a navigation it starts).
    pub async fn click(&self, selector: &str) -> &Self {
        let el = self.wait_css(selector).await;
        if let Err(e) = el.click().await {
            self.fail(&format!("cannot click `{selector}`: {e}")).await;
        }
        self
    }

    /// Submits the form matching `selector` as pressing Enter in it would (`requestSubmit`:
    /// validation and submit handlers run).
    pub async fn submit_form(&self, selector: &str) -> &Self {
        let form = self.wait_css(selector).await;
        let args = vec![serde_json::to_value(&form).unwrap()];
        if let Err(e) = self.client.execute("arguments[0].requestSubmit();", args).await {
            self.fail(&format!("cannot submit `{selector}`: {e}")).await;
        }
        self
    }

    /// The cookies of the current page's origin, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        match self.client.get_all_cookies().await {
            Ok(c) => c,
            Err(e) => self.fail(&format!("cannot read cookies: {e}")).await,
        }
    }

    /// Runs `js` as a function body in the page (use `return` for a value).
    pub async fn execute(&self, js: &str) -> Value {
        match self.client.execute(js, Vec::new()).await {
            Ok(v) => v,
            Err(e) => panic!("script failed: {e}\n{js}"),
        }
    }

    /// Saves `<dir>/<name>.png` when `SEKISHO_SCREENSHOTS` names a directory; otherwise nothing.
    pub async fn screenshot(&self, name: &str) -> &Self {
        let Some(dir) = std::env::var_os("SEKISHO_SCREENSHOTS") else { return self };
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => self.fail(&format!("no screenshot {name}: {e}")).await,
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        self
    }

    /// Ends the session (Chromium exits) and then chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.close().await;
        self.group.kill();
        let _ = self.driver.wait().await;
    }

    /// Panics with `what`, the page's URL and the start of its text.
    async fn fail(&self, what: &str) -> ! {
        let url = self.client.current_url().await.map_or_else(|e| format!("<{e}>"), |u| u.to_string());
        let text = match self.client.execute(BODY_TEXT, Vec::new()).await {
            Ok(v) => v.as_str().unwrap_or("").chars().take(800).collect(),
            Err(e) => format!("<{e}>"),
        };
        panic!(
            "{what}\n  at {url}\n  page text: {text:?}\n  chromedriver log (SEKISHO_TEST_KEEP keeps it): {}",
            self.dir.path().display()
        )
    }
}

/// chromedriver's process group, which Chromium's processes join: killed whole when dropped, so a
/// failing test (even one failing during `Browser::start`) leaves no browser behind.
struct Group(Option<Pid>);

impl Group {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}
