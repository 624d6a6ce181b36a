//! The blocks, their outcomes and the report.

use super::*;

pub(crate) struct Block {
    pub(crate) file: String,
    pub(crate) line: u64,
    pub(crate) lang: String,
    pub(crate) text: String,
    pub(crate) skip: Option<String>,
    pub(crate) data: Value,
    pub(crate) key: String,
}

/// The blocks of the docs of this checkout, or of the copy named by
/// `IMAGEGATE_DOCS_SOURCE` (to see that the test fails on a broken example
/// without touching the real docs).
pub(crate) fn extract() -> Vec<Block> {
    let source = std::env::var_os("IMAGEGATE_DOCS_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(repo_root);
    let out = Command::new(venv_tool("python3"))
        .arg(repo_root().join("tests/docs/extract.py"))
        .args(["blocks".as_ref(), source.as_os_str()])
        .output()
        .expect("run tests/docs/extract.py");
    assert!(out.status.success(), "extract.py: {}", String::from_utf8_lossy(&out.stderr));
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("extract.py gives JSON");
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    all.iter()
        .map(|v| Block {
            file: text(v, "file"),
            line: v["line"].as_u64().unwrap_or(0),
            lang: text(v, "lang"),
            text: text(v, "text"),
            skip: v["skip"].as_str().map(String::from),
            data: v["data"].clone(),
            key: text(v, "key"),
        })
        .collect()
}

/// What became of one block a scenario named.
pub(crate) struct Outcome {
    pub(crate) file: String,
    pub(crate) line: u64,
    pub(crate) key: String,
    pub(crate) result: Result<(), String>,
}

/// A block a scenario runs (file, the start of its first line) and the
/// assertion of its effect, run after it succeeded.
pub(crate) type Check<'a> = (&'static str, &'static str, Assertion<'a>);

/// What a block should have done, checked after it ran.
pub(crate) type Assertion<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

/// A scenario: runs the blocks it names, returns what became of each.
pub(crate) type Scenario = fn(&Env, &Blocks) -> Vec<Outcome>;

/// The blocks, and which of them the scenarios took.
pub(crate) struct Blocks<'a> {
    pub(crate) all: &'a [Block],
    pub(crate) taken: RefCell<Vec<bool>>,
}

impl<'a> Blocks<'a> {
    pub(crate) fn new(all: &'a [Block]) -> Self {
        Self {
            all,
            taken: RefCell::new(vec![false; all.len()]),
        }
    }

    /// The block of `file` whose first line starts with `key`; an error if
    /// the docs no longer show it, or mark it as not runnable here.
    pub(crate) fn take(&self, file: &str, key: &str) -> Result<&'a Block, String> {
        let (i, b) = self
            .all
            .iter()
            .enumerate()
            .find(|(i, b)| b.file == file && b.key.starts_with(key) && !self.taken.borrow()[*i])
            .ok_or_else(|| format!("{file}: no block starting with {key:?} any more (the test runs it: update the test)"))?;
        self.taken.borrow_mut()[i] = true;
        if let Some(reason) = &b.skip {
            return Err(format!("marked 'docs-test: skip {reason}', yet the test runs it: drop one"));
        }
        Ok(b)
    }

    pub(crate) fn run(&self, file: &str, key: &str, f: impl FnOnce(&Block) -> Result<(), String>) -> Outcome {
        match self.take(file, key) {
            Ok(b) => b.outcome(f(b)),
            Err(e) => Outcome {
                file: file.into(),
                line: 0,
                key: key.into(),
                result: Err(e),
            },
        }
    }
}

impl Block {
    pub(crate) fn outcome(&self, result: Result<(), String>) -> Outcome {
        Outcome {
            file: self.file.clone(),
            line: self.line,
            key: self.key.clone(),
            result,
        }
    }

    /// The names of the tasks the block holds (of its plays, for a play).
    pub(crate) fn task_names(&self) -> Vec<String> {
        let items = self.data.as_array().cloned().unwrap_or_default();
        let tasks: Vec<Value> = if self.is_play() {
            items
                .iter()
                .flat_map(|p| p["tasks"].as_array().cloned().unwrap_or_default())
                .collect()
        } else {
            items
        };
        tasks.iter().filter_map(|t| t["name"].as_str().map(String::from)).collect()
    }

    pub(crate) fn is_play(&self) -> bool {
        self.data[0].get("hosts").is_some()
    }
}

pub(crate) fn report(blocks: &[Block], claimed: &Blocks, results: &[Outcome], started: Instant) {
    let taken = claimed.taken.borrow();
    let (mut run, mut skipped, mut other, mut unhandled) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, b) in blocks.iter().enumerate() {
        let place = format!("{}:{} ({})", b.file, b.line, b.key);
        if taken[i] {
            run.push(place);
        } else if let Some(reason) = &b.skip {
            skipped.push(format!("{place}: {reason}"));
        } else if not_an_example(b) {
            other.push(format!("{place}: {}", if b.lang.is_empty() { "no language" } else { "text" }));
        } else {
            unhandled.push(format!("{place}: neither run by this test nor marked 'docs-test: skip <reason>'"));
        }
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}:{} ({}): {e}", o.file, o.line, o.key)))
        .collect();
    let list = |v: &[String]| v.iter().map(|l| format!("\n  {l}")).collect::<String>();
    eprintln!(
        "docs-test: {} blocks: {} run ({} failed), {} skipped, {} not examples, {} unhandled, in {:.0} s\nrun:{}\nskipped:{}\nnot examples:{}",
        blocks.len(),
        run.len(),
        failed.len(),
        skipped.len(),
        other.len(),
        unhandled.len(),
        started.elapsed().as_secs_f64(),
        list(&run),
        list(&skipped),
        list(&other),
    );
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| format!("\n  {a} -> {b}")).collect::<String>();
    let hosts: Vec<(&str, &str)> = HOSTS.iter().map(|(h, s)| (*h, s.name())).collect();
    eprintln!(
        "substituted: hosts:{}\n usernames {USERNAMES:?} -> the registry's user\n paths:{}\n placeholders:{}\n environment:{}\n commands not run:{}",
        pairs(&hosts),
        pairs(PATHS),
        pairs(PLACEHOLDERS),
        pairs(ENVIRONMENT),
        pairs(COMMANDS_NOT_RUN),
    );
    assert!(
        failed.is_empty() && unhandled.is_empty(),
        "docs examples that failed:{}\nblocks neither run nor marked:{}",
        list(&failed),
        list(&unhandled)
    );
    assert!(!run.is_empty(), "no block ran");
}
