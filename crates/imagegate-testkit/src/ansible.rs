//! The ansible-core releases that playbook tests run under.
//!
//! tools/setup.sh makes one venv per release listed in
//! tools/ansible-cores.txt (`.work/ansible-<name>`). A playbook test is a
//! function taking a [`Core`]; [`under_each_core!`](crate::under_each_core)
//! turns it into one test per release, so a failure names the release.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};

use crate::repo_root;

/// One ansible-core release with its own venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Core {
    /// Ansible 9, one of the two Zuul 14 runs jobs with.
    V2_16,
    /// Ansible 11, the other one.
    V2_18,
    /// The newest release on PyPI when tools/ansible-cores.txt was written.
    Newest,
}

impl Core {
    pub const ALL: [Core; 3] = [Core::V2_16, Core::V2_18, Core::Newest];

    /// The name used in tools/ansible-cores.txt and the venv's directory.
    pub fn name(self) -> &'static str {
        match self {
            Core::V2_16 => "2.16",
            Core::V2_18 => "2.18",
            Core::Newest => "newest",
        }
    }

    /// The venv of this release.
    pub fn venv(self) -> PathBuf {
        repo_root().join(".work").join(format!("ansible-{}", self.name()))
    }

    /// A tool from this release's venv (ansible-playbook, python3, ...).
    /// Panics with the fix when the venv is missing.
    pub fn tool(self, name: &str) -> PathBuf {
        let path = self.venv().join("bin").join(name);
        assert!(
            path.exists(),
            "{} is missing: run tools/setup.sh to make the ansible-core {} venv",
            path.display(),
            self.name()
        );
        path
    }

    /// The ansible-core version the venv holds, as pinned by setup.
    pub fn version(self) -> String {
        std::fs::read_to_string(self.venv().join(".version"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }
}

/// Makes one `#[test]` per ansible-core release for each named function
/// `fn name(core: Core)`, in modules `core_2_16`, `core_2_18` and
/// `core_newest`.
#[macro_export]
macro_rules! under_each_core {
    ($($name:ident),* $(,)?) => {
        mod core_2_16 {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::V2_16) } )*
        }
        mod core_2_18 {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::V2_18) } )*
        }
        mod core_newest {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::Newest) } )*
        }
    };
}

/// The module binaries of this test build, as `(module, path)` pairs for
/// [`collection`]. A macro because `CARGO_BIN_EXE_*` exist only in the
/// crate that builds the binaries (imagegate-modules' tests).
#[macro_export]
macro_rules! module_binaries {
    () => {
        [
            ("registry_mirror", env!("CARGO_BIN_EXE_registry_mirror")),
            ("container_retag", env!("CARGO_BIN_EXE_container_retag")),
            ("container_push", env!("CARGO_BIN_EXE_container_push")),
            ("container_build", env!("CARGO_BIN_EXE_container_build")),
            ("registries_conf", env!("CARGO_BIN_EXE_registries_conf")),
        ]
    };
}

/// A collections path holding imagegate.containers as Ansible would see it
/// once installed: this checkout's files plus the given module binaries
/// (see [`module_binaries!`](crate::module_binaries)) as the executables for
/// this machine's architecture (`binaries/<arch>/`).
pub fn collection(binaries: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = repo_root();
    let coll = dir.path().join("ansible_collections/imagegate/containers");
    let native = coll.join("binaries").join(std::env::consts::ARCH);
    std::fs::create_dir_all(coll.join("plugins/modules")).expect("mkdir");
    std::fs::create_dir_all(&native).expect("mkdir");
    for entry in [
        "galaxy.yml",
        "meta",
        "roles",
        "playbooks",
        "plugins/action",
        "plugins/doc_fragments",
    ] {
        std::os::unix::fs::symlink(root.join(entry), coll.join(entry)).expect("symlink");
    }
    for (module, binary) in binaries {
        for doc in [format!("plugins/modules/{module}.yml"), format!("plugins/modules/{module}.py")] {
            std::os::unix::fs::symlink(root.join(&doc), coll.join(&doc)).expect("symlink");
        }
        std::fs::copy(binary, native.join(module)).expect("copy module");
    }
    dir
}

/// The release executables of one architecture that tools/build-modules.sh
/// built into this checkout's `binaries/<arch>/`, as `(module, path)` pairs;
/// panics, naming the build step, when one is missing.
pub fn release_binaries(arch: &str) -> Vec<(String, PathBuf)> {
    let dir = repo_root().join("binaries").join(arch);
    [
        "registry_mirror",
        "container_retag",
        "container_push",
        "container_build",
        "registries_conf",
    ]
    .iter()
    .map(|m| {
        let path = dir.join(m);
        assert!(
            path.is_file(),
            "{} is missing: build it with tools/build-modules.sh",
            path.display()
        );
        (m.to_string(), path)
    })
    .collect()
}

/// Adds `binaries/<arch>/` of [`release_binaries`] to a [`collection`].
pub fn add_architecture(collections: &Path, arch: &str) {
    let dir = collections.join("ansible_collections/imagegate/containers/binaries").join(arch);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (module, path) in release_binaries(arch) {
        std::os::unix::fs::symlink(path, dir.join(module)).expect("symlink");
    }
}

/// Lays out a playbook run's variables in `dir` the way Zuul 14's executor
/// lays out a job's (zuul/executor/server.py: `squash_variables`,
/// `make_inventory_dict`, `zuul_vars.yaml`), and returns the
/// ansible-playbook arguments that read them.
///
/// - Every variable but `zuul` is an inventory variable: each host in
///   `hosts` (name to connection vars) gets them as host vars, and the
///   inventory's `all` vars hold them for the implicit localhost, as Zuul
///   writes them. Zuul 14 squashes a job's `vars`, group vars, host vars and
///   even its `extra-vars` into these inventory variables, so a role's
///   defaults lose to them but its `vars`, a play's `vars` and a task's
///   `vars` win over them: a test that gave them with `-e` would hide such
///   mistakes, since extra vars outrank everything a role sets.
/// - `zuul` is an extra var (`-e @zuul_vars.json`), as Zuul gives it.
pub fn zuul_layout(dir: &Path, hosts: &Value, vars: &Value) -> Vec<OsString> {
    let mut job_vars = vars.as_object().cloned().unwrap_or_default();
    let zuul = job_vars.remove("zuul");
    let mut host_entries = Map::new();
    for (name, connection) in hosts.as_object().into_iter().flatten() {
        let mut host = job_vars.clone();
        host.extend(connection.as_object().cloned().unwrap_or_default());
        host_entries.insert(name.clone(), Value::Object(host));
    }
    let inventory = dir.join("inventory.yaml");
    let inventory_doc = json!({"all": {"hosts": host_entries, "vars": job_vars}});
    std::fs::write(&inventory, inventory_doc.to_string()).expect("write inventory");
    let mut args: Vec<OsString> = vec!["-i".into(), inventory.into()];
    if let Some(zuul) = zuul {
        let extra = dir.join("zuul_vars.json");
        std::fs::write(&extra, json!({ "zuul": zuul }).to_string()).expect("write zuul_vars");
        args.push("-e".into());
        args.push(format!("@{}", extra.display()).into());
    }
    args
}

/// The one host of a test that runs on the controller itself (the node is
/// this machine, reached with the local connection).
pub fn local_host() -> Value {
    json!({"localhost": {"ansible_connection": "local"}})
}

/// The roles path for a test: `roles/` of this checkout, unless the test
/// put another checkout's roles in `<collections>/roles-source/roles`.
pub fn roles_path(collections: &Path) -> PathBuf {
    let other = collections.join("roles-source/roles");
    if other.exists() {
        other
    } else {
        repo_root().join("roles")
    }
}

/// `ansible-playbook -vvv` of `core`, seeing the collection in
/// `collections` (see [`collection`]), with an `ANSIBLE_HOME` of its own
/// there. The caller adds the inventory and variables ([`zuul_layout`]),
/// the playbook and, where it matters, the current directory.
pub fn ansible_playbook(core: Core, collections: &Path) -> Command {
    let mut cmd = Command::new(core.tool("ansible-playbook"));
    cmd.arg("-vvv")
        .env("ANSIBLE_COLLECTIONS_PATH", collections)
        // The job playbooks call roles by short name, as Zuul runs them: from
        // the repository (the job's implicit role source), not the install.
        .env("ANSIBLE_ROLES_PATH", roles_path(collections))
        .env("ANSIBLE_HOME", collections.join("ansible-home"))
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_PYTHON_INTERPRETER", core.tool("python3"))
        // zuul_return, as the executor would have it (a recording stand-in).
        .env("ANSIBLE_LIBRARY", repo_root().join("tests/integration/library"))
        .env("ZUUL_RETURN_FILE", collections.join("zuul_return.json"));
    cmd
}

/// Runs an ansible-playbook command and returns whether it succeeded and
/// its stdout and stderr.
pub fn run_playbook(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run ansible-playbook");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs `playbook` (a path in this checkout) on the given hosts (name to
/// connection vars; [`local_host`] is one node, `{}` none: a nodeless job,
/// only the implicit localhost), with `vars` laid out as Zuul lays out a
/// job's ([`zuul_layout`]): inventory variables, and `zuul` as an extra var.
pub fn playbook_on(core: Core, collections: &Path, playbook: &str, vars: &Value, hosts: &Value) -> (bool, String) {
    let layout = collections.join(format!("run-{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&layout).expect("a run directory");
    run_playbook(
        ansible_playbook(core, collections)
            .args(zuul_layout(&layout, hosts, vars))
            .arg(repo_root().join(playbook)),
    )
}

/// [`playbook_on`] on the local host, run from `cwd` as a user's shell
/// would run it there (the working directory and `PWD`).
pub fn playbook_in(core: Core, collections: &Path, playbook: &str, vars: &Value, cwd: &Path) -> (bool, String) {
    let layout = collections.join(format!("run-{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&layout).expect("a run directory");
    run_playbook(
        ansible_playbook(core, collections)
            .args(zuul_layout(&layout, &local_host(), vars))
            .arg(repo_root().join(playbook))
            .current_dir(cwd)
            .env("PWD", cwd),
    )
}

/// Each run's inventory in a directory of its own (a test may run several).
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What the playbooks run with `collections` returned through zuul_return
/// (the recording stand-in of the tests' library), oldest first.
pub fn zuul_returned(collections: &Path) -> Vec<Value> {
    let text = std::fs::read(collections.join("zuul_return.json")).expect("zuul_return.json");
    match serde_json::from_slice(&text).expect("zuul_return.json is JSON") {
        Value::Array(records) => records,
        other => panic!("zuul_return.json is not a list: {other}"),
    }
}

/// The `buildset_registry` the playbooks returned last (as `secret_data`,
/// as run_buildset_registry returns it).
pub fn returned_buildset_registry(collections: &Path) -> Map<String, Value> {
    zuul_returned(collections)
        .iter()
        .rev()
        .find_map(|r| r["secret_data"]["buildset_registry"].as_object().cloned())
        .expect("buildset_registry returned")
}
