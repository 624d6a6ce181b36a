//! Progress lines. The engine writes them through one sink so that the
//! module layer can mask secrets and route them to stderr.

use std::borrow::Cow;
use std::sync::OnceLock;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the sink for progress lines; the first call wins. Without one,
/// lines go to stderr.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

/// Writes one progress line. Lines carry text a registry sent (tag names,
/// platforms, media types, error messages), so every control character is
/// shown as an escape ([`escape_controls`]): a newline cannot start a forged
/// line and a terminal escape cannot reach a terminal or a job's log.
pub fn info(line: &str) {
    // Control characters only: a line often carries text a message already
    // escaped (`error::untrusted_text`), whose backslashes must not double.
    let line = escape(line, false);
    match SINK.get() {
        Some(sink) => sink(&line),
        None => eprintln!("{line}"),
    }
}

/// `text` with every control character (C0, DEL, C1) shown as an escape:
/// `\n`, `\r`, `\t`, `\\` for a backslash that could start a look-alike,
/// `\x1b` for other ASCII controls and `\u{9b}` for the others. Borrowed when
/// there is nothing to escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// [`escape_controls`], with backslashes doubled or left as they are.
fn escape(text: &str, backslashes: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || (backslashes && c == '\\')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' if backslashes => out.push_str("\\\\"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;
    use std::borrow::Cow;

    #[test]
    fn controls_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(escape_controls("linux/amd64 v1.2"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("linux/arm64\n[registry_mirror] done\x1b[2J"),
            "linux/arm64\\n[registry_mirror] done\\x1b[2J"
        );
        assert_eq!(escape_controls("a\rb\tc\u{9b}d\u{7f}"), "a\\rb\\tc\\u{9b}d\\x7f");
        assert_eq!(escape_controls("C:\\x1b"), "C:\\\\x1b", "a backslash cannot fake an escape");
        assert_eq!(escape_controls("ünïcode ✓"), "ünïcode ✓");
        // A log line escapes controls only: text a message already escaped
        // is not escaped twice.
        let escaped = escape_controls("a\nb\\c");
        assert_eq!(super::escape(&escaped, false), escaped);
    }
}
