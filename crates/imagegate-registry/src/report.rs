//! Pieces of the typed reports the workflows return.

/// A before/after text of what a run changes (or would), a line per tag,
/// `(absent)` for a tag that does not exist: Ansible's `--diff` shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextDiff {
    pub before: String,
    pub after: String,
}

impl TextDiff {
    /// One line on each side: `name` and where it points (`None`: absent).
    pub fn push(&mut self, name: &str, before: Option<&str>, after: Option<&str>) {
        for (side, value) in [(&mut self.before, before), (&mut self.after, after)] {
            side.push_str(name);
            side.push(' ');
            side.push_str(value.unwrap_or("(absent)"));
            side.push('\n');
        }
    }

    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

/// How long a run took and the mean blob rate over it, for a result's
/// totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    /// Rounded to hundredths.
    pub seconds: f64,
    pub bytes_per_second: u64,
}

impl Rate {
    /// `bytes` moved since `started`.
    pub fn since(bytes: u64, started: std::time::Instant) -> Self {
        let secs = started.elapsed().as_secs_f64();
        Self {
            seconds: (secs * 100.0).round() / 100.0,
            bytes_per_second: (bytes as f64 / secs.max(0.001)) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TextDiff;

    #[test]
    fn a_line_per_side_and_absent_said() {
        let mut d = TextDiff::default();
        assert!(d.is_empty());
        d.push("r/a:1", None, Some("sha256:b"));
        d.push("r/a:2", Some("sha256:c"), None);
        assert_eq!(d.before, "r/a:1 (absent)\nr/a:2 sha256:c\n");
        assert_eq!(d.after, "r/a:1 sha256:b\nr/a:2 (absent)\n");
    }
}
