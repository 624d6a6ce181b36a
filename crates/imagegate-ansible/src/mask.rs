//! Masking of secret option values in everything a module prints, as Ansible
//! does for Python options marked `no_log`.

use serde_json::Value;

/// What a masked secret is replaced with (Ansible's own marker).
pub const MASK: &str = "********";

#[derive(Debug, Default, Clone)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    /// Collects the string values of every key named in `secret_keys`, at
    /// any depth of the arguments.
    pub fn from_args(args: &Value, secret_keys: &[&str]) -> Self {
        let mut m = Self::default();
        m.collect(args, secret_keys);
        // Longest first, so a secret containing another is masked whole.
        m.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        m.secrets.dedup();
        m
    }

    fn collect(&mut self, v: &Value, keys: &[&str]) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if keys.contains(&k.as_str()) {
                        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                            self.secrets.push(s.to_string());
                        }
                    }
                    self.collect(v, keys);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.collect(i, keys)),
            _ => {}
        }
    }

    /// Adds a secret learned at run time (a token fetched, say).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Adds every secret of `other`.
    pub fn merge(&mut self, other: &Masker) {
        for s in &other.secrets {
            self.add(s);
        }
    }

    pub fn mask_str(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string (keys included) in a JSON value.
    pub fn mask_value(&self, v: Value) -> Value {
        if self.secrets.is_empty() {
            return v;
        }
        match v {
            Value::String(s) => Value::String(self.mask_str(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|i| self.mask_value(i)).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (self.mask_str(&k), self.mask_value(v))).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_nested_secrets_everywhere() {
        let args = json!({
            "password": "s3cret",
            "registries": {"quay.io": {"username": "u", "password": "p@ss-long"}},
            "images": [{"api_token": "tok"}],
            "other": "s3cret-not-a-key"
        });
        let m = Masker::from_args(&args, &["password", "api_token"]);
        let out = m.mask_value(json!({
            "msg": "login with s3cret failed; p@ss-long; tok",
            "list": ["tok"],
            "tok": 1
        }));
        let text = out.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("p@ss-long") && !text.contains("tok"),
            "{text}"
        );
        assert!(text.contains(MASK));
    }

    #[test]
    fn no_secrets_no_change() {
        let m = Masker::from_args(&json!({"password": ""}), &["password"]);
        assert_eq!(m.mask_str("password is empty"), "password is empty");
    }
}
