//! Terminal recordings in asciicast v2 (<https://docs.asciinema.org/manual/asciicast/v2/>): one
//! JSON header line, then one `[time, code, data]` line per event.
//!
//! [`CastWriter`] produces the lines as the session goes; the caller appends them to storage
//! (usually through [`super::sealed`]). Terminal bytes are not always valid UTF-8 and a
//! character may be split across two reads, so each direction keeps an incomplete trailing
//! sequence for its next call and replaces invalid bytes with U+FFFD. [`parse`] reads a
//! recording back for playback or search.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The asciicast header, without its `version` (always 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Terminal columns at the start.
    pub width: u16,
    /// Terminal rows at the start.
    pub height: u16,
    /// Session start, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Captured environment, usually `TERM`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    /// Seconds since the session started.
    pub t: f64,
    /// `o` output, `i` input, `r` resize, `m` marker (others are kept as read).
    pub kind: String,
    /// The text: terminal data, `COLSxROWS`, or a marker label.
    pub data: String,
}

/// A parsed recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    /// The first line.
    pub header: Header,
    /// Every later non-blank line, in file order.
    pub events: Vec<CastEvent>,
}

/// Why a recording could not be parsed; line numbers start at 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CastError {
    #[error("empty recording: no header line")]
    Empty,
    #[error("line {line}: invalid header: {reason}")]
    Header { line: usize, reason: String },
    #[error("line {line}: unsupported asciicast version `{found}`, expected 2")]
    Version { line: usize, found: String },
    #[error("line {line}: invalid event: {reason}")]
    Event { line: usize, reason: String },
}

/// Writes one session's recording, line by line.
#[derive(Debug, Clone)]
pub struct CastWriter {
    header: Header,
    output: Utf8Carry,
    input: Utf8Carry,
}

impl CastWriter {
    /// A recording of a `width`×`height` terminal started at `timestamp_unix_secs`.
    pub fn new(width: u16, height: u16, timestamp_unix_secs: i64, title: &str, term: &str) -> Self {
        let env = BTreeMap::from([("TERM".to_owned(), term.to_owned())]);
        let header = Header { width, height, timestamp: Some(timestamp_unix_secs), title: Some(title.to_owned()), env };
        CastWriter { header, output: Utf8Carry::default(), input: Utf8Carry::default() }
    }

    /// The header line, ending in `\n`; it goes first in the file.
    pub fn header_line(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Versioned<'a> {
            version: u8,
            #[serde(flatten)]
            header: &'a Header,
        }
        // Serialising a struct of numbers and strings cannot fail.
        let mut line = serde_json::to_vec(&Versioned { version: 2, header: &self.header }).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Server-to-client terminal bytes at `t` seconds; empty until a whole character arrived.
    pub fn output(&mut self, t: f64, data: &[u8]) -> Vec<u8> {
        let text = self.output.decode(data);
        event_line(t, "o", &text)
    }

    /// Client-to-server terminal bytes (keystrokes) at `t` seconds; empty until a whole
    /// character arrived.
    pub fn input(&mut self, t: f64, data: &[u8]) -> Vec<u8> {
        let text = self.input.decode(data);
        event_line(t, "i", &text)
    }

    /// The terminal was resized to `cols`×`rows`.
    pub fn resize(&mut self, t: f64, cols: u16, rows: u16) -> Vec<u8> {
        event_line(t, "r", &format!("{cols}x{rows}"))
    }

    /// A marker (a chapter in players), e.g. where a command or file transfer happened.
    pub fn marker(&mut self, t: f64, label: &str) -> Vec<u8> {
        event_line(t, "m", label)
    }

    /// Ends the recording: bytes still waiting to complete a character are written as U+FFFD.
    pub fn finish(&mut self, t: f64) -> Vec<u8> {
        let mut lines = event_line(t, "o", &self.output.flush());
        lines.extend(event_line(t, "i", &self.input.flush()));
        lines
    }
}

/// `[t, "kind", "data"]\n`, or nothing when `data` is empty.
fn event_line(t: f64, kind: &str, data: &str) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    // Serialising a string cannot fail.
    let data = serde_json::to_string(data).unwrap_or_default();
    format!("[{}, \"{kind}\", {data}]\n", format_time(t)).into_bytes()
}

/// Seconds with at most six decimals and no trailing zeros; negative or non-finite times are 0.
fn format_time(t: f64) -> String {
    let t = if t.is_finite() && t > 0.0 { t } else { 0.0 };
    let text = format!("{t:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Decodes a byte stream as UTF-8 across calls, holding back an incomplete final character.
#[derive(Debug, Clone, Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    fn decode(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(data);
        let mut text = String::with_capacity(bytes.len());
        let mut rest = bytes.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` bytes are valid UTF-8 by definition.
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            self.pending = after.to_vec();
                            return text;
                        }
                    }
                }
            }
        }
    }

    fn flush(&mut self) -> String {
        if std::mem::take(&mut self.pending).is_empty() { String::new() } else { char::REPLACEMENT_CHARACTER.into() }
    }
}

/// Parses a whole asciicast v2 recording; blank lines are skipped.
pub fn parse(text: &str) -> Result<Cast, CastError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (line, first) = lines.next().ok_or(CastError::Empty)?;
    let header = parse_header(line, first)?;
    let events = lines.map(|(line, text)| parse_event(line, text)).collect::<Result<_, _>>()?;
    Ok(Cast { header, events })
}

fn parse_header(line: usize, text: &str) -> Result<Header, CastError> {
    let invalid = |e: serde_json::Error| CastError::Header { line, reason: e.to_string() };
    let value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    match value.get("version") {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) => return Err(CastError::Version { line, found: v.to_string() }),
        None => return Err(CastError::Header { line, reason: "missing field `version`".into() }),
    }
    serde_json::from_value(value).map_err(invalid)
}

fn parse_event(line: usize, text: &str) -> Result<CastEvent, CastError> {
    let invalid = |reason: String| CastError::Event { line, reason };
    let (t, kind, data): (f64, String, String) =
        serde_json::from_str(text).map_err(|e| invalid(format!("expected `[time, code, data]`: {e}")))?;
    if !(t >= 0.0 && t.is_finite()) {
        return Err(invalid(format!("time `{t}` is negative")));
    }
    if kind.is_empty() {
        return Err(invalid("empty event code".into()));
    }
    Ok(CastEvent { t, kind, data })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text(lines: &[u8]) -> &str {
        std::str::from_utf8(lines).unwrap()
    }

    #[test]
    fn header_has_the_v2_fields() {
        let w = CastWriter::new(80, 24, 1_700_000_000, "alice@db1", "xterm-256color");
        let line = w.header_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["width"], 80);
        assert_eq!(v["height"], 24);
        assert_eq!(v["timestamp"], 1_700_000_000);
        assert_eq!(v["title"], "alice@db1");
        assert_eq!(v["env"]["TERM"], "xterm-256color");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn events_are_json_lines() {
        let mut w = CastWriter::new(80, 24, 0, "t", "vt100");
        assert_eq!(text(&w.output(1.5, b"hi\x1b[0m\r\n")), "[1.5, \"o\", \"hi\\u001b[0m\\r\\n\"]\n");
        assert_eq!(text(&w.input(2.0, b"l")), "[2, \"i\", \"l\"]\n");
        assert_eq!(text(&w.resize(0.1234567, 120, 40)), "[0.123457, \"r\", \"120x40\"]\n");
        assert_eq!(text(&w.marker(3.25, "sftp put \"a\"")), "[3.25, \"m\", \"sftp put \\\"a\\\"\"]\n");
        assert!(w.output(4.0, b"").is_empty());
        assert_eq!(text(&w.output(-1.0, b"x")), "[0, \"o\", \"x\"]\n");
        assert_eq!(text(&w.output(f64::NAN, b"x")), "[0, \"o\", \"x\"]\n");
    }

    #[test]
    fn split_characters_are_carried_per_direction() {
        let mut w = CastWriter::new(80, 24, 0, "t", "vt100");
        let euro = "€".as_bytes(); // three bytes
        assert!(w.output(1.0, &euro[..1]).is_empty());
        assert_eq!(text(&w.input(1.1, b"a")), "[1.1, \"i\", \"a\"]\n");
        assert!(w.output(1.2, &euro[1..2]).is_empty());
        assert_eq!(text(&w.output(1.3, &[euro[2], b'!'])), "[1.3, \"o\", \"€!\"]\n");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut w = CastWriter::new(80, 24, 0, "t", "vt100");
        assert_eq!(text(&w.output(1.0, b"a\xffb\xc3")), "[1, \"o\", \"a\u{fffd}b\"]\n");
        // The held-back lead byte is followed by a non-continuation byte.
        assert_eq!(text(&w.output(2.0, b"c")), "[2, \"o\", \"\u{fffd}c\"]\n");
        assert!(w.input(3.0, b"\xe2\x82").is_empty());
        assert_eq!(text(&w.finish(4.0)), "[4, \"i\", \"\u{fffd}\"]\n");
        assert!(w.finish(5.0).is_empty());
    }

    #[test]
    fn writer_output_parses_back() {
        let mut w = CastWriter::new(100, 30, 42, "session", "xterm");
        let mut file = w.header_line();
        file.extend(w.output(0.5, b"$ "));
        file.extend(w.input(1.0, b"ls\r"));
        file.extend(w.resize(1.5, 120, 40));
        file.extend(w.marker(2.0, "file written"));
        let cast = parse(text(&file)).unwrap();
        assert_eq!(cast.header.width, 100);
        assert_eq!(cast.header.timestamp, Some(42));
        assert_eq!(cast.header.env["TERM"], "xterm");
        let kinds: Vec<_> = cast.events.iter().map(|e| (e.t, e.kind.as_str(), e.data.as_str())).collect();
        assert_eq!(kinds, [(0.5, "o", "$ "), (1.0, "i", "ls\r"), (1.5, "r", "120x40"), (2.0, "m", "file written")]);
    }

    #[test]
    fn parse_reports_the_line() {
        let header = r#"{"version": 2, "width": 80, "height": 24}"#;
        assert_eq!(parse(""), Err(CastError::Empty));
        assert_eq!(parse("\n \n"), Err(CastError::Empty));
        assert!(matches!(parse("{"), Err(CastError::Header { line: 1, .. })));
        assert!(matches!(parse(r#"{"width": 80, "height": 24}"#), Err(CastError::Header { line: 1, .. })));
        assert!(matches!(parse(r#"{"version": 1, "width": 80}"#), Err(CastError::Version { line: 1, .. })));
        assert!(matches!(parse(r#"{"version": 2, "width": -1, "height": 2}"#), Err(CastError::Header { .. })));
        let bad = [
            "[1.0, \"o\"]",
            "[1.0, \"o\", \"x\", 4]",
            "{\"t\": 1}",
            "[\"1\", \"o\", \"x\"]",
            "[-1, \"o\", \"x\"]",
            "[1, \"\", \"x\"]",
            "[1, \"o\", 5]",
        ];
        for event in bad {
            let file = format!("{header}\n[0.5, \"o\", \"ok\"]\n\n{event}\n");
            let err = parse(&file).unwrap_err();
            assert!(matches!(err, CastError::Event { line: 4, .. }), "{event}: {err:?}");
            assert!(err.to_string().starts_with("line 4: invalid event"), "{err}");
        }
        let ok = parse(&format!("{header}\r\n[1, \"o\", \"a\"]\r\n")).unwrap();
        assert_eq!(ok.events.len(), 1);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn splitting_input_does_not_change_the_text(bytes in proptest::collection::vec(any::<u8>(), 0..64), at in 0usize..64) {
            let at = at.min(bytes.len());
            let events = |chunks: &[&[u8]]| {
                let mut w = CastWriter::new(80, 24, 0, "t", "vt100");
                let mut file = w.header_line();
                for chunk in chunks {
                    file.extend(w.output(1.0, chunk));
                }
                file.extend(w.finish(2.0));
                parse(std::str::from_utf8(&file).unwrap()).unwrap().events.into_iter().map(|e| e.data).collect::<String>()
            };
            let whole = events(&[&bytes]);
            prop_assert_eq!(&whole, &String::from_utf8_lossy(&bytes));
            prop_assert_eq!(events(&[&bytes[..at], &bytes[at..]]), whole);
        }
    }
}
