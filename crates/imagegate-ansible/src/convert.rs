//! Converting option values the way Ansible's argument spec does for Python
//! modules. Ansible sends templated values as strings in many places
//! (ansible-core before 2.19 passes `"{{ n | int }}"` inside a dict or list
//! as `"86400"`), so a binary module that wants a number or a boolean must
//! accept the forms Ansible itself accepts:
//! - int and float: a numeric string (`"86400"`, `" 2.5 "`);
//! - bool: Ansible's boolean words (`yes`/`no`, `on`/`off`, `true`/`false`,
//!   `y`/`n`, `t`/`f`, `1`/`0`, any case) and the numbers 1 and 0;
//! - list: a comma-separated string (`"a,b"`), as Ansible splits it (an
//!   empty string is an empty list);
//! - str: a number or boolean, written as text.
//!
//! Anything else still fails, naming the option. The conversion is driven by
//! the typed options themselves: the value is deserialised, and when serde
//! reports a type mismatch at a path that one of the rules above can mend,
//! the value there is converted and deserialisation tried again.

use serde_json::Value;

/// At most this many values are converted in one args file (each costs one
/// more deserialisation; real option sets convert a handful).
pub const MAX_CONVERSIONS: usize = 256;

/// What serde expected at the failing path, read from its message
/// (`invalid type: string "86400", expected u64`).
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Integer,
    Float,
    Bool,
    List,
    Text,
}

fn wanted(message: &str) -> Option<Wanted> {
    let expected = message.split(", expected ").nth(1)?;
    let word = expected.split_whitespace().next().unwrap_or("");
    match word {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some(Wanted::Integer),
        "f32" | "f64" => Some(Wanted::Float),
        "a" if expected.starts_with("a boolean") => Some(Wanted::Bool),
        "a" if expected.starts_with("a sequence") => Some(Wanted::List),
        "a" if expected.starts_with("a string") => Some(Wanted::Text),
        _ => None,
    }
}

/// The value Ansible would have made of `v` for the wanted type, if any.
fn convert(v: &Value, want: &Wanted) -> Option<Value> {
    match (want, v) {
        (Wanted::Integer, Value::String(s)) => {
            let t = s.trim();
            t.parse::<u64>()
                .map(Value::from)
                .or_else(|_| t.parse::<i64>().map(Value::from))
                .ok()
                .or_else(|| {
                    // Ansible accepts a float string with no fraction ("3.0").
                    let f = t.parse::<f64>().ok()?;
                    (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
                })
        }
        (Wanted::Integer, Value::Number(n)) => {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
        }
        (Wanted::Float, Value::String(s)) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from),
        (Wanted::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Some(Value::Bool(true)),
            "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => Some(Value::Bool(false)),
            _ => None,
        },
        (Wanted::Bool, Value::Number(n)) => {
            let x = n.as_f64()?;
            (x == 1.0 || x == 0.0).then_some(Value::Bool(x == 1.0))
        }
        // An empty string is an empty list (Ansible would make `[""]`, which
        // no option of ours accepts).
        (Wanted::List, Value::String(s)) if s.trim().is_empty() => Some(Value::Array(Vec::new())),
        (Wanted::List, Value::String(s)) => Some(Value::Array(s.split(',').map(|p| Value::String(p.trim().to_string())).collect())),
        (Wanted::List, Value::Number(_) | Value::Bool(_)) => Some(Value::Array(vec![v.clone()])),
        (Wanted::Text, Value::Number(n)) => Some(Value::String(n.to_string())),
        (Wanted::Text, Value::Bool(b)) => Some(Value::String(if *b { "True" } else { "False" }.into())),
        _ => None,
    }
}

/// The value at `path` inside `root`.
fn at<'a>(root: &'a mut Value, path: &serde_path_to_error::Path) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    let mut cur = root;
    for seg in path.iter() {
        cur = match seg {
            Segment::Seq { index } => cur.as_array_mut()?.get_mut(*index)?,
            Segment::Map { key } => cur.as_object_mut()?.get_mut(key)?,
            Segment::Enum { .. } => cur,
            Segment::Unknown => return None,
        };
    }
    Some(cur)
}

/// Mends the value that `error` complains about, if Ansible would have
/// converted it; `true` when something was changed.
pub(crate) fn mend(root: &mut Value, error: &serde_path_to_error::Error<serde_json::Error>) -> bool {
    let Some(want) = wanted(&error.inner().to_string()) else {
        return false;
    };
    let Some(slot) = at(root, error.path()) else {
        return false;
    };
    match convert(slot, &want) {
        Some(new) if new != *slot => {
            *slot = new;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_as_ansible_does() {
        assert_eq!(convert(&json!("86400"), &Wanted::Integer), Some(json!(86400)));
        assert_eq!(convert(&json!(" -3 "), &Wanted::Integer), Some(json!(-3)));
        assert_eq!(convert(&json!("3.0"), &Wanted::Integer), Some(json!(3)));
        assert_eq!(convert(&json!("3.5"), &Wanted::Integer), None);
        assert_eq!(convert(&json!("many"), &Wanted::Integer), None);
        assert_eq!(convert(&json!("0.5"), &Wanted::Float), Some(json!(0.5)));
        assert_eq!(convert(&json!("nan"), &Wanted::Float), None);
        for yes in ["yes", "True", "on", "1", "Y", "t"] {
            assert_eq!(convert(&json!(yes), &Wanted::Bool), Some(json!(true)), "{yes}");
        }
        for no in ["no", "False", "off", "0", "n", "F"] {
            assert_eq!(convert(&json!(no), &Wanted::Bool), Some(json!(false)), "{no}");
        }
        assert_eq!(convert(&json!("maybe"), &Wanted::Bool), None);
        assert_eq!(convert(&json!(1), &Wanted::Bool), Some(json!(true)));
        assert_eq!(convert(&json!(2), &Wanted::Bool), None);
        assert_eq!(convert(&json!("a, b"), &Wanted::List), Some(json!(["a", "b"])));
        assert_eq!(convert(&json!(5), &Wanted::Text), Some(json!("5")));
        assert_eq!(convert(&json!({"a": 1}), &Wanted::Text), None);
    }

    #[test]
    fn reads_what_serde_expected() {
        assert_eq!(wanted("invalid type: string \"86400\", expected u64"), Some(Wanted::Integer));
        assert_eq!(wanted("invalid type: string \"yes\", expected a boolean"), Some(Wanted::Bool));
        assert_eq!(wanted("invalid type: string \"a\", expected a sequence"), Some(Wanted::List));
        assert_eq!(wanted("invalid type: integer `5`, expected a string"), Some(Wanted::Text));
        assert_eq!(wanted("unknown variant `x`, expected `a` or `b`"), None);
    }
}
