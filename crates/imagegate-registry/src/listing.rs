//! Tag lists as a registry sends them, parsed one name at a time.
//!
//! A page is read to a byte cap first, but a cap on bytes does not bound
//! what parsing keeps: a 60 MiB page of one-character names parsed whole
//! into strings took the module to about 490 MiB before the tag-count limit
//! was checked. Here every name is checked as it is parsed: an invalid one
//! is counted and skipped (never kept, never written), a valid one kept
//! while there is room, and the page is refused as soon as there is none.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Invalid names reported by name, at most (the rest are only counted).
pub const MAX_SKIPPED_NAMES: usize = 20;
/// Characters of an invalid name shown in a report.
const SKIPPED_NAME_CHARS: usize = 64;

/// The tags of a repository, with the names the registry listed that are
/// not valid tag names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TagList {
    /// Valid tag names, in the registry's order.
    pub tags: Vec<String>,
    /// The first [`MAX_SKIPPED_NAMES`] invalid names, shortened and with
    /// control characters escaped: fit for a log or a result.
    pub skipped: Vec<String>,
    /// How many invalid names were skipped in all.
    pub skipped_total: usize,
}

/// Why a page was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageError {
    /// Keeping the page's names would pass the limit of tags.
    TooMany,
    /// The page is not a tag list.
    Malformed(String),
}

/// Adds the names of one page (`{"name": ..., "tags": [...]}`) to `list`,
/// keeping at most `max_tags` tags in all.
pub(crate) fn add_page(body: &[u8], list: &mut TagList, max_tags: usize) -> Result<(), PageError> {
    let mut sink = Sink {
        list,
        max_tags,
        over: false,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = (&mut de).deserialize_map(Page(&mut sink)).and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(()),
        Err(_) if sink.over => Err(PageError::TooMany),
        Err(e) => Err(PageError::Malformed(e.to_string())),
    }
}

/// Where the names of a page go: the list, the limit of tags, and whether
/// the limit stopped the parse.
struct Sink<'a> {
    list: &'a mut TagList,
    max_tags: usize,
    over: bool,
}

/// The page object; only its `tags` are read.
struct Page<'s, 'a>(&'s mut Sink<'a>);

impl<'de> Visitor<'de> for Page<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tag list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 {
                map.next_value_seed(Tags(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A key of the page object: whether it is `tags` (no other key is kept).
struct Key(bool);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v == "tags"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The page's `tags`: a list of names, or null.
struct Tags<'s, 'a>(&'s mut Sink<'a>);

impl<'de> DeserializeSeed<'de> for Tags<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Tags<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of tag names or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // One name at a time: only valid names that fit are kept.
        let sink = self.0;
        while let Some(name) = seq.next_element::<String>()? {
            if !crate::reference::is_valid_tag(&name) {
                sink.list.skipped_total += 1;
                if sink.list.skipped.len() < MAX_SKIPPED_NAMES {
                    sink.list.skipped.push(crate::error::untrusted_text(&name, SKIPPED_NAME_CHARS));
                }
            } else if sink.list.tags.len() >= sink.max_tags {
                sink.over = true;
                return Err(de::Error::custom("too many tags"));
            } else {
                sink.list.tags.push(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str, max: usize) -> (Result<(), PageError>, TagList) {
        let mut list = TagList::default();
        (add_page(body.as_bytes(), &mut list, max), list)
    }

    #[test]
    fn valid_names_are_kept_and_invalid_ones_skipped_and_reported() {
        let (r, list) = page(
            r#"{"name":"a/b","tags":["v1","../x","latest","-bad","a\nb\u001b[2J"],"x":[1,2]}"#,
            10,
        );
        r.unwrap();
        assert_eq!(list.tags, ["v1", "latest"]);
        assert_eq!(list.skipped_total, 3);
        assert_eq!(list.skipped, ["../x", "-bad", "a\\nb\\x1b[2J"]);
    }

    #[test]
    fn the_limit_is_checked_while_parsing() {
        let (r, list) = page(r#"{"tags":["a","b","c","d"]}"#, 2);
        assert_eq!(r, Err(PageError::TooMany));
        assert_eq!(list.tags.len(), 2, "nothing past the limit is kept");
        // Invalid names do not count against the limit, and only the
        // first ones are reported by name.
        let names: Vec<String> = (0..100).map(|n| format!("\"-{n}\"")).collect();
        let (r, list) = page(&format!(r#"{{"tags":[{}]}}"#, names.join(",")), 2);
        r.unwrap();
        assert_eq!(list.skipped_total, 100);
        assert_eq!(list.skipped.len(), MAX_SKIPPED_NAMES);
    }

    #[test]
    fn pages_without_tags_and_malformed_pages() {
        for empty in [r#"{"name":"a"}"#, r#"{"tags":null}"#, r#"{"tags":[]}"#] {
            let (r, list) = page(empty, 10);
            r.unwrap();
            assert!(list.tags.is_empty(), "{empty}");
        }
        for bad in [
            r#"["v1"]"#,
            r#"{"tags":"v1"}"#,
            r#"{"tags":[1]}"#,
            r#"{"tags":["v1"]} trailing"#,
            "<html>",
        ] {
            let (r, _) = page(bad, 10);
            assert!(matches!(r, Err(PageError::Malformed(_))), "{bad}: {r:?}");
        }
    }
}
