//! Text from a store or a user, made safe to print for a person.
//!
//! Ids, names, titles and comments come from whoever wrote the store. Printed raw, a carriage
//! return or an escape sequence can draw a fake line in `doc history`, and a right-to-left
//! override can make `bob approve` read as something else. Human output passes such text
//! through [`safe`], which writes every control character and every bidirectional
//! formatting character as a visible escape (`\r`, `\u{202e}`); JSON output stays exact
//! (serde escapes control characters, and a reader of JSON sees the code points).

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with control characters and bidirectional formatting characters escaped, and a
/// backslash doubled only when something else was escaped (so ordinary text is unchanged).
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Control characters (C0, DEL, C1) and the Unicode bidirectional formatting characters
/// (embeddings, overrides, isolates and marks), which change how the rest of a line reads.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "alice",
            "Quentin Blake",
            "Großbritannien",
            "日本語",
            "a\\b",
            "",
        ] {
            assert_eq!(safe(s), s);
        }
    }

    #[test]
    fn controls_and_overrides_are_visible() {
        assert_eq!(safe("ok\r#9 fake line"), "ok\\r#9 fake line");
        assert_eq!(safe("bob\n#3 mallory approve"), "bob\\n#3 mallory approve");
        assert_eq!(safe("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(safe("bob \u{202e}evorppa"), "bob \\u{202e}evorppa");
        assert_eq!(safe("a\\b\u{7}"), "a\\\\b\\u{7}");
        assert_eq!(safe("\u{2067}x\u{2069}"), "\\u{2067}x\\u{2069}");
        assert_eq!(safe("\u{85}"), "\\u{85}");
    }
}
