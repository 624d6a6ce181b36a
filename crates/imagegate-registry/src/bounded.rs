//! JSON from an untrusted peer, parsed with a bound on what is kept.
//!
//! A byte cap on an answer does not bound the memory its parse takes: a
//! 16 MiB list of empty objects (`[{},{},...]`) is five million values, each
//! a `serde_json::Value` and a map, hundreds of MiB. [`from_slice`] builds
//! the same `Value` but counts every value and object key it makes against
//! a budget, and stops with [`TooLarge`] as soon as the budget is spent,
//! so what it keeps is bounded by the budget, not by the answer.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Values (and object keys) a builds page may hold: about ten times what a full page of 500 Zuul builds
/// with their artifacts takes, and at most some tens of MiB once parsed.
pub const DEFAULT_BUDGET: usize = 1_000_000;

/// Values a referrers index (read to the 4 MiB manifest cap) or a web API
/// answer may hold: ten thousand referrers of ten values each, or a page of
/// 100 Docker Hub tags with ten platforms each several times over; a few
/// MiB once parsed.
pub const INDEX_BUDGET: usize = 100_000;

/// Why an answer was not parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum BoundedError {
    /// It holds more values than the budget.
    TooLarge { budget: usize },
    /// It is not JSON.
    Malformed(String),
}

impl fmt::Display for BoundedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundedError::TooLarge { budget } => write!(f, "it holds more than {budget} JSON values"),
            BoundedError::Malformed(e) => write!(f, "{}", crate::error::untrusted_text(e, 200)),
        }
    }
}

/// Parses `bytes` as one JSON value of at most `budget` values and keys.
pub fn from_slice(bytes: &[u8], budget: usize) -> Result<Value, BoundedError> {
    let left = Cell::new(budget);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Seed { left: &left }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if left.get() == 0 => Err(BoundedError::TooLarge { budget }),
        Err(e) => Err(BoundedError::Malformed(e.to_string())),
    }
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    left: &'a Cell<usize>,
}

impl Seed<'_> {
    /// Counts one value or key against the budget.
    fn take<E: de::Error>(self) -> Result<(), E> {
        match self.left.get() {
            0 => Err(E::custom("over budget")),
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.take()?;
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_within_the_budget_parse_as_serde_json_does() {
        let text = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"d"}"#;
        assert_eq!(
            from_slice(text.as_bytes(), 100).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn the_budget_stops_the_parse_when_spent() {
        // 1 list + 3 objects = 4 values.
        assert!(from_slice(b"[{},{},{}]", 4).is_ok());
        assert_eq!(from_slice(b"[{},{},{}]", 3), Err(BoundedError::TooLarge { budget: 3 }));
        // Keys count too.
        assert!(from_slice(br#"{"a":1}"#, 2).is_err());
        assert!(from_slice(br#"{"a":1}"#, 3).is_ok());
        let flood = format!("[{}{{}}]", "{},".repeat(100_000));
        assert_eq!(from_slice(flood.as_bytes(), 1000), Err(BoundedError::TooLarge { budget: 1000 }));
    }

    #[test]
    fn malformed_json_is_named_as_such() {
        for bad in ["<html>", "[1,", "{} trailing"] {
            assert!(matches!(from_slice(bad.as_bytes(), 100), Err(BoundedError::Malformed(_))), "{bad}");
        }
    }
}
