//! Strings that must never be printed, and every form of them the engine
//! derives or learns.
//!
//! A [`Secret`] never formats its value. Beyond that, the engine keeps a list
//! of every secret value it has seen or derived in this process (passwords,
//! `base64(user:password)`, bearer tokens, API tokens, Docker Hub session
//! tokens) so that text a registry sends back (an error body echoing the
//! request's `Authorization`, say) is masked before it is kept, and so that
//! the module layer can mask its output with the same list ([`set_observer`]).

use std::fmt;
use std::sync::{Mutex, OnceLock};

/// What a masked secret is replaced with (Ansible's own marker).
pub const MASK: &str = "********";

/// A password or token. `Debug` and `Display` print `<redacted>`; the value is
/// reachable only through [`Secret::expose`], which callers use solely to put
/// it on the wire. Making one registers its value for masking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        learn(&value);
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Every secret value seen in this process, longest first.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());
static OBSERVER: OnceLock<fn(&str)> = OnceLock::new();

/// Registers `f` to hear of every secret the engine learns from now on (the
/// module layer adds them to its output masker). The first call wins.
pub fn set_observer(f: fn(&str)) {
    let _ = OBSERVER.set(f);
}

/// Records a secret value (or a derived form of one) for masking.
pub fn learn(value: &str) {
    if value.is_empty() {
        return;
    }
    {
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if known.iter().any(|k| k == value) {
            return;
        }
        known.push(value.to_string());
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
    if let Some(observe) = OBSERVER.get() {
        observe(value);
    }
}

/// `text` with every known secret replaced by [`MASK`].
pub fn mask(text: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn learned_values_are_masked() {
        let _ = Secret::new("pw-learned-1");
        learn("derived-form-XYZ");
        assert_eq!(mask("a pw-learned-1 b derived-form-XYZ c"), format!("a {MASK} b {MASK} c"));
    }
}
