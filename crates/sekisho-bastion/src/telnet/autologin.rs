//! Typing a Telnet target's stored login at its prompts, and reading its answer: a pure state
//! machine over the target's output (no I/O), driven by [`super::run`].

use std::time::Duration;

use tokio::time::Instant;

/// How long the bastion waits for each login prompt before it gives up typing the login.
pub(super) const PROMPT_WAIT: Duration = Duration::from_secs(15);
/// After the password: how long, and over how much output, a refusal is looked for.
const CHECK_WAIT: Duration = Duration::from_secs(20);
const CHECK_BYTES: usize = 4096;
/// The prompt text kept to find a prompt split across reads.
const MAX_SEEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the login and password prompts; the user's input is held.
    Prompts,
    /// The password was typed: a refusal or a new prompt means the login failed.
    Checking {
        output: bool,
        bytes: usize,
    },
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Wait,
    /// Type this at the target.
    Type(String),
    /// The target refused the stored login.
    Refused,
}

/// Lines that mean the target refused a login (lower case), as login(1), BusyBox and common
/// network devices print them.
const REFUSALS: &[&str] = &[
    "login incorrect",
    "incorrect login",
    "incorrect password",
    "password incorrect",
    "login invalid",
    "invalid login",
    "invalid password",
    "authentication failed",
    "access denied",
    "bad password",
];

/// How a target asks for the login name (lower case, at the end of the last line).
const LOGIN_PROMPTS: &[&str] = &["login:", "username:", "user name:"];

/// Types the stored login at the target's prompts, once each, and watches the answer.
pub(super) struct AutoLogin {
    login: Option<String>,
    password: Option<String>,
    /// The password once typed, to keep a target's echo of it from the user and the recording.
    typed: Option<String>,
    seen: String,
    phase: Phase,
    until: Instant,
}

impl AutoLogin {
    pub(super) fn new(login: Option<String>, password: Option<String>, now: Instant) -> Self {
        let phase = if login.is_none() && password.is_none() { Phase::Done } else { Phase::Prompts };
        AutoLogin { login, password, typed: None, seen: String::new(), phase, until: now + PROMPT_WAIT }
    }

    /// Whether the user's input waits (the login is being typed).
    pub(super) fn holding(&self) -> bool {
        self.phase == Phase::Prompts
    }

    /// When [`AutoLogin::expire`] is due, while there is something to wait for.
    pub(super) fn deadline(&self) -> Option<Instant> {
        (self.phase != Phase::Done).then_some(self.until)
    }

    /// Past the deadline: stops waiting. True when no prompt came, so nothing was typed.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        if now < self.until {
            return false;
        }
        let gave_up = self.holding();
        self.phase = Phase::Done;
        gave_up
    }

    /// The user typed at the terminal: once the target has answered the password, what she
    /// types is hers and no longer watched.
    pub(super) fn user_typed(&mut self) {
        if let Phase::Checking { output: true, .. } = self.phase {
            self.phase = Phase::Done;
        }
    }

    /// Output of the target with an echo of the typed password masked (a target should not
    /// echo it; one that does must not show it to the user or the recording).
    pub(super) fn mask(&self, data: Vec<u8>) -> Vec<u8> {
        let (Phase::Checking { .. }, Some(pw)) = (self.phase, &self.typed) else { return data };
        let pw = pw.as_bytes();
        if pw.len() < 4 || data.len() < pw.len() {
            return data;
        }
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i..].starts_with(pw) {
                out.extend(std::iter::repeat_n(b'*', pw.len()));
                i += pw.len();
            } else {
                out.push(data[i]);
                i += 1;
            }
        }
        out
    }

    /// Reads the target's terminal output: what to type, if anything.
    pub(super) fn output(&mut self, data: &[u8], now: Instant) -> Step {
        match self.phase {
            Phase::Done => Step::Wait,
            Phase::Prompts => {
                self.see(data);
                let line = last_line(&self.seen);
                let (login_prompt, password_prompt) = (is_prompt(line, LOGIN_PROMPTS), is_prompt(line, &["password:"]));
                let text = if self.login.is_some() && login_prompt {
                    self.login.take()
                } else if self.password.is_some() && password_prompt {
                    // A target that asks for a password first has no login name to ask for.
                    self.login = None;
                    self.typed = self.password.take();
                    self.typed.clone()
                } else {
                    None
                };
                let Some(text) = text else { return Step::Wait };
                self.seen.clear();
                if self.login.is_none() && self.password.is_none() {
                    self.phase =
                        if self.typed.is_some() { Phase::Checking { output: false, bytes: 0 } } else { Phase::Done };
                    self.until = now + CHECK_WAIT;
                } else {
                    self.until = now + PROMPT_WAIT;
                }
                Step::Type(format!("{text}\r\n"))
            }
            Phase::Checking { bytes, .. } => {
                self.see(data);
                let line = last_line(&self.seen);
                if REFUSALS.iter().any(|r| self.seen.contains(r))
                    || is_prompt(line, LOGIN_PROMPTS)
                    || is_prompt(line, &["password:"])
                {
                    self.phase = Phase::Done;
                    return Step::Refused;
                }
                let bytes = bytes + data.len();
                self.phase = if bytes > CHECK_BYTES { Phase::Done } else { Phase::Checking { output: true, bytes } };
                Step::Wait
            }
        }
    }

    fn see(&mut self, data: &[u8]) {
        self.seen.push_str(&String::from_utf8_lossy(data).to_lowercase());
        if self.seen.len() > MAX_SEEN {
            let cut = self.seen.len() - MAX_SEEN;
            let cut = (cut..self.seen.len()).find(|i| self.seen.is_char_boundary(*i)).unwrap_or(0);
            self.seen.drain(..cut);
        }
    }
}

/// The text after the last line break, trimmed (empty right after a line break).
fn last_line(seen: &str) -> &str {
    seen.rsplit(['\r', '\n']).next().unwrap_or_default().trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// Whether a line is a prompt ending in one of `words` (and not, say, "Last login: …").
fn is_prompt(line: &str, words: &[&str]) -> bool {
    !line.starts_with("last ") && words.iter().any(|w| line.ends_with(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(login: &str, pw: &str) -> AutoLogin {
        AutoLogin::new(Some(login.into()), Some(pw.into()), Instant::now())
    }

    #[test]
    fn the_login_is_typed_once_at_each_prompt() {
        let now = Instant::now();
        let mut a = auto("root", "pw");
        assert!(a.holding());
        assert_eq!(a.output(b"Debian GNU/Linux\r\nhost lo", now), Step::Wait);
        assert_eq!(a.output(b"gin: ", now), Step::Type("root\r\n".into()));
        assert!(a.holding());
        assert_eq!(a.output(b"root\r\n", now), Step::Wait);
        assert_eq!(a.output(b"Pass", now), Step::Wait);
        assert_eq!(a.output(b"word: ", now), Step::Type("pw\r\n".into()));
        assert!(!a.holding());
        assert_eq!(a.output(b"\r\nLast login: Mon", now), Step::Wait);
        assert_eq!(a.output(b" from 10.0.0.1\r\n$ ", now), Step::Wait);
        a.user_typed();
        assert_eq!(a.deadline(), None);
        assert_eq!(a.output(b"login: ", now), Step::Wait);
    }

    #[test]
    fn a_refused_login_is_seen() {
        let now = Instant::now();
        for answer in [&b"\r\nLogin incorrect\r\n"[..], b"\r\n% Authentication failed\r\n", b"\r\nhost login: "] {
            let mut a = auto("root", "pw");
            assert_eq!(a.output(b"login: ", now), Step::Type("root\r\n".into()));
            assert_eq!(a.output(b"Password:", now), Step::Type("pw\r\n".into()));
            assert_eq!(a.output(answer, now), Step::Refused, "{}", String::from_utf8_lossy(answer));
        }
        // Only a password asked for: no login name is typed.
        let mut a = auto("admin", "secret");
        assert_eq!(a.output(b"\r\nUser Access Verification\r\n\r\nPassword: ", now), Step::Type("secret\r\n".into()));
        assert_eq!(a.output(b"\r\n% Bad passwords\r\n", now), Step::Refused);
    }

    #[test]
    fn without_a_prompt_the_bastion_stops_waiting() {
        let now = Instant::now();
        let mut a = AutoLogin::new(Some("root".into()), Some("pw".into()), now);
        assert!(!a.expire(now));
        assert!(a.holding());
        assert!(a.expire(now + PROMPT_WAIT));
        assert!(!a.holding());
        assert_eq!(a.output(b"Password: ", now), Step::Wait, "nothing is typed after giving up");
        let none = AutoLogin::new(None, None, now);
        assert!(!none.holding() && none.deadline().is_none());
    }

    #[test]
    fn an_echoed_password_is_masked() {
        let now = Instant::now();
        let mut a = auto("root", "hunter22");
        let _ = a.output(b"login: ", now);
        let _ = a.output(b"Password: ", now);
        assert_eq!(a.mask(b"hunter22\r\n$ ".to_vec()), b"********\r\n$ ");
        a.output(b"$ ", now);
        a.user_typed();
        assert_eq!(a.mask(b"hunter22".to_vec()), b"hunter22", "the user's own text later is hers");
    }
}
