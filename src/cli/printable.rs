//! What reaches a terminal. Node names, versions, server messages, journal notes and command
//! output come from places we do not control; an escape sequence among them could retitle the
//! window, clear the screen or hide a line, and a newline could forge one. Every human-facing
//! sink (stdout documents, the run's lines, warnings and the final error) passes its text
//! through [`printable`]: control characters other than newline and tab, the C1 controls and the
//! bidirectional overrides become visible `\u{…}` escapes; [`one_line`] also folds newlines, for
//! messages that promise to be one line.

use std::borrow::Cow;

fn neutralised(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional embeddings, overrides and isolates reorder what the reader sees.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// `text` with every control character but newline and tab made visible.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(neutralised) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if neutralised(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`printable`], with newlines and tabs folded to spaces: a message that must stay one line.
pub fn one_line(text: &str) -> String {
    let folded: String = text.chars().map(|c| if matches!(c, '\n' | '\t' | '\r') { ' ' } else { c }).collect();
    printable(&folded).into_owned()
}

/// At most `max` characters, the last one an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible_and_plain_text_is_untouched() {
        assert!(matches!(printable("node pool-a-1 Ready\n"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}]0;owned\u{7}b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(printable("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(printable("r\u{202e}evil"), "r\\u{202e}evil");
        assert_eq!(printable("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(printable("tab\tand\nnewline"), "tab\tand\nnewline");
        assert_eq!(printable("ünïcödé ✓ → 1.25"), "ünïcödé ✓ → 1.25");
    }

    #[test]
    fn one_line_folds_newlines() {
        assert_eq!(one_line("bad version\nerror: forged"), "bad version error: forged");
        assert_eq!(one_line("cr\rlf"), "cr lf");
    }
}
