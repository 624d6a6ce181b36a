//! Files on the machine are safe: container_build refuses siblings that
//! leave the project tree, and a layout it is told to replace unless it is
//! one; container_push refuses layout files that are symlinks leading out
//! of the layout or are not regular files (FIFO, directory). Each refusal
//! is a clear failure naming the option or the file, and nothing outside the
//! work tree changes: the would-be targets keep their bytes and mtimes.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use imagegate_testkit::{repo_root, run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn build(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_build")), args)
}

fn push(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_push")), args)
}

/// Every file under `dir` (recursively, symlinks not followed) with its
/// bytes and mtime: compared before and after a refused run.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p.clone());
                out.insert(p, (Vec::new(), meta.modified().unwrap()));
            } else if meta.is_file() {
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// A Zuul-like work tree: `src/` with a sibling project, an app whose
/// context builds, and a directory outside `src/` that must not change.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("imagegate-files-test-").tempdir().unwrap();
        let t = Self { dir };
        for (p, text) in [
            ("src/example.org/lib/setup.py", "lib\n"),
            ("src/example.org/app/Containerfile", "FROM scratch\nCOPY . /src\n"),
            ("outside/precious/data.txt", "precious bytes that must survive\n"),
            ("outside/precious/more/notes.txt", "more\n"),
        ] {
            let f = t.path(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        t
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn context(&self) -> PathBuf {
        self.path("src/example.org/app")
    }
    fn args(&self, siblings: &[&str]) -> Value {
        json!({
            "context": self.context(),
            "repository": "localhost/example/app",
            "container_command": "buildah",
            "storage_driver": "vfs",
            "storage_root": self.path("storage"),
            "storage_runroot": self.path("run"),
            "isolation": "chroot",
            "siblings": siblings,
            "siblings_root": self.path("src"),
        })
    }
}

/// Runs a build that must be refused for `siblings`, with the message
/// naming the option and `entry`; checks that nothing changed anywhere.
fn assert_sibling_refused(tree: &Tree, siblings: &[&str], entry: &str, why: &str) {
    let before = snapshot(tree.dir.path());
    for check_mode in [true, false] {
        let mut args = tree.args(siblings);
        args["_ansible_check_mode"] = json!(check_mode);
        let run = build(&args);
        assert!(run.failed(), "{siblings:?} was accepted: {}", run.stdout);
        let msg = run.msg();
        assert!(msg.contains("siblings") && msg.contains(entry) && msg.contains(why), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(!run.changed(), "{}", run.stdout);
    }
    assert!(!tree.context().join(".zuul-siblings").exists());
    assert_eq!(snapshot(tree.dir.path()), before, "a refused build changed files");
}

/// [`assert_sibling_refused`] for the one entry `entry`.
fn assert_entry_refused(tree: &Tree, entry: &str, why: &str) {
    assert_sibling_refused(tree, &[entry], entry, why);
}

/// The case seen in the field: an absolute sibling was joined onto the
/// siblings directory, which gave the sibling itself as the target; the
/// copy truncated every file to zero bytes and the module reported success.
#[test]
fn absolute_sibling_is_refused() {
    let tree = Tree::new();
    let abs = tree.path("outside/precious");
    let abs = abs.to_str().unwrap();
    assert_sibling_refused(&tree, &[abs], abs, "absolute path");
    // Also when it points into the project tree: absolute is refused as such.
    let inside = tree.path("src/example.org/lib");
    let inside = inside.to_str().unwrap();
    assert_sibling_refused(&tree, &["example.org/lib", inside], inside, "absolute path");
    assert_eq!(
        std::fs::read_to_string(tree.path("outside/precious/data.txt")).unwrap(),
        "precious bytes that must survive\n"
    );
}

#[test]
fn dotdot_sibling_is_refused() {
    let tree = Tree::new();
    assert_entry_refused(&tree, "../outside/precious", "'..'");
    // `..` that would come back inside is refused too: the entry names a
    // path, not a walk.
    assert_entry_refused(&tree, "example.org/../example.org/lib", "'..'");
}

#[test]
fn symlinked_sibling_is_refused() {
    let tree = Tree::new();
    symlink(tree.path("outside/precious"), tree.path("src/example.org/escape")).unwrap();
    assert_entry_refused(&tree, "example.org/escape", "outside");
    // A symlinked directory higher up is caught as well.
    symlink(tree.path("outside"), tree.path("src/elsewhere")).unwrap();
    assert_entry_refused(&tree, "elsewhere/precious", "outside");
}

#[test]
fn sibling_holding_the_context_is_refused() {
    let tree = Tree::new();
    // Copying a parent of the context into the context would never end.
    assert_entry_refused(&tree, "example.org", "build context");
    assert_sibling_refused(&tree, &["."], "'.'", "names no project");
}

/// A layout path that is not a layout (a home directory given by mistake)
/// is refused, not emptied.
#[test]
fn layout_that_is_not_a_layout_is_refused() {
    let tree = Tree::new();
    let before = snapshot(tree.dir.path());
    let mut args = tree.args(&[]);
    args["layout"] = json!(tree.path("outside"));
    let run = build(&args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("layout") && run.msg().contains("refusing"), "{}", run.msg());
    assert_eq!(snapshot(tree.dir.path()), before);
}

/// A one-image OCI layout (written by bench/make_layout.py) and the path
/// of its layer blob.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("imagegate-layout-test-").tempdir().unwrap();
        std::fs::write(dir.path().join("outside.txt"), "a file of the machine, not of the layout\n").unwrap();
        let status = Command::new("python3")
            .arg(repo_root().join("bench/make_layout.py"))
            .arg(dir.path().join("layout"))
            .args(["--images", "1", "--layers", "1"])
            .status()
            .unwrap();
        assert!(status.success());
        Self { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("layout")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside.txt")
    }
    fn blob(&self, digest: &str) -> PathBuf {
        self.root().join("blobs/sha256").join(&digest[7..])
    }
    fn json(&self, path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
    fn layer(&self) -> PathBuf {
        let index = self.json(&self.root().join("index.json"));
        let manifest = self.json(&self.blob(index["manifests"][0]["digest"].as_str().unwrap()));
        self.blob(manifest["layers"][0]["digest"].as_str().unwrap())
    }
    fn push(&self, reg: &TestRegistry) -> ModuleRun {
        push(&json!({
            "layout": self.root(),
            "repository": format!("{}/example/files", reg.host),
            "tags": ["latest"],
            "registries": {reg.host.clone(): {"plain_http": true}},
        }))
    }
}

/// Asserts a refused push: failed, naming `file` and `why`, and the
/// registry has no tag; the file outside the layout is untouched.
fn assert_push_refused(layout: &Layout, reg: &TestRegistry, file: &Path, why: &str) {
    let outside = snapshot(layout.dir.path());
    let run = layout.push(reg);
    assert!(run.failed(), "pushed: {}", run.stdout);
    let msg = run.msg();
    assert!(msg.contains(&file.display().to_string()) && msg.contains(why), "{msg}");
    assert!(!run.all_output().contains("a file of the machine"), "{}", run.all_output());
    assert_eq!(reg.digest("example/files:latest"), None);
    assert_eq!(snapshot(layout.dir.path()), outside);
}

/// A registry, and a layout whose layer blob is gone, for the test to put
/// something else in its place: the registry, the layout, the blob's path.
fn layer_removed() -> (TestRegistry, Layout, PathBuf) {
    let reg = TestRegistry::start(Kind::Distribution);
    let layout = Layout::new();
    let layer = layout.layer();
    std::fs::remove_file(&layer).unwrap();
    (reg, layout, layer)
}

#[test]
fn layout_blob_symlinked_outside_is_refused() {
    let (reg, layout, layer) = layer_removed();
    symlink(layout.outside(), &layer).unwrap();
    assert_push_refused(&layout, &reg, &layer, "leads outside the layout");
}

#[test]
fn layout_blob_fifo_is_refused() {
    let (reg, layout, layer) = layer_removed();
    assert!(Command::new("mkfifo").arg(&layer).status().unwrap().success());
    assert_push_refused(&layout, &reg, &layer, "is a FIFO, not a regular file");
    // A symlink inside the layout to that FIFO is no way round it.
    let alias = layout.root().join("blobs/fifo");
    std::fs::rename(&layer, &alias).unwrap();
    symlink(&alias, &layer).unwrap();
    assert_push_refused(&layout, &reg, &layer, "is a FIFO, not a regular file");
}

#[test]
fn layout_blob_directory_is_refused() {
    let (reg, layout, layer) = layer_removed();
    std::fs::create_dir(&layer).unwrap();
    assert_push_refused(&layout, &reg, &layer, "is a directory, not a regular file");
}

#[test]
fn layout_index_and_marker_symlinked_outside_are_refused() {
    let reg = TestRegistry::start(Kind::Distribution);
    for name in ["index.json", "oci-layout"] {
        let layout = Layout::new();
        let file = layout.root().join(name);
        std::fs::copy(&file, layout.outside()).unwrap();
        std::fs::remove_file(&file).unwrap();
        symlink(layout.outside(), &file).unwrap();
        let run = layout.push(&reg);
        assert!(run.failed(), "{}", run.stdout);
        let msg = run.msg();
        assert!(
            msg.contains("layout") && msg.contains(&file.display().to_string()) && msg.contains("leads outside"),
            "{msg}"
        );
    }
    assert_eq!(reg.digest("example/files:latest"), None);
}

/// Symlinks that stay inside the layout are fine (a layout may share blobs
/// that way), and the refused cases above are not a blanket ban.
#[test]
fn layout_blob_symlinked_inside_is_pushed() {
    let reg = TestRegistry::start(Kind::Distribution);
    let layout = Layout::new();
    let layer = layout.layer();
    let moved = layout.root().join("blobs/moved");
    std::fs::rename(&layer, &moved).unwrap();
    symlink(Path::new("../moved"), &layer).unwrap();
    let run = layout.push(&reg);
    run.assert_ok();
    assert!(reg.digest("example/files:latest").is_some());
}

/// Without a layout option, the export goes to a private temporary
/// directory (never a fixed shared name), which is gone when the module
/// ends; nothing is left in the temporary directory.
#[test]
fn default_build_output_is_private_and_removed() {
    let tree = Tree::new();
    std::fs::write(tree.path("src/example.org/app/Containerfile"), "FROM scratch\nCOPY hello /hello\n").unwrap();
    std::fs::write(tree.path("src/example.org/app/hello"), "hello\n").unwrap();
    let tmp = tree.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let args_file = tree.path("args.json");
    std::fs::write(&args_file, tree.args(&[]).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_container_build"))
        .arg(&args_file)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["failed"], json!(false), "{result}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(result["digest"].as_str().unwrap().starts_with("sha256:"), "{result}");
    assert_eq!(result["layout"], Value::Null, "{result}");
    let left: Vec<PathBuf> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(!std::env::temp_dir().join("imagegate-layouts/localhost_example_app").exists());
}
