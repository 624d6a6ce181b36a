//! Each module documents exactly the options it accepts. Its documentation
//! as ansible-doc shows it (the sidecar in plugins/modules with the doc
//! fragments of plugins/doc_fragments merged in) and its `Args` must have
//! the same options at every depth, each with the same type (and list
//! elements), the same default, the same choices where the code has an enum,
//! and the same required options.
//!
//! The options `Args` accepts are read from its `Deserialize` impl by a
//! probe (below) that serde drives through every field, nested structs
//! included. (serde-reflection does the same for most types, but it refuses
//! `deserialize_any`, which untagged enums such as container_build's
//! `labels` and `serde_json::Value` such as `declared.content` call, and it
//! sees a `PathBuf` as a plain string.)
//!
//! Defaults are checked by deserializing, not by reading code: giving an
//! option its documented default (or `null` where none is documented, as
//! Ansible passes an unset option) must yield the same `Args` as leaving it
//! out. Options the code fills in after deserializing (an `Option` that is
//! `None` until validation applies a constant) are listed in
//! [`defaults_applied_later`] with the constant the code uses.

use std::collections::BTreeSet;
use std::fmt::{self, Debug, Display};
use std::process::Command;

use imagegate_testkit::{repo_root, tools::venv_tool};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{json, Map, Value};

/// What an option of `Args` is, as its `Deserialize` impl asks for it.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Not asked for yet.
    Unknown,
    Bool,
    Int,
    Float,
    Str,
    /// A string serde reads as a path (`PathBuf`).
    Path,
    /// An enum of unit variants, read from a string: Ansible's choices.
    Choice(Vec<&'static str>),
    /// Anything (`deserialize_any`): Ansible's `raw`.
    Raw,
    Optional(Box<Shape>),
    List(Box<Shape>),
    /// A mapping with string keys.
    Map(Box<Shape>),
    Struct(Vec<(&'static str, Shape)>),
}

/// The field or variant names serde hands a deserializer.
type Names = &'static [&'static str];

#[derive(Debug)]
struct ProbeError(String);

impl Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

/// A deserializer that records in its slot what it was asked for and hands
/// the visitor a sample of it: one element for a list, one entry for a
/// mapping, every field for a struct, the first variant for an enum.
struct Probe<'a>(&'a mut Shape);

macro_rules! probe_scalar {
    ($($method:ident => $shape:expr, $visit:ident($($sample:expr)?);)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            *self.0 = $shape;
            visitor.$visit($($sample)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    probe_scalar! {
        deserialize_bool => Shape::Bool, visit_bool(true);
        deserialize_i8 => Shape::Int, visit_i64(1);
        deserialize_i16 => Shape::Int, visit_i64(1);
        deserialize_i32 => Shape::Int, visit_i64(1);
        deserialize_i64 => Shape::Int, visit_i64(1);
        deserialize_u8 => Shape::Int, visit_u64(1);
        deserialize_u16 => Shape::Int, visit_u64(1);
        deserialize_u32 => Shape::Int, visit_u64(1);
        deserialize_u64 => Shape::Int, visit_u64(1);
        deserialize_f32 => Shape::Float, visit_f64(1.0);
        deserialize_f64 => Shape::Float, visit_f64(1.0);
        deserialize_char => Shape::Str, visit_char('x');
        deserialize_ignored_any => Shape::Raw, visit_unit();
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // Anything: an empty mapping is what `serde_json::Value` and the
        // untagged enums of options (a mapping or a list) take.
        *self.0 = Shape::Raw;
        visitor.visit_map(OneEntry { key: None, value: None })
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // `PathBuf` asks for a string like `String` does; its visitor
        // expects a "path string" (serde's impl for PathBuf).
        let expecting = (&visitor as &dyn de::Expected).to_string();
        *self.0 = if expecting == "path string" { Shape::Path } else { Shape::Str };
        visitor.visit_str("x")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut inner = Shape::Unknown;
        let value = visitor.visit_some(Probe(&mut inner));
        *self.0 = Shape::Optional(Box::new(inner));
        value
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut element = Shape::Unknown;
        let value = visitor.visit_seq(OneElement(Some(&mut element)));
        *self.0 = Shape::List(Box::new(element));
        value
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let (mut key, mut entry) = (Shape::Unknown, Shape::Unknown);
        let value = visitor.visit_map(OneEntry {
            key: Some(&mut key),
            value: Some(&mut entry),
        });
        if key != Shape::Str {
            return Err(ProbeError(format!("a mapping whose keys are {key:?}, not strings")));
        }
        *self.0 = Shape::Map(Box::new(entry));
        value
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: Names, visitor: V) -> Result<V::Value, ProbeError> {
        let mut shapes = Vec::new();
        let value = visitor.visit_map(Fields {
            names: fields.iter(),
            shapes: &mut shapes,
        });
        *self.0 = Shape::Struct(shapes);
        value
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, variants: Names, visitor: V) -> Result<V::Value, ProbeError> {
        *self.0 = Shape::Choice(variants.to_vec());
        visitor.visit_enum(UnitVariant(variants[0]))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("an option of type () has no Ansible type".into()))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("a unit struct option has no Ansible type".into()))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("a bytes option has no Ansible type".into()))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("a bytes option has no Ansible type".into()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("a tuple option has no Ansible type".into()))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("a tuple struct option has no Ansible type".into()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError("an identifier where an option was expected".into()))
    }
}

struct OneElement<'a>(Option<&'a mut Shape>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ProbeError> {
        match self.0.take() {
            Some(slot) => seed.deserialize(Probe(slot)).map(Some),
            None => Ok(None),
        }
    }
}

struct OneEntry<'a> {
    key: Option<&'a mut Shape>,
    value: Option<&'a mut Shape>,
}

impl<'de> de::MapAccess<'de> for OneEntry<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        match self.key.take() {
            Some(slot) => seed.deserialize(Probe(slot)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeError> {
        let slot = self.value.take().ok_or_else(|| ProbeError("a second value".into()))?;
        seed.deserialize(Probe(slot))
    }
}

struct Fields<'a> {
    names: std::slice::Iter<'static, &'static str>,
    shapes: &'a mut Vec<(&'static str, Shape)>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        let Some(name) = self.names.next() else {
            return Ok(None);
        };
        self.shapes.push((name, Shape::Unknown));
        seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer(*name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeError> {
        let (name, slot) = self
            .shapes
            .last_mut()
            .ok_or_else(|| ProbeError("a value before its field".into()))?;
        seed.deserialize(Probe(slot)).map_err(|e| ProbeError(format!("{name}: {e}")))
    }
}

struct UnitVariant(&'static str);

impl<'de> de::EnumAccess<'de> for UnitVariant {
    type Error = ProbeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), ProbeError> {
        let variant = seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer(self.0))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant {
    type Error = ProbeError;

    fn unit_variant(self) -> Result<(), ProbeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, ProbeError> {
        Err(ProbeError(format!("enum variant {} carries data: not an Ansible choice", self.0)))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(format!("enum variant {} carries data: not an Ansible choice", self.0)))
    }

    fn struct_variant<V: Visitor<'de>>(self, _: Names, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(format!("enum variant {} carries data: not an Ansible choice", self.0)))
    }
}

/// The options `T` accepts.
fn shape_of<T: DeserializeOwned>() -> Shape {
    let mut shape = Shape::Unknown;
    if let Err(e) = T::deserialize(Probe(&mut shape)) {
        panic!("cannot probe {}: {e}", std::any::type_name::<T>());
    }
    shape
}

/// `args` read as `T` (as serde reads the module's arguments), shown with
/// `Debug` so that two readings can be compared.
fn parse<T: DeserializeOwned + Debug>(args: &Value) -> Result<String, String> {
    serde_json::from_value::<T>(args.clone())
        .map(|v| format!("{v:#?}"))
        .map_err(|e| e.to_string())
}

/// The Ansible view of a shape: type, list elements, choices, and the
/// options of a dict (a struct, or each entry of a mapping of structs).
struct AnsibleType<'a> {
    kind: &'static str,
    elements: Option<&'static str>,
    choices: Option<&'a [&'static str]>,
    suboptions: Option<&'a [(&'static str, Shape)]>,
    /// Where a dict's suboptions sit below it: `[]` for a list's element,
    /// `.*` for a mapping's entries, nothing for a struct.
    below: &'static str,
}

fn ansible_type(shape: &Shape) -> AnsibleType<'_> {
    let simple = |kind| AnsibleType {
        kind,
        elements: None,
        choices: None,
        suboptions: None,
        below: "",
    };
    match shape {
        Shape::Optional(inner) => ansible_type(inner),
        Shape::Bool => simple("bool"),
        Shape::Int => simple("int"),
        Shape::Float => simple("float"),
        Shape::Str => simple("str"),
        Shape::Path => simple("path"),
        Shape::Raw => simple("raw"),
        Shape::Choice(variants) => AnsibleType {
            choices: Some(variants),
            ..simple("str")
        },
        Shape::List(element) => {
            let e = ansible_type(element);
            AnsibleType {
                kind: "list",
                elements: Some(e.kind),
                choices: e.choices,
                suboptions: e.suboptions,
                below: "[]",
            }
        }
        Shape::Map(entry) => match &**entry {
            Shape::Struct(fields) => AnsibleType {
                suboptions: Some(fields),
                below: ".*",
                ..simple("dict")
            },
            _ => simple("dict"),
        },
        Shape::Struct(fields) => AnsibleType {
            suboptions: Some(fields),
            ..simple("dict")
        },
        Shape::Unknown => simple("(never asked for)"),
    }
}

/// Options whose default the code applies after deserializing (the field
/// is an `Option`, `None` until validation puts in a constant), with that
/// constant, by module and option path.
fn defaults_applied_later(module: &str) -> Vec<(&'static str, Value)> {
    use imagegate_registry::{Limits, RetryPolicy};
    let mut later = Vec::new();
    if ["container_push", "container_retag", "registry_mirror"].contains(&module) {
        // registries.rs: `retries` is attempts after the first one.
        later.push(("retries", json!(RetryPolicy::default().max_attempts - 1)));
        later.push(("retry_delay", json!(RetryPolicy::default().initial_delay.as_secs_f64())));
        later.push(("timeout", json!(Limits::default().answer.as_secs_f64())));
    }
    match module {
        "container_push" => {
            later.push(("blob_concurrency", json!(imagegate_modules::registries::DEFAULT_BLOB_CONCURRENCY)));
        }
        "registry_mirror" => {
            later.push(("concurrency", json!(imagegate_modules::mirror::DEFAULT_CONCURRENCY)));
            later.push(("blob_concurrency", json!(imagegate_modules::registries::DEFAULT_BLOB_CONCURRENCY)));
        }
        "container_retag" => {
            later.push(("concurrency", json!(imagegate_registry::promote::DEFAULT_CONCURRENCY)));
            later.push(("cleanup[].regex", json!(imagegate_modules::retag::DEFAULT_REGEX)));
            later.push(("cleanup[].age", json!(imagegate_modules::retag::DEFAULT_AGE)));
        }
        _ => {}
    }
    later
}

/// Options documented as required that deserialize without a value (a
/// serde default) because validation refuses them missing or empty, with
/// the proof that it does.
fn required_by_validation(module: &str, path: &str) -> Option<bool> {
    match (module, path) {
        ("container_retag", "criteria.jobs") => {
            let criteria = serde_json::from_value(json!({"api": "https://zuul.example.com/api/tenant/t"})).unwrap();
            Some(imagegate_modules::criteria::validate(criteria).is_err_and(|e| format!("{e:?}").contains("criteria.jobs")))
        }
        _ => None,
    }
}

/// A value of an option's documented type, for a required option.
fn sample(doc: &Value) -> Value {
    if let Some(first) = doc["choices"].get(0) {
        return first.clone();
    }
    let suboptions = doc["suboptions"].as_object();
    match doc["type"].as_str().unwrap_or("str") {
        "path" => json!("/x"),
        "int" => json!(1),
        "float" => json!(1.5),
        "bool" => json!(true),
        "raw" => json!({}),
        "dict" => suboptions.map(minimal).unwrap_or(json!({})),
        "list" => match suboptions {
            Some(s) => json!([minimal(s)]),
            None => json!([sample(&json!({"type": doc["elements"]}))]),
        },
        _ => json!("x"),
    }
}

/// The options that are documented as required, each with a sample value.
fn minimal(options: &Map<String, Value>) -> Value {
    Value::Object(
        options
            .iter()
            .filter(|(_, doc)| doc["required"] == json!(true))
            .map(|(name, doc)| (name.clone(), sample(doc)))
            .collect(),
    )
}

fn same_default(documented: &Value, code: &Value) -> bool {
    match (documented.as_f64(), code.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => documented == code,
    }
}

/// Where two `Debug` renderings of `Args` first differ, a few lines of each.
fn difference(a: &str, b: &str) -> String {
    let line = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(0);
    let around = |s: &str| s.lines().skip(line.saturating_sub(1)).take(3).collect::<Vec<_>>().join(" ");
    format!("without it: `{}`; with it: `{}`", around(a), around(b))
}

struct Checker {
    module: &'static str,
    parse: fn(&Value) -> Result<String, String>,
    later: Vec<(&'static str, Value)>,
    problems: Vec<String>,
    /// Every option compared, for the log.
    checked: Vec<String>,
}

impl Checker {
    fn problem(&mut self, path: &str, what: String) {
        self.problems.push(format!("{}: {path}: {what}", self.module));
    }

    /// Compares the options documented at one level with the fields of the
    /// struct `Args` reads there. `args` are the module's arguments with
    /// this level's object, at `pointer`, holding its required options only.
    fn level(&mut self, prefix: &str, docs: &Map<String, Value>, fields: &[(&'static str, Shape)], args: &Value, pointer: &str) {
        let documented: BTreeSet<&str> = docs.keys().map(String::as_str).collect();
        let accepted: BTreeSet<&str> = fields.iter().map(|(name, _)| *name).collect();
        for name in documented.difference(&accepted) {
            self.problem(&format!("{prefix}{name}"), "documented, but Args does not accept it".into());
        }
        for name in accepted.difference(&documented) {
            self.problem(&format!("{prefix}{name}"), "accepted by Args, but not documented".into());
        }
        let base = (self.parse)(args);
        if let Err(e) = &base {
            let place = if prefix.is_empty() { "(the options)" } else { prefix };
            self.problem(place, format!("Args refuses the documented required options alone ({args}): {e}"));
            return;
        }
        for (name, shape) in fields {
            let Some(doc) = docs.get(*name) else { continue };
            let path = format!("{prefix}{name}");
            self.checked.push(path.clone());
            self.types(&path, doc, shape);
            let with = |value: Option<Value>| {
                let mut args = args.clone();
                let object = args
                    .pointer_mut(pointer)
                    .and_then(Value::as_object_mut)
                    .expect("the level's object");
                match value {
                    Some(v) => object.insert(name.to_string(), v),
                    None => object.remove(*name),
                };
                args
            };
            if doc["required"] == json!(true) {
                if doc.get("default").is_some() {
                    self.problem(&path, "documented as required and with a default".into());
                }
                if (self.parse)(&with(None)).is_ok() {
                    match required_by_validation(self.module, &path) {
                        Some(true) => {}
                        Some(false) => self.problem(&path, "validation no longer refuses it missing".into()),
                        None => self.problem(&path, "documented as required, but Args accepts it missing".into()),
                    }
                }
            } else {
                self.default(&path, doc, &base, &with);
            }
            let t = ansible_type(shape);
            if let (Some(docs), Some(fields)) = (doc["suboptions"].as_object(), t.suboptions) {
                // The level below, holding its required options only.
                let inner = minimal(docs);
                let (value, step) = match t.below {
                    "[]" => (json!([inner]), "/0"),
                    ".*" => (json!({"registry.example.com": inner}), "/registry.example.com"),
                    _ => (inner, ""),
                };
                let below = with(Some(value));
                self.level(
                    &format!("{path}{}.", t.below),
                    docs,
                    fields,
                    &below,
                    &format!("{pointer}/{name}{step}"),
                );
            }
        }
    }

    fn types(&mut self, path: &str, doc: &Value, shape: &Shape) {
        let t = ansible_type(shape);
        let kind = doc["type"].as_str().unwrap_or("str");
        if kind != t.kind {
            self.problem(path, format!("documented type {kind}, Args reads {}", t.kind));
        }
        let elements = doc["elements"].as_str();
        if elements != t.elements {
            self.problem(path, format!("documented elements {elements:?}, Args reads {:?}", t.elements));
        }
        if let Some(variants) = t.choices {
            let documented: BTreeSet<&str> = doc["choices"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let accepted: BTreeSet<&str> = variants.iter().copied().collect();
            if documented != accepted {
                self.problem(path, format!("documented choices {documented:?}, Args takes {accepted:?}"));
            }
        }
        match (doc["suboptions"].is_object(), t.suboptions.is_some()) {
            (true, false) => self.problem(path, "documented with suboptions, but Args reads no struct here".into()),
            (false, true) => self.problem(path, "Args reads a struct here, but no suboptions are documented".into()),
            _ => {}
        }
    }

    /// Giving the documented default (`null` if none is documented, as
    /// Ansible passes an unset option) must read as leaving the option out;
    /// or, for a default the code applies later, the documented one must be
    /// the code's.
    fn default(&mut self, path: &str, doc: &Value, base: &Result<String, String>, with: &dyn Fn(Option<Value>) -> Value) {
        let documented = doc.get("default").cloned().unwrap_or(Value::Null);
        let later = self.later.iter().find(|(p, _)| *p == path).map(|(_, v)| v.clone());
        let given = match &later {
            // An unset option reaches the code as `None`.
            Some(code) => {
                if !same_default(&documented, code) {
                    self.problem(path, format!("documented default {documented}, the code applies {code}"));
                }
                Value::Null
            }
            None => documented.clone(),
        };
        let base = base.as_ref().expect("checked by the caller");
        match (self.parse)(&with(Some(given.clone()))) {
            Ok(explicit) if &explicit == base => {}
            Ok(explicit) => self.problem(
                path,
                format!(
                    "documented default {documented}, but giving {given} reads differently from leaving it out ({})",
                    difference(base, &explicit)
                ),
            ),
            Err(e) => self.problem(path, format!("documented default {documented}, but Args refuses {given}: {e}")),
        }
    }
}

/// The module's documentation as ansible-doc shows it, from this checkout.
fn documentation(module: &str) -> Value {
    let collections = tempfile::tempdir().unwrap();
    let collection = collections.path().join("ansible_collections/imagegate/containers");
    std::fs::create_dir_all(&collection).unwrap();
    for entry in ["galaxy.yml", "meta", "plugins"] {
        std::os::unix::fs::symlink(repo_root().join(entry), collection.join(entry)).unwrap();
    }
    let out = Command::new(venv_tool("ansible-doc"))
        .args(["--json", "-t", "module"])
        .arg(format!("imagegate.containers.{module}"))
        .env("ANSIBLE_COLLECTIONS_PATH", collections.path())
        .env("ANSIBLE_HOME", collections.path().join("home"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-doc runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ansible-doc {module}: {stderr}");
    assert!(
        !stderr.contains("WARNING") && !stderr.contains("ERROR"),
        "ansible-doc {module}: {stderr}"
    );
    let mut all: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc --json");
    all[format!("imagegate.containers.{module}")]["doc"].take()
}

/// The documentation of the option at `path` (`cleanup[].age`).
fn documented_at<'a>(options: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (parents, name) = path.rsplit_once('.').map_or((None, path), |(p, n)| (Some(p), n));
    let level = match parents {
        None => options,
        Some(parents) => parents.split('.').filter(|p| *p != "*").try_fold(options, |level, part| {
            level.get(part.trim_end_matches("[]"))?["suboptions"].as_object()
        })?,
    };
    level.get(name)
}

fn check<T: DeserializeOwned + Debug>(module: &'static str) {
    let doc = documentation(module);
    let options = doc["options"].as_object().expect("documented options");
    let Shape::Struct(fields) = shape_of::<T>() else {
        panic!("{module}'s Args is not a struct");
    };
    let mut checker = Checker {
        module,
        parse: parse::<T>,
        later: defaults_applied_later(module),
        problems: Vec::new(),
        checked: Vec::new(),
    };
    checker.level("", options, &fields, &minimal(options), "");
    for (path, _) in checker.later.clone() {
        if documented_at(options, path).is_none() {
            checker.problem(path, "listed in defaults_applied_later, but not documented".into());
        }
    }
    eprintln!("{module}: compared {}", checker.checked.join(", "));
    assert!(
        checker.problems.is_empty(),
        "{} mismatches between the documentation and Args:\n{}",
        checker.problems.len(),
        checker.problems.join("\n")
    );
}

/// A `#[test]` for each module named: `check` of its `Args`.
macro_rules! documents_the_options_it_accepts {
    ($($test:ident: $args:ty => $module:literal),+ $(,)?) => {
        $( #[test] fn $test() { check::<$args>($module); } )+
    };
}

documents_the_options_it_accepts!(
    container_build_documents_the_options_it_accepts: imagegate_modules::build::Args => "container_build",
    container_push_documents_the_options_it_accepts: imagegate_modules::push::Args => "container_push",
    container_retag_documents_the_options_it_accepts: imagegate_modules::retag::Args => "container_retag",
    registry_mirror_documents_the_options_it_accepts: imagegate_modules::mirror::Args => "registry_mirror",
    registries_conf_documents_the_options_it_accepts: imagegate_modules::registries_conf::Args => "registries_conf",
);

/// The probe reads each kind of field as Ansible would document it.
#[test]
fn the_probe_reads_ansible_types() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Kind {
        One,
        Two,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Either {
        List(Vec<String>),
        Map(std::collections::BTreeMap<String, String>),
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Probed {
        path: std::path::PathBuf,
        name: Option<String>,
        #[serde(rename = "type")]
        kind: Kind,
        count: usize,
        ratio: f64,
        items: Vec<Inner>,
        entries: std::collections::BTreeMap<String, Inner>,
        env: std::collections::BTreeMap<String, String>,
        either: Either,
        value: Value,
    }
    let Shape::Struct(fields) = shape_of::<Probed>() else {
        panic!("not a struct");
    };
    let seen: Vec<String> = fields
        .iter()
        .map(|(name, shape)| {
            let t = ansible_type(shape);
            let sub = t.suboptions.map(|s| s.iter().map(|(n, _)| *n).collect::<Vec<_>>());
            format!("{name} {} {:?} {:?} {sub:?}{}", t.kind, t.elements, t.choices, t.below)
        })
        .collect();
    assert_eq!(
        seen,
        [
            "path path None None None",
            "name str None None None",
            "type str None Some([\"one\", \"two\"]) None",
            "count int None None None",
            "ratio float None None None",
            "items list Some(\"dict\") None Some([\"flag\"])[]",
            "entries dict None None Some([\"flag\"]).*",
            "env dict None None None",
            "either raw None None None",
            "value raw None None None",
        ]
    );
}
