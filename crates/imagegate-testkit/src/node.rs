//! The node of the playbook tests that run roles as Zuul does: a non-root
//! user with passwordless sudo reached over ssh ([`NodeUser`]), and the
//! guards for what those roles change outside a test's own directory
//! (system paths, processes they start).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::ansible::Core;

/// Kills a process started by a role, by the pid file it left.
pub struct PidFile(pub PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Removes a directory the test had to create outside its own.
pub struct RemoveDir(pub PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Held while a test lets the roles write system paths (/etc/hosts, where
/// use_buildset_registry names an IP-addressed registry
/// zuul-jobs.buildset-registry, and /etc/containers, /etc/buildkit, the CA
/// store): the runs under each ansible-core and the conformance suite
/// (tests/conformance) take turns on this lock file. Dropping it puts back
/// /etc/hosts and every file registered with `file`, then releases the lock.
pub struct SystemPaths {
    hosts: String,
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
    dirs: Vec<PathBuf>,
    update_ca: bool,
    _lock: std::fs::File,
}

pub const SYSTEM_PATHS_LOCK: &str = "/tmp/imagegate-conformance.lock";

impl SystemPaths {
    pub fn lock() -> SystemPaths {
        let lock = std::fs::File::create(SYSTEM_PATHS_LOCK).expect("lock file");
        lock.lock().expect("lock");
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
        // The test starts without an alias (one left by an earlier run of
        // another tool would be counted as the role's); the file as found
        // is put back on drop.
        let without_alias: String = hosts.lines().filter(|l| !is_alias(l)).map(|l| format!("{l}\n")).collect();
        std::fs::write("/etc/hosts", without_alias).expect("write /etc/hosts");
        SystemPaths {
            hosts,
            files: Vec::new(),
            dirs: Vec::new(),
            update_ca: false,
            _lock: lock,
        }
    }

    /// Restores `path` (or removes it, if it is new) when dropped.
    pub fn file(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        let before = std::fs::read(&path).ok();
        self.files.push((path, before));
    }

    /// Removes `dir` when dropped if it does not exist now.
    pub fn new_dir(&mut self, dir: impl Into<PathBuf>) {
        let dir = dir.into();
        if !dir.exists() {
            self.dirs.push(dir);
        }
    }

    /// Runs update-ca-certificates after the files are put back.
    pub fn update_ca(&mut self) {
        self.update_ca = true;
    }
}

impl Drop for SystemPaths {
    fn drop(&mut self) {
        for (path, before) in self.files.iter().rev() {
            match before {
                Some(content) => drop(std::fs::write(path, content)),
                None => drop(std::fs::remove_file(path)),
            }
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if self.update_ca {
            // --fresh: a plain run leaves the link to a removed CA behind.
            let _ = Command::new("update-ca-certificates").arg("--fresh").output();
        }
        let _ = std::fs::write("/etc/hosts", &self.hosts);
    }
}

pub fn is_alias(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("zuul-jobs.buildset-registry")
}

/// A TOML file as JSON, read by the venv's Python (tomllib).
pub fn toml_file(core: Core, path: &Path) -> Value {
    let out = Command::new(core.tool("python3"))
        .args([
            "-c",
            "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} is not TOML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The node of the tests that run a role as a non-root user with
/// passwordless sudo, reached over ssh, as Zuul reaches its nodes: this
/// machine, a private sshd on a loopback port that lets only the node user
/// in. The user is made when missing; dropping the node stops sshd and
/// removes the user (hold it under SystemPaths).
pub struct NodeUser {
    sshd: std::process::Child,
    /// The node as an inventory host: name to connection vars.
    host: Value,
    _dir: tempfile::TempDir,
}

pub const NODE_USER: &str = "igbuildset";

impl NodeUser {
    pub fn ensure() -> NodeUser {
        use crate::tools::run;
        use std::os::unix::fs::PermissionsExt;
        if !Command::new("id").arg(NODE_USER).output().unwrap().status.success() {
            run(Command::new("useradd").args(["-m", "-s", "/bin/bash", NODE_USER]));
        }
        // '*': no password, but not locked (sshd refuses locked users).
        run(Command::new("usermod").args(["-p", "*", NODE_USER]));
        let sudoers = format!("/etc/sudoers.d/{NODE_USER}");
        std::fs::write(&sudoers, format!("{NODE_USER} ALL=(ALL) NOPASSWD:ALL\n")).unwrap();
        run(Command::new("chmod").args(["0440", &sudoers]));
        let dir = tempfile::Builder::new().prefix("imagegate-node-").tempdir().unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for key in ["id", "host"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)));
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let port = crate::free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nAllowUsers {NODE_USER}\nStrictModes no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n",
                dir = d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let host = serde_json::json!({"localhost": {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": port,
            "ansible_user": NODE_USER,
            "ansible_ssh_private_key_file": d.join("id"),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_args": "-o ControlMaster=no",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }});
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        NodeUser { sshd, host, _dir: dir }
    }

    pub fn home(&self) -> PathBuf {
        PathBuf::from(format!("/home/{NODE_USER}"))
    }

    /// A command run as the node user, with its HOME and a runtime
    /// directory of its own (as a login on a node has).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let runtime = self._dir.path().join("runtime");
        if !runtime.exists() {
            std::fs::create_dir(&runtime).unwrap();
            crate::tools::run(Command::new("chown").arg(NODE_USER).arg(&runtime));
        }
        let mut cmd = Command::new("sudo");
        cmd.args(["-u", NODE_USER, "-H", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", runtime.display()))
            .arg(program);
        cmd
    }

    /// ansible-playbook on the controller (root) against the node over ssh,
    /// `vars` given as Zuul gives a job's ([`crate::ansible::zuul_layout`]):
    /// the node's inventory variables, `zuul` an extra var.
    pub fn playbook(&self, core: Core, collections: &Path, playbook: &str, vars: &Value) -> (bool, String) {
        crate::ansible::playbook_on(core, collections, playbook, vars, &self.host)
    }
}

impl Drop for NodeUser {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = std::fs::remove_file(format!("/etc/sudoers.d/{NODE_USER}"));
        let _ = Command::new("userdel").args(["-r", NODE_USER]).output();
    }
}
