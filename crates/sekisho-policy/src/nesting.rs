//! A bound on how deeply a condition nests, checked before Cedar sees the text.
//!
//! Cedar's parser is an LR automaton, but turning its parse tree into an expression, and dropping
//! either, recurses once per level of nesting (about ten frames per pair of parentheses). About 150
//! nested parentheses overflowed a 2 MiB worker stack and aborted the whole relay, every tenant with
//! it: Rust cannot catch a stack overflow. So each condition is scanned here first, without
//! recursion, and refused when it nests deeper than [`MAX_NESTING`] or is longer than
//! [`MAX_CONDITION_LEN`] (which bounds the chains Cedar builds without brackets, `a || b || …`).
//!
//! What counts as one level: an open `(`, `[` or `{`, and an `if` (its `else` may hold another `if`
//! without brackets). Brackets and words inside string literals and comments do not count.

/// The deepest nesting a condition may have. Real conditions nest a handful of levels. Cedar
/// spends about 10–14 KiB of stack per pair of parentheses (measured with
/// `examples/depthprobe.rs`), so this bound needs about 450 KiB: `tests/depth.rs` checks every
/// shape at this depth on a 1 MiB thread, half a tokio worker's stack.
pub const MAX_NESTING: usize = 32;

/// The longest condition, in bytes. Long enough for a list of a hundred address ranges; the
/// longest chain of operators it can hold (`1+1+…`, 4,096 levels in Cedar's tree) is compiled,
/// decided and dropped on a 1 MiB thread (`tests/depth.rs`).
pub const MAX_CONDITION_LEN: usize = 8 * 1024;

/// Why a condition was refused before parsing, with the 0-based byte offset it was refused at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TooDeep {
    Nesting { offset: usize },
    Length,
}

impl TooDeep {
    pub(crate) fn offset(&self) -> usize {
        match self {
            TooDeep::Nesting { offset } => *offset,
            TooDeep::Length => 0,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            TooDeep::Nesting { .. } => format!(
                "the condition nests more than {MAX_NESTING} levels (brackets and `if`); write it as several \
                 conditions"
            ),
            TooDeep::Length => {
                format!("the condition is longer than {MAX_CONDITION_LEN} bytes; split it into several conditions")
            }
        }
    }
}

/// Scans `text` once, left to right, and refuses it at the first point it nests deeper than
/// [`MAX_NESTING`].
pub(crate) fn check(text: &str) -> Result<(), TooDeep> {
    if text.len() > MAX_CONDITION_LEN {
        return Err(TooDeep::Length);
    }
    // Per open bracket, how many `if`s were opened inside it (they end with the bracket).
    let mut open: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                open.push(0);
            }
            // An unbalanced close is Cedar's to report; here it only must not underflow.
            b')' | b']' | b'}' if open.len() > 1 => {
                let ifs = open.pop().unwrap_or_default();
                depth = depth.saturating_sub(1 + ifs);
            }
            b'i' if bytes.get(i + 1) == Some(&b'f')
                && (i == 0 || !is_ident(bytes[i - 1]))
                && !bytes.get(i + 2).copied().is_some_and(is_ident) =>
            {
                depth += 1;
                if let Some(last) = open.last_mut() {
                    *last += 1;
                }
                i += 1;
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(TooDeep::Nesting { offset: i.min(text.len()) });
        }
        i += 1;
    }
    Ok(())
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!("{}true{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn the_bound_is_inclusive() {
        assert_eq!(check(&nested("(", ")", MAX_NESTING)), Ok(()));
        assert_eq!(check(&nested("(", ")", MAX_NESTING + 1)), Err(TooDeep::Nesting { offset: MAX_NESTING }));
        assert!(check(&nested("[", "]", MAX_NESTING + 1)).is_err());
        assert!(check(&nested("{a:", "}", MAX_NESTING + 1)).is_err());
    }

    #[test]
    fn sequences_do_not_add_up() {
        let many = vec![nested("(", ")", MAX_NESTING); 20].join(" && ");
        assert_eq!(check(&many), Ok(()));
        let ifs = vec!["(if true then true else false)"; 100].join(" || ");
        assert_eq!(check(&ifs), Ok(()));
    }

    #[test]
    fn chained_ifs_nest() {
        let chain = format!("{}true{}", "if true then true else ".repeat(MAX_NESTING + 1), "");
        assert!(matches!(check(&chain), Err(TooDeep::Nesting { .. })));
        let ok = format!("{}true", "if true then true else ".repeat(MAX_NESTING));
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn strings_comments_and_words_do_not_count() {
        let s = format!("context.domain == \"{}\"", "(".repeat(1000));
        assert_eq!(check(&s), Ok(()));
        let escaped = format!("context.domain == \"\\\"{}\"", "[".repeat(1000));
        assert_eq!(check(&escaped), Ok(()));
        let comment = format!("true // {}\n", "{".repeat(1000));
        assert_eq!(check(&comment), Ok(()));
        let words = "principal.iffy || principal.gif || principal.if_x".repeat(20);
        assert_eq!(check(&words), Ok(()));
    }

    #[test]
    fn a_long_condition_is_refused_whatever_it_holds() {
        assert_eq!(check(&"1 + ".repeat(MAX_CONDITION_LEN)), Err(TooDeep::Length));
    }

    #[test]
    fn depth_ten_thousand_is_refused_at_the_first_level_past_the_bound() {
        for (open, close) in [("(", ")"), ("[", "]"), ("{a: ", "}"), ("if true then ", " else false")] {
            let text = nested(open, close, 10_000);
            let text = if text.len() > MAX_CONDITION_LEN { text[..MAX_CONDITION_LEN].to_owned() } else { text };
            assert!(matches!(check(&text), Err(TooDeep::Nesting { .. })), "{open}");
        }
    }
}
