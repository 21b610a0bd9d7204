//! Command lines reconstructed from the keystrokes of a PTY session, good enough to search.
//!
//! [`CommandExtractor`] replays the client-to-server bytes through a small model of a shell's
//! line editor (readline's emacs bindings): text inserts at the cursor; Backspace, Delete,
//! Ctrl-U/K/W/Y, Alt-D and Alt-Backspace edit; Ctrl-A/E/B/F, Alt-B/F, arrows, Home and End move;
//! Ctrl-C abandons the line; Enter completes it. Bracketed paste inserts its content. Other
//! escape sequences (history, function keys, terminal replies) are skipped whole.
//!
//! What the shell does on its own is invisible in keystrokes: Tab completion, history recall
//! (Up, Ctrl-R), vi mode and programs reading their own input (passwords at `sudo`, an editor's
//! text) are not modelled. The result is a search aid next to the recording, not proof.

use std::mem;

/// The longest line kept, in characters; further insertions are dropped.
const MAX_LINE: usize = 16 * 1024;
/// The most parameter bytes of an escape sequence kept for matching.
const MAX_PARAMS: usize = 16;
/// The most bytes of an OSC/DCS-style string held before it is taken as typed text.
const MAX_STRING: usize = 4096;
const PASTE_END: &[u8] = b"\x1b[201~";

/// Turns keystrokes into completed command lines.
#[derive(Debug, Default)]
pub struct CommandExtractor {
    line: Vec<char>,
    cursor: usize,
    killed: Vec<char>,
    state: State,
    utf8: [u8; 4],
    utf8_len: usize,
    after_cr: bool,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Ground,
    Esc,
    Csi(Vec<u8>),
    Ss3,
    /// An OSC, DCS, SOS, PM or APC string so far; `bool` is "just saw ESC".
    Str(Vec<u8>, bool),
    /// Inside a bracketed paste, having matched this much of [`PASTE_END`].
    Paste(usize),
}

impl CommandExtractor {
    /// An extractor at an empty prompt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds keystrokes; returns the command lines they completed, trimmed, empty ones left out.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &b in bytes {
            self.byte(b, &mut done);
        }
        done
    }

    fn byte(&mut self, b: u8, done: &mut Vec<String>) {
        if mem::take(&mut self.after_cr) && b == b'\n' {
            return;
        }
        match mem::take(&mut self.state) {
            State::Ground => self.ground(b, done),
            State::Esc => self.escape(b, done),
            State::Csi(mut params) => match b {
                0x20..=0x3f => {
                    if params.len() < MAX_PARAMS {
                        params.push(b);
                    }
                    self.state = State::Csi(params);
                }
                0x40..=0x7e => self.csi(&params, b),
                _ => self.ground(b, done),
            },
            State::Ss3 => match b {
                b'D' => _ = self.left(),
                b'C' => self.right(),
                b'H' => self.cursor = 0,
                b'F' => self.cursor = self.line.len(),
                0x00..=0x1f => self.ground(b, done),
                _ => {}
            },
            State::Str(mut text, esc) => match b {
                // Properly terminated: a terminal's reply (a colour, a version), not typing.
                0x07 => {}
                b'\\' if esc => {}
                _ if esc => {
                    self.replay(&text, done);
                    self.escape(b, done);
                }
                0x1b => self.state = State::Str(text, true),
                // Anything else ends it as typed text, so Alt-] cannot hide what follows.
                0x00..=0x1f => {
                    self.replay(&text, done);
                    self.ground(b, done);
                }
                _ => {
                    text.push(b);
                    if text.len() < MAX_STRING {
                        self.state = State::Str(text, false);
                    } else {
                        self.replay(&text, done);
                    }
                }
            },
            State::Paste(matched) => self.paste(matched, b, done),
        }
    }

    fn ground(&mut self, b: u8, done: &mut Vec<String>) {
        if self.utf8_byte(b) {
            return;
        }
        match b {
            0x20..=0x7e => self.insert(char::from(b)),
            0x7f | 0x08 => self.backspace(),
            0x01 => self.cursor = 0,
            0x05 => self.cursor = self.line.len(),
            0x02 => _ = self.left(),
            0x06 => self.right(),
            0x04 => self.delete(),
            0x0b => self.kill(self.cursor, self.line.len()),
            0x15 => self.kill(0, self.cursor),
            0x17 => self.kill(self.word_start(char::is_whitespace), self.cursor),
            0x19 => self.yank(),
            0x03 => self.clear(),
            b'\r' => {
                self.complete(done);
                self.after_cr = true;
            }
            b'\n' => self.complete(done),
            0x1b => self.state = State::Esc,
            _ => {}
        }
    }

    fn escape(&mut self, b: u8, done: &mut Vec<String>) {
        match b {
            b'[' => self.state = State::Csi(Vec::new()),
            b'O' => self.state = State::Ss3,
            b']' | b'P' | b'X' | b'^' | b'_' => self.state = State::Str(Vec::new(), false),
            b'b' => self.cursor = self.word_start(not_word),
            b'f' => self.cursor = self.word_end(),
            b'd' => self.kill(self.cursor, self.word_end()),
            0x7f | 0x08 => self.kill(self.word_start(not_word), self.cursor),
            0x1b => self.state = State::Esc,
            0x00..=0x1f => self.ground(b, done),
            _ => {}
        }
    }

    /// Types the text of an unterminated string sequence after all.
    fn replay(&mut self, text: &[u8], done: &mut Vec<String>) {
        for &b in text {
            self.ground(b, done);
        }
    }

    fn csi(&mut self, params: &[u8], last: u8) {
        match (params, last) {
            (b"" | b"1", b'D') => _ = self.left(),
            (b"" | b"1", b'C') => self.right(),
            (b"1;5" | b"1;3", b'D') => self.cursor = self.word_start(not_word),
            (b"1;5" | b"1;3", b'C') => self.cursor = self.word_end(),
            (b"" | b"1", b'H') | (b"1" | b"7", b'~') => self.cursor = 0,
            (b"" | b"1", b'F') | (b"4" | b"8", b'~') => self.cursor = self.line.len(),
            (b"3", b'~') => self.delete(),
            (b"200", b'~') => self.state = State::Paste(0),
            _ => {}
        }
    }

    fn paste(&mut self, matched: usize, b: u8, done: &mut Vec<String>) {
        if b == PASTE_END[matched] {
            if matched + 1 < PASTE_END.len() {
                self.state = State::Paste(matched + 1);
            }
            return;
        }
        // A false start of the terminator was pasted text after all.
        for &earlier in &PASTE_END[..matched] {
            self.paste_text(earlier, done);
        }
        self.state = State::Paste(usize::from(b == PASTE_END[0]));
        if b != PASTE_END[0] {
            self.paste_text(b, done);
        }
    }

    fn paste_text(&mut self, b: u8, done: &mut Vec<String>) {
        if self.utf8_byte(b) {
            return;
        }
        match b {
            b'\r' => {
                self.complete(done);
                self.after_cr = true;
            }
            b'\n' => self.complete(done),
            b'\t' | 0x20..=0x7e => self.insert(char::from(b)),
            _ => {}
        }
    }

    /// Handles `b` if it belongs to a multi-byte character; false for ASCII, which the caller
    /// handles (after an unfinished character was replaced by U+FFFD).
    fn utf8_byte(&mut self, b: u8) -> bool {
        if self.utf8_len > 0 {
            if b & 0xc0 == 0x80 {
                self.utf8[self.utf8_len] = b;
                self.utf8_len += 1;
                let bytes = self.utf8;
                match std::str::from_utf8(&bytes[..self.utf8_len]) {
                    Ok(s) => {
                        s.chars().for_each(|c| self.insert(c));
                        self.utf8_len = 0;
                    }
                    Err(e) if e.error_len().is_some() || self.utf8_len == 4 => {
                        self.insert(char::REPLACEMENT_CHARACTER);
                        self.utf8_len = 0;
                    }
                    Err(_) => {}
                }
                return true;
            }
            self.insert(char::REPLACEMENT_CHARACTER);
            self.utf8_len = 0;
        }
        match b {
            0x00..=0x7f => false,
            0xc2..=0xf4 => {
                self.utf8[0] = b;
                self.utf8_len = 1;
                true
            }
            _ => {
                self.insert(char::REPLACEMENT_CHARACTER);
                true
            }
        }
    }

    fn insert(&mut self, c: char) {
        if self.line.len() < MAX_LINE {
            self.line.insert(self.cursor, c);
            self.cursor += 1;
        }
    }

    fn left(&mut self) -> bool {
        let moved = self.cursor > 0;
        self.cursor = self.cursor.saturating_sub(1);
        moved
    }

    fn backspace(&mut self) {
        if self.left() {
            self.line.remove(self.cursor);
        }
    }

    fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.line.len());
    }

    fn delete(&mut self) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
        }
    }

    /// Removes `from..to` into the kill buffer and leaves the cursor at `from`.
    fn kill(&mut self, from: usize, to: usize) {
        if from < to {
            self.killed = self.line.drain(from..to).collect();
            self.cursor = from;
        }
    }

    fn yank(&mut self) {
        for c in self.killed.clone() {
            self.insert(c);
        }
    }

    /// Where the word before the cursor starts, words being runs of characters not `boundary`.
    fn word_start(&self, boundary: fn(char) -> bool) -> usize {
        let before = &self.line[..self.cursor];
        let end = before.iter().rposition(|&c| !boundary(c)).map_or(0, |i| i + 1);
        before[..end].iter().rposition(|&c| boundary(c)).map_or(0, |i| i + 1)
    }

    /// Where the word at or after the cursor ends (readline's `forward-word`).
    fn word_end(&self) -> usize {
        let after = &self.line[self.cursor..];
        let start = after.iter().position(|&c| !not_word(c)).unwrap_or(after.len());
        let len = after[start..].iter().position(|&c| not_word(c)).unwrap_or(after.len() - start);
        self.cursor + start + len
    }

    fn clear(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.utf8_len = 0;
    }

    fn complete(&mut self, done: &mut Vec<String>) {
        let text: String = self.line.iter().collect();
        let text = text.trim();
        if !text.is_empty() {
            done.push(text.to_owned());
        }
        self.clear();
    }
}

/// Readline's word boundary for Alt-B/F/D: anything but letters and digits.
fn not_word(c: char) -> bool {
    !c.is_alphanumeric()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn typed(chunks: &[&[u8]]) -> Vec<String> {
        let mut x = CommandExtractor::new();
        chunks.iter().flat_map(|c| x.feed(c)).collect()
    }

    #[test]
    fn typo_fixed_with_backspace() {
        assert_eq!(typed(&[b"sudo systemclt\x7f\x7f\x7fctl restart nginx\r"]), ["sudo systemctl restart nginx"]);
        assert_eq!(typed(&[b"ls -l\x08\x08-a\r\n", b"  pwd  \n"]), ["ls -a", "pwd"]);
    }

    #[test]
    fn enter_variants_count_once() {
        assert_eq!(typed(&[b"a\r\nb\rc\n\n\r\r\nd\r", b"\ne\r"]), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn arrows_move_the_cursor() {
        // "sudo systemctl restart ngnx": go left twice, insert the missing `i`.
        assert_eq!(typed(&[b"sudo systemctl restart ngnx\x1b[D\x1b[Di\r"]), ["sudo systemctl restart nginx"]);
        // Forgot sudo: Home, type it, End, finish.
        assert_eq!(typed(&[b"systemctl restart\x1b[Hsudo \x1b[F nginx\r"]), ["sudo systemctl restart nginx"]);
        assert_eq!(typed(&[b"restart nginx\x1bOHsystemctl \x1bOF\x1bOD\x1bOCx\r"]), ["systemctl restart nginxx"]);
        assert_eq!(typed(&[b"bc\x1b[1~a\x1b[4~d\x1b[7~0\x1b[8~!\r"]), ["0abcd!"]);
        assert_eq!(typed(&[b"abc\x1b[D\x1b[D\x1b[3~\x1b[C\x1b[C\x1b[C\r"]), ["ac"]);
        assert_eq!(typed(&[b"ab\x01x\x05y\x02\x02\x06z\r"]), ["xabzy"]);
    }

    #[test]
    fn kill_and_yank() {
        assert_eq!(typed(&[b"rm -rf /\x15ls\r"]), ["ls"]);
        assert_eq!(typed(&[b"cat /etc/passwd\x17/etc/hosts\r"]), ["cat /etc/hosts"]);
        assert_eq!(typed(&[b"echo one two  \x17\x17three\r"]), ["echo three"]);
        assert_eq!(typed(&[b"git push --force\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x0b\r"]), ["git push"]);
        assert_eq!(typed(&[b"world\x01\x0bhello \x19\r"]), ["hello world"]);
        assert_eq!(typed(&[b"cd /var/log\x1b\x7ftmp\r"]), ["cd /var/tmp"]);
        assert_eq!(typed(&[b"cd /var/log\x1bb\x1bbx\x1bf\x1bd\r"]), ["cd /xvar"]);
        assert_eq!(typed(&[b"a bc\x1b[1;5Dx\x1b[1;5Cy\r"]), ["a xbcy"]);
    }

    #[test]
    fn ctrl_c_abandons_the_line() {
        assert_eq!(typed(&[b"rm -rf /\x03ls\r\x03\r"]), ["ls"]);
    }

    #[test]
    fn history_and_other_sequences_are_skipped() {
        // Up, Down, F5, a cursor position report, focus-in, an OSC colour reply, Alt-x.
        let keys = b"\x1b[A\x1b[B\x1b[15~\x1b[12;40R\x1b[I\x1b]11;rgb:0000/0000/0000\x1b\\\x1bxls\r";
        assert_eq!(typed(&[keys]), ["ls"]);
        assert_eq!(typed(&[b"\x1b]0;title\x07id\r"]), ["id"]);
        // Alt-] (or Alt-P, …) followed by a command must not swallow the command.
        assert_eq!(typed(&[b"\x1b]cat /etc/shadow\r"]), ["cat /etc/shadow"]);
        assert_eq!(typed(&[b"\x1bPid\x1b[Dx\r"]), ["ixd"]);
        assert_eq!(typed(&[&[b"\x1b]".as_slice(), &[b'a'; MAX_STRING + 1]].concat(), b"\r"])[0].len(), MAX_STRING + 1);
        // Tab is the shell's business.
        assert_eq!(typed(&[b"sys\ttemctl\r"]), ["systemctl"]);
    }

    #[test]
    fn bracketed_paste_inserts_and_completes_lines() {
        let keys = b"echo \x1b[200~one\ttwo\r\nsecond\x1b[20x\x1b[201~ end\r";
        assert_eq!(typed(&[keys]), ["echo one\ttwo", "second[20x end"]);
        // Control characters inside a paste are not editing keys.
        assert_eq!(typed(&[b"\x1b[200~ab\x7f\x03c\x1b[201~\r"]), ["abc"]);
        assert_eq!(typed(&[b"\x1b[200~\x1b\x1b[201~x\r"]), ["x"]);
    }

    #[test]
    fn utf8_and_invalid_bytes() {
        assert_eq!(typed(&[b"echo caf\xc3", b"\xa9 \xe2\x82\xac\r"]), ["echo café €"]);
        assert_eq!(typed(&[b"a\xffb\xc3c\xe2\x82\r"]), ["a\u{fffd}b\u{fffd}c\u{fffd}"]);
        assert_eq!(typed(&[b"\xf0\x9f\xa6\x80\x7f\xc3\xa9\r"]), ["é"]);
    }

    #[test]
    fn sequences_split_across_feeds() {
        let keys: &[u8] =
            b"sudo systemctl restart ngnx\x1b[D\x1b[Di\x1bOF\x1b[15~\x1b[200~ \x1b[201~\xc3\xa9\x7f\x7f\x1bOH\r\n";
        for at in 0..=keys.len() {
            assert_eq!(typed(&[&keys[..at], &keys[at..]]), ["sudo systemctl restart nginx"], "split at {at}");
        }
        let bytes: Vec<&[u8]> = keys.chunks(1).collect();
        assert_eq!(typed(&bytes), ["sudo systemctl restart nginx"]);
    }

    #[test]
    fn long_lines_are_capped() {
        let mut keys = vec![b'a'; MAX_LINE + 10];
        keys.push(b'\r');
        assert_eq!(typed(&[&keys])[0].len(), MAX_LINE);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut x = CommandExtractor::new();
            for line in x.feed(&bytes) {
                prop_assert!(!line.is_empty());
            }
        }

        #[test]
        fn splitting_never_changes_the_result(
            bytes in proptest::collection::vec(prop_oneof![Just(0x1bu8), Just(b'['), Just(b'~'), Just(b'\r'), any::<u8>()], 0..256),
            at in 0usize..256,
        ) {
            let at = at.min(bytes.len());
            prop_assert_eq!(typed(&[&bytes[..at], &bytes[at..]]), typed(&[&bytes]));
        }
    }
}
