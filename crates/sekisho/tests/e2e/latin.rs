//! English left where a Japanese reader should read Japanese: the Latin words of a text that
//! are not on the allow-list. Allowed are product and protocol names, upper-case acronyms and
//! placeholders (TOTP, `<AGENT>`), things a person types or copies (options, ids, addresses,
//! paths, hosts, quoted or bracketed names and codes) and the test's own data.

/// Names that stay as they are in Japanese text.
const NAMES: &[&str] = &[
    "Sekisho",
    "sekisho",
    "Cedar",
    "Telnet",
    "OpenID",
    "Connect",
    "OpenSSH",
    "Prometheus",
    "PostgreSQL",
    "SQLite",
    "GeoIP",
    "MaxMind",
    "asciinema",
    "asciicast",
    "age",
    "otpauth",
    "localhost",
    "English",
    "ctl",
    "Web",
    "ID",
    // Protocol names as people write them, and the byte.
    "http",
    "https",
    "tcp",
    "ssh",
    "telnet",
    "socks",
    "sftp",
    "scp",
    "B",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
];

/// The words of `text` a Japanese reader should not meet, with `data` (the test's own names)
/// also allowed.
pub fn english_words(text: &str, data: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    // What is quoted in backticks is typed as it is: commands, values, code.
    let text: String = text.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    for chunk in text.split(|c: char| c.is_whitespace() || !c.is_ascii() || ",;()\"'!?".contains(c)) {
        let word = chunk.trim_matches(|c: char| ".:".contains(c));
        if !word.chars().any(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        // Typed or copied: options, placeholders, quoted or bracketed text, addresses, paths,
        // hosts, file extensions, ids with digits, key=value, Cedar's `Group::"x"`.
        let copied = word.starts_with('-')
            || chunk.starts_with('.')
            || word.contains(|c: char| "`<>[]{}/@=#&|*+%$~\\".contains(c) || c.is_ascii_digit())
            || word.contains(['.', ':'])
            || word.contains("::");
        let acronym =
            word.len() >= 2 && word.chars().filter(|c| c.is_ascii_alphabetic()).all(|c| c.is_ascii_uppercase());
        if copied || acronym || NAMES.contains(&word) || data.contains(&word) {
            continue;
        }
        if !found.iter().any(|f| f == word) {
            found.push(word.to_owned());
        }
    }
    found
}

#[test]
fn finds_english_and_lets_names_pass() {
    let text = "ダッシュボード Sekisho の TOTP: `policy_denied` wiki.default.localhost --force <AGENT> \
                policy_denied: Done. 監査ログ 5 minutes ago hanako";
    assert_eq!(english_words(text, &["hanako"]), ["policy_denied", "Done", "minutes", "ago"]);
}
