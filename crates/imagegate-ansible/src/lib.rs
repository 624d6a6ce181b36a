//! The Ansible binary-module protocol.
//!
//! Ansible runs a binary module as `<binary> <args-file>`; the file holds one
//! JSON object with the task's options and `_ansible_*` internal keys. The
//! module prints exactly one JSON object on stdout. [`run`] does all of that:
//! strict typed options (an unknown option, a wrong type or a missing one
//! fails naming the option), check mode and diff flags, secret masking in
//! everything printed, panics turned into `failed`, and the exit code.

mod convert;
pub mod mask;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::{Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

pub use mask::Masker;

/// The secrets of the current run: the secret options' values, and what
/// the module learns while it runs ([`add_secret`]).
static MASKER: RwLock<Option<Masker>> = RwLock::new(None);

/// Masks the secrets of the current run in a line (for log lines written
/// to stderr). Before the arguments are read there is nothing to mask.
pub fn mask(line: &str) -> String {
    match &*MASKER.read().unwrap_or_else(|e| e.into_inner()) {
        Some(m) => m.mask_str(line),
        None => line.to_string(),
    }
}

/// Adds a secret learned at run time (a token obtained, a derived form of a
/// password) to everything the module prints from now on.
pub fn add_secret(secret: &str) {
    MASKER
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Masker::default)
        .add(secret);
}

fn current_masker() -> Masker {
    MASKER.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

/// What a module declares about itself.
pub struct ModuleSpec {
    pub name: &'static str,
    /// Option names (at any depth) whose values are secrets.
    pub secret_options: &'static [&'static str],
    /// Options (list items written `images[]`, any entry of a dict
    /// `registries.*`) whose unknown keys are dropped with a warning instead
    /// of refused: where zuul-jobs users carry keys of their own in the same
    /// dicts. The warning names the key, so a misspelt one is seen.
    pub lenient: &'static [&'static str],
}

/// `images[3]` as `images[]`: an option path with its indexes left out.
fn path_pattern(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether `pattern` is `<dict>.*` and `segments` name one entry of that
/// top-level dict (its keys may hold dots, as registry hosts do).
fn any_entry_of(pattern: &str, segments: &[&serde_path_to_error::Segment]) -> bool {
    let Some(dict) = pattern.strip_suffix(".*") else {
        return false;
    };
    matches!(
        segments,
        [serde_path_to_error::Segment::Map { key: top }, serde_path_to_error::Segment::Map { .. }] if top == dict
    )
}

/// Drops the unknown key `error` names if its place is lenient; returns the
/// warning to give.
fn drop_lenient(value: &mut Value, error: &serde_path_to_error::Error<serde_json::Error>, lenient: &[&str]) -> Option<String> {
    let inner = error.inner().to_string();
    let name = inner.strip_prefix("unknown field `")?.split('`').next()?.to_string();
    // The path may name the unknown key itself, or the dict holding it.
    let mut segments: Vec<&serde_path_to_error::Segment> = error.path().iter().collect();
    if matches!(segments.last(), Some(serde_path_to_error::Segment::Map { key }) if *key == name) {
        segments.pop();
    }
    let path = segments
        .iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
            serde_path_to_error::Segment::Map { key } => format!(".{key}"),
            _ => "?".into(),
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string();
    if !lenient.contains(&path_pattern(&path).as_str()) && !lenient.iter().any(|p| any_entry_of(p, &segments)) {
        return None;
    }
    let mut cur = &mut *value;
    for seg in segments {
        cur = match seg {
            serde_path_to_error::Segment::Seq { index } => cur.as_array_mut()?.get_mut(*index)?,
            serde_path_to_error::Segment::Map { key } => cur.as_object_mut()?.get_mut(key)?,
            _ => return None,
        };
    }
    cur.as_object_mut()?.remove(&name)?;
    Some(format!("option '{path}.{name}' is not used by {{module}} and was ignored"))
}

/// The internal flags of the run, and a place for warnings.
#[derive(Debug, Default)]
pub struct Context {
    pub check_mode: bool,
    pub diff: bool,
    pub verbosity: u8,
    warnings: Mutex<Vec<String>>,
}

impl Context {
    pub fn warn(&self, msg: impl Into<String>) {
        self.warnings.lock().expect("warnings").push(msg.into());
    }
}

/// `diff` of a result: Ansible shows `before` and `after` as a unified diff.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub before: String,
    pub after: String,
}

/// A successful run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: bool,
    pub msg: String,
    pub diff: Option<Diff>,
    /// The module's own return values.
    pub values: Map<String, Value>,
    /// Return values that are long lists, rendered to JSON text element by
    /// element (see [`RawList`]); they follow `values` in the result.
    pub lists: Vec<(String, RawList)>,
}

/// A typed report as a result's return values: its fields, in their order.
/// Reports are structs; anything else is a bug in the module, said loudly.
pub fn values<T: serde::Serialize>(report: &T) -> Map<String, Value> {
    match serde_json::to_value(report) {
        Ok(Value::Object(m)) => m,
        other => panic!("a report is a struct with fields, not {other:?}"),
    }
}

/// A list in the result kept as JSON text, one element at a time, each
/// masked as it is added: a result of many thousand elements (a mirror of
/// 10,000 images) is then never held as a tree of values, which takes
/// several times the memory of its text.
#[derive(Debug, Default)]
pub struct RawList(Vec<Box<serde_json::value::RawValue>>);

impl RawList {
    /// Adds one element, masked with the secrets known now.
    pub fn push(&mut self, masker: &Masker, v: Value) {
        let text = serde_json::to_string(&masker.mask_value(v)).unwrap_or_else(|_| "null".into());
        // Text serde_json just wrote is JSON.
        if let Ok(raw) = serde_json::value::RawValue::from_string(text) {
            self.0.push(raw);
        }
    }

    /// The list as values (for a failure's values, or a test).
    pub fn into_value(self) -> Value {
        Value::Array(
            self.0
                .into_iter()
                .map(|r| serde_json::from_str(r.get()).unwrap_or(Value::Null))
                .collect(),
        )
    }
}

/// The masker of the current run (for [`RawList::push`]).
pub fn masker() -> Masker {
    current_masker()
}

/// A module's result: the object of values, and the long lists that follow
/// them, written out without building one tree of both.
#[derive(Debug)]
pub struct Rendered {
    pub head: Value,
    pub lists: Vec<(String, RawList)>,
}

impl Rendered {
    /// The whole result as one value (tests, small results).
    pub fn into_value(self) -> Value {
        let mut head = self.head;
        if let Value::Object(m) = &mut head {
            for (k, l) in self.lists {
                m.entry(k).or_insert(l.into_value());
            }
        }
        head
    }
}

impl Serialize for Rendered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let head = self.head.as_object();
        let mut map = s.serialize_map(None)?;
        for (k, v) in head.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        for (k, l) in &self.lists {
            if !head.is_some_and(|h| h.contains_key(k)) {
                map.serialize_entry(k, &l.0)?;
            }
        }
        map.end()
    }
}

/// A failed run.
#[derive(Debug)]
pub enum ModuleError {
    /// An option's value is wrong; `option` is its path (`images[0].src`).
    Option { option: String, problem: String },
    /// The work failed; `values` are returned beside `msg` (partial
    /// results). `changed` says whether the failed run wrote anything
    /// before it stopped (a failure is not always a no-op).
    Failed {
        msg: String,
        changed: bool,
        values: Map<String, Value>,
    },
}

impl ModuleError {
    pub fn option(option: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Option {
            option: option.into(),
            problem: problem.into(),
        }
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        Self::Failed {
            msg: msg.into(),
            changed: false,
            values: Map::new(),
        }
    }

    /// Marks a failure as having changed something (`changed: true`) when
    /// `changed` is set, for a failure after writes already landed.
    #[must_use]
    pub fn with_changed(self, changed: bool) -> Self {
        match self {
            Self::Failed { msg, changed: c, values } => Self::Failed {
                msg,
                changed: c || changed,
                values,
            },
            Self::Option { option, problem } if changed => Self::Failed {
                msg: format!("option '{option}': {problem}"),
                changed,
                values: Map::new(),
            },
            other => other,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Option { option, problem } => format!("option '{option}': {problem}"),
            Self::Failed { msg, .. } => msg.clone(),
        }
    }
}

/// The options and flags of one run, parsed from an args file's text.
pub fn parse_args<P: DeserializeOwned>(text: &str, spec: &ModuleSpec) -> (Masker, Result<(P, Context), ModuleError>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                Masker::default(),
                Err(ModuleError::failed(format!("the arguments file is not JSON: {e}"))),
            )
        }
    };
    let masker = Masker::from_args(&value, spec.secret_options);
    let Value::Object(mut map) = value else {
        return (masker, Err(ModuleError::failed("the arguments file must hold a JSON object")));
    };
    let mut ctx = Context::default();
    let internal: Vec<String> = map.keys().filter(|k| k.starts_with("_ansible_")).cloned().collect();
    for key in internal {
        let v = map.remove(&key).unwrap_or(Value::Null);
        match key.as_str() {
            "_ansible_check_mode" => ctx.check_mode = truthy(&v),
            "_ansible_diff" => ctx.diff = truthy(&v),
            "_ansible_verbosity" => ctx.verbosity = v.as_u64().unwrap_or(0).min(u8::MAX as u64) as u8,
            _ => {}
        }
    }
    let mut value = Value::Object(map);
    let mut conversions = 0;
    let result = loop {
        match serde_path_to_error::deserialize::<_, P>(value.clone()) {
            Ok(p) => break Ok(p),
            // A value Ansible would have converted (see `convert`) is
            // converted, and the options read again.
            Err(e) if conversions < convert::MAX_CONVERSIONS && convert::mend(&mut value, &e) => conversions += 1,
            Err(e) if conversions < convert::MAX_CONVERSIONS => match drop_lenient(&mut value, &e, spec.lenient) {
                Some(warning) => {
                    conversions += 1;
                    ctx.warn(warning.replace("{module}", spec.name));
                }
                None => break Err(option_error(&e)),
            },
            Err(e) => break Err(option_error(&e)),
        }
    };
    (masker, result.map(|p| (p, ctx)))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on"),
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// Turns serde's wording into one that names the option.
fn option_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ModuleError {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let inner = inner.split(" at line ").next().unwrap_or(&inner).to_string();
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else if path.ends_with(name) {
            path.clone()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(',').trim();
        return ModuleError::option(join(name), format!("unsupported option; {}", expected.replace('`', "'")));
    }
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        return ModuleError::option(join(name), "missing required option");
    }
    let option = if path == "." { "(top level)".to_string() } else { path };
    ModuleError::option(option, inner.replace('`', "'"))
}

/// Runs a module: reads the args file named by argv[1], calls `body`, prints
/// the one JSON result, and returns the exit code.
pub fn run<P: DeserializeOwned>(spec: &ModuleSpec, body: impl FnOnce(P, &Context) -> Result<Outcome, ModuleError>) -> ExitCode {
    let text = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| ModuleError::failed(format!("cannot read the arguments file {}: {e}", path.to_string_lossy()))),
        None => Err(ModuleError::failed(format!(
            "usage: {} <arguments-file> (this is an Ansible module)",
            spec.name
        ))),
    };
    let rendered = match text {
        Ok(text) => run_rendered(spec, &text, body).0,
        Err(e) => render(&Masker::default(), None, Err(e)),
    };
    let failed = rendered.head["failed"] == Value::Bool(true);
    // The module's one write to stdout: the result object.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = serde_json::to_writer(&mut stdout, &rendered);
    let _ = writeln!(stdout);
    let _ = stdout.flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a module on the text of an args file and returns the masked result
/// object. A panic in `body` becomes `failed: true` with its message.
pub fn run_text<P: DeserializeOwned>(
    spec: &ModuleSpec,
    text: &str,
    body: impl FnOnce(P, &Context) -> Result<Outcome, ModuleError>,
) -> Value {
    run_rendered(spec, text, body).0.into_value()
}

/// A module's code run inside another program (the `imagegate` command).
pub struct Ran {
    /// The masked result document, as the module would print it.
    pub result: Value,
    /// It failed on its input (an option's value, an unknown option), not
    /// in its work.
    pub bad_input: bool,
}

/// [`run_text`], saying also whether a failure was one of the input.
pub fn run_in_process<P: DeserializeOwned>(
    spec: &ModuleSpec,
    text: &str,
    body: impl FnOnce(P, &Context) -> Result<Outcome, ModuleError>,
) -> Ran {
    let (rendered, bad_input) = run_rendered(spec, text, body);
    Ran {
        result: rendered.into_value(),
        bad_input,
    }
}

/// [`run_text`], the result kept as [`Rendered`], and whether it failed
/// on its input.
fn run_rendered<P: DeserializeOwned>(
    spec: &ModuleSpec,
    text: &str,
    body: impl FnOnce(P, &Context) -> Result<Outcome, ModuleError>,
) -> (Rendered, bool) {
    install_panic_hook();
    let (masker, parsed) = parse_args::<P>(text, spec);
    {
        let mut global = MASKER.write().unwrap_or_else(|e| e.into_inner());
        let mut merged = masker;
        if let Some(learned) = global.take() {
            merged.merge(&learned);
        }
        *global = Some(merged);
    }
    let (params, ctx) = match parsed {
        Ok(v) => v,
        Err(e) => return (render(&current_masker(), None, Err(e)), true),
    };
    let result = catch_unwind(AssertUnwindSafe(|| body(params, &ctx))).unwrap_or_else(|payload| {
        let msg = panic_text(payload.as_ref());
        Err(ModuleError::failed(format!(
            "internal error in {}: {msg} (please report this bug)",
            spec.name
        )))
    });
    let bad_input = matches!(result, Err(ModuleError::Option { .. }));
    (render(&current_masker(), Some(&ctx), result), bad_input)
}

/// [`result_json`], with the outcome's long lists kept apart.
fn render(masker: &Masker, ctx: Option<&Context>, result: Result<Outcome, ModuleError>) -> Rendered {
    match result {
        Ok(mut o) => {
            let lists = std::mem::take(&mut o.lists);
            Rendered {
                head: result_json(masker, ctx, Ok(o)),
                lists,
            }
        }
        Err(e) => Rendered {
            head: result_json(masker, ctx, Err(e)),
            lists: Vec::new(),
        },
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "unknown panic".to_string(),
    }
}

/// Replaces the default panic hook, which would print the panic message
/// unmasked, with one that prints it masked to stderr.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!("panic{place}: {}", mask(&panic_text(info.payload())));
        }));
    });
}

/// Builds the result object (masked) without printing it.
pub fn result_json(masker: &Masker, ctx: Option<&Context>, result: Result<Outcome, ModuleError>) -> Value {
    let mut out = Map::new();
    let warnings: Vec<String> = ctx.map(|c| c.warnings.lock().expect("warnings").clone()).unwrap_or_default();
    match result {
        Ok(o) => {
            out.insert("changed".into(), Value::Bool(o.changed));
            out.insert("failed".into(), Value::Bool(false));
            out.insert("msg".into(), Value::String(o.msg));
            if let (Some(d), true) = (o.diff, ctx.is_some_and(|c| c.diff)) {
                out.insert("diff".into(), serde_json::to_value(d).unwrap_or(Value::Null));
            }
            for (k, v) in o.values {
                out.entry(k).or_insert(v);
            }
            for (k, l) in o.lists {
                out.entry(k).or_insert(l.into_value());
            }
        }
        Err(e) => {
            let changed = matches!(e, ModuleError::Failed { changed: true, .. });
            out.insert("changed".into(), Value::Bool(changed));
            out.insert("failed".into(), Value::Bool(true));
            out.insert("msg".into(), Value::String(e.message()));
            if let ModuleError::Failed { values, .. } = e {
                for (k, v) in values {
                    out.entry(k).or_insert(v);
                }
            }
        }
    }
    if !warnings.is_empty() {
        out.insert("warnings".into(), Value::Array(warnings.into_iter().map(Value::String).collect()));
    }
    masker.mask_value(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        images: Vec<Image>,
        #[serde(default)]
        retries: Option<u32>,
        #[serde(default)]
        method: Option<Method>,
        #[serde(default)]
        password: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Image {
        src: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Method {
        Oci,
        Quay,
    }

    const SPEC: ModuleSpec = ModuleSpec {
        name: "t",
        secret_options: &["password"],
        lenient: &[],
    };

    #[test]
    fn lenient_places_drop_unknown_keys_with_a_warning() {
        const LENIENT: ModuleSpec = ModuleSpec {
            name: "t",
            secret_options: &[],
            lenient: &["images[]"],
        };
        let (_, parsed) = parse_args::<Args>(r#"{"images":[{"src":"a"},{"src":"b","note":"mine","extra":1}]}"#, &LENIENT);
        let (a, ctx) = parsed.unwrap();
        assert_eq!(a.images.len(), 2);
        let warnings = ctx.warnings.lock().unwrap().clone();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("'images[1].") && warnings[0].contains("not used by t"),
            "{warnings:?}"
        );
        let (_, parsed) = parse_args::<Args>(r#"{"images":[{"src":"a"}],"colour":1}"#, &LENIENT);
        assert!(parsed.is_err(), "other places stay strict");
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Hosts {
        hosts: std::collections::BTreeMap<String, Image>,
    }

    /// `<dict>.*` is any entry of a dict, whose keys may hold dots.
    #[test]
    fn any_entry_of_a_lenient_dict_drops_unknown_keys_with_a_warning() {
        const LENIENT: ModuleSpec = ModuleSpec {
            name: "t",
            secret_options: &[],
            lenient: &["hosts.*"],
        };
        let (_, parsed) = parse_args::<Hosts>(r#"{"hosts":{"quay.io":{"src":"a","passwd":"x"},"b":{"src":"b"}}}"#, &LENIENT);
        let (h, ctx) = parsed.unwrap();
        assert_eq!(h.hosts.len(), 2);
        let warnings = ctx.warnings.lock().unwrap().clone();
        assert_eq!(warnings, ["option 'hosts.quay.io.passwd' is not used by t and was ignored"]);
        let (_, parsed) = parse_args::<Hosts>(r#"{"hosts":{"b":{"src":"b"}},"colour":1}"#, &LENIENT);
        assert!(parsed.is_err(), "other places stay strict");
        let (_, parsed) = parse_args::<Hosts>(r#"{"hosts":{"b":{"src":"b"}}}"#, &SPEC);
        assert!(parsed.is_ok());
        let (_, parsed) = parse_args::<Hosts>(r#"{"hosts":{"b":{"src":"b","x":1}}}"#, &SPEC);
        assert!(parsed.is_err(), "not lenient where the spec does not say so");
    }

    fn parse(text: &str) -> Result<(Args, Context), String> {
        parse_args::<Args>(text, &SPEC).1.map_err(|e| e.message())
    }

    #[test]
    fn converts_templated_strings_as_ansible_does() {
        let (a, _) = parse(r#"{"images":[{"src":"a"}],"retries":"3"}"#).unwrap();
        assert_eq!(a.retries, Some(3));
        let e = parse(r#"{"images":[{"src":"a"}],"retries":"three"}"#).unwrap_err();
        assert!(e.starts_with("option 'retries': invalid type"), "{e}");
        let e = parse(r#"{"images":"a,b"}"#).unwrap_err();
        assert!(e.contains("'images[0]'"), "a comma list converts, its items still type-check: {e}");
    }

    #[test]
    fn reads_flags_and_ignores_internal_keys() {
        let (a, ctx) = parse(
            r#"{"images":[{"src":"a"}],"_ansible_check_mode":true,"_ansible_diff":true,"_ansible_verbosity":3,"_ansible_new_key":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(a.images.len(), 1);
        assert!(ctx.check_mode && ctx.diff);
        assert_eq!(ctx.verbosity, 3);
    }

    #[test]
    fn names_the_option_in_every_error() {
        let e = parse(r#"{"images":[{"src":"a","bogus":1}]}"#).unwrap_err();
        assert!(e.contains("'images[0].bogus'") && e.contains("unsupported option"), "{e}");
        let e = parse(r#"{"images":[{"src":"a"}],"colour":1}"#).unwrap_err();
        assert!(e.starts_with("option 'colour': unsupported option"), "{e}");
        let e = parse(r#"{"images":[{"src":{"a":5}}]}"#).unwrap_err();
        assert!(e.contains("'images[0].src'") && e.contains("invalid type"), "{e}");
        let e = parse(r#"{}"#).unwrap_err();
        assert_eq!(e, "option 'images': missing required option");
        let e = parse(r#"{"images":[{}]}"#).unwrap_err();
        assert_eq!(e, "option 'images[0].src': missing required option");
        let e = parse(r#"{"images":[],"retries":"many"}"#).unwrap_err();
        assert!(e.contains("'retries'"), "{e}");
        let e = parse(r#"{"images":[],"method":"ftp"}"#).unwrap_err();
        assert!(e.contains("'method'") && e.contains("oci") && e.contains("quay"), "{e}");
        assert!(parse("[1]").unwrap_err().contains("(top level)") || parse("[1]").is_err());
        assert!(parse("not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_panic_becomes_a_failed_result_without_secrets() {
        let out = run_text::<Args>(&SPEC, r#"{"images":[],"password":"pw-999"}"#, |a, _| {
            panic!("boom with {}", a.password.unwrap_or_default());
        });
        assert_eq!(out["failed"], Value::Bool(true));
        let msg = out["msg"].as_str().unwrap();
        assert!(msg.starts_with("internal error in t: boom with ********"), "{msg}");
        assert!(!out.to_string().contains("pw-999"));
    }

    #[test]
    fn check_mode_reaches_the_body_and_diff_is_returned() {
        let out = run_text::<Args>(
            &SPEC,
            r#"{"images":[],"_ansible_check_mode":true,"_ansible_diff":true}"#,
            |_, ctx| {
                Ok(Outcome {
                    changed: ctx.check_mode,
                    msg: "would".into(),
                    diff: Some(Diff {
                        before: "a\n".into(),
                        after: "b\n".into(),
                    }),
                    values: Map::new(),
                    lists: Vec::new(),
                })
            },
        );
        assert_eq!(out["changed"], Value::Bool(true));
        assert_eq!(out["diff"]["after"], "b\n");
        assert_eq!(out["failed"], Value::Bool(false));
    }

    #[test]
    fn long_lists_are_written_as_text_masked_and_after_the_values() {
        let (out, _) = run_rendered::<Args>(&SPEC, r#"{"images":[],"password":"pw-777"}"#, |_, _| {
            let masker = masker();
            let mut list = RawList::default();
            for n in 0..3 {
                list.push(&masker, serde_json::json!({"n": n, "note": "sent pw-777"}));
            }
            let mut values = Map::new();
            values.insert("count".into(), Value::from(3));
            Ok(Outcome {
                changed: false,
                msg: "ok".into(),
                diff: None,
                values,
                lists: vec![("items".into(), list)],
            })
        });
        let text = serde_json::to_string(&out).unwrap();
        assert!(!text.contains("pw-777"), "{text}");
        assert!(text.contains(r#""count":3,"items":[{"n":0,"note":"sent ********"},"#), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, out.into_value(), "the text and the value agree");
        assert_eq!(value["items"][2]["n"], 2);
    }

    #[test]
    fn results_are_masked_and_diff_only_when_asked() {
        let (masker, parsed) = parse_args::<Args>(r#"{"images":[],"password":"pw-123","_ansible_diff":false}"#, &SPEC);
        let (_, ctx) = parsed.unwrap();
        ctx.warn("warning with pw-123");
        let out = result_json(
            &masker,
            Some(&ctx),
            Ok(Outcome {
                changed: true,
                msg: "used pw-123".into(),
                diff: Some(Diff {
                    before: "a".into(),
                    after: "b".into(),
                }),
                values: Map::new(),
                lists: Vec::new(),
            }),
        );
        let text = out.to_string();
        assert!(!text.contains("pw-123"), "{text}");
        assert!(out.get("diff").is_none());
        assert_eq!(out["changed"], Value::Bool(true));
        assert_eq!(out["warnings"][0], "warning with ********");
        let failed = result_json(&masker, None, Err(ModuleError::failed("boom pw-123")));
        assert_eq!(failed["failed"], Value::Bool(true));
        assert_eq!(failed["msg"], "boom ********");
        assert_eq!(failed["changed"], Value::Bool(false));
        let mut values = Map::new();
        values.insert("moved".into(), serde_json::json!(["r/a:1"]));
        let partial = result_json(
            &masker,
            None,
            Err(ModuleError::Failed {
                msg: "half way".into(),
                changed: false,
                values,
            }
            .with_changed(true)),
        );
        assert_eq!(partial["failed"], Value::Bool(true));
        assert_eq!(partial["changed"], Value::Bool(true), "a failure after writes says so");
        assert_eq!(partial["moved"][0], "r/a:1");
    }
}
