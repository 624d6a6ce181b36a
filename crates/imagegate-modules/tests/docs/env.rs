//! The environment the blocks run in.

use super::*;

pub(crate) struct Env {
    pub(crate) public: TestRegistry,
    pub(crate) private: TestRegistry,
    pub(crate) plain: TestRegistry,
    /// The builds API's `127.0.0.1:<port>`, once a scenario started it.
    pub(crate) zuul_api: RefCell<String>,
    /// CAs to trust besides the registries' (the builds API's), as PEM.
    pub(crate) extra_cas: RefCell<Vec<String>>,
    /// Playbook runs so far (each has a directory of its own).
    pub(crate) runs: std::cell::Cell<usize>,
    pub(crate) coll: tempfile::TempDir,
    pub(crate) _scratch_dir: tempfile::TempDir,
    pub(crate) scratch: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) auth_file: PathBuf,
}

impl Env {
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("imagegate-docs-").tempdir().expect("tempdir");
        let scratch = dir.path().to_path_buf();
        let home = scratch.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let env = Self {
            public: TestRegistry::start(Kind::DistributionTls),
            private: TestRegistry::start(Kind::DistributionTls),
            plain: TestRegistry::start(Kind::Distribution),
            zuul_api: RefCell::default(),
            extra_cas: RefCell::default(),
            runs: Default::default(),
            coll: imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!()),
            _scratch_dir: dir,
            auth_file: scratch.join("auth.json"),
            scratch,
            home,
        };
        use base64::Engine;
        let auths: serde_json::Map<String, Value> = [&env.public, &env.private]
            .iter()
            .map(|r| {
                let u = r.rw.as_ref().unwrap();
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", u.name, u.password));
                (r.host.clone(), json!({ "auth": auth }))
            })
            .collect();
        std::fs::write(&env.auth_file, json!({ "auths": auths }).to_string()).unwrap();
        env
    }

    pub(crate) fn registry(&self, stand: Stand) -> &TestRegistry {
        match stand {
            Stand::Public => &self.public,
            Stand::Private => &self.private,
            _ => &self.plain,
        }
    }

    pub(crate) fn password(&self, stand: Stand) -> String {
        self.registry(stand).rw.as_ref().unwrap().password.clone()
    }

    /// `container_registry_credentials` in the zuul-jobs shape.
    pub(crate) fn credentials(&self) -> Value {
        let entry = |r: &TestRegistry| {
            let u = r.rw.as_ref().unwrap();
            json!({"username": u.name, "password": u.password})
        };
        json!({self.public.host.clone(): entry(&self.public), self.private.host.clone(): entry(&self.private)})
    }

    /// A block as it runs here: [`HOSTS`], [`USERNAMES`], [`PATHS`] and
    /// `<version>` of [`PLACEHOLDERS`] applied, nothing else.
    pub(crate) fn substitute(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (host, stand) in HOSTS {
            let with = match stand {
                Stand::ZuulApi => self.zuul_api.borrow().clone(),
                s => self.registry(*s).host.clone(),
            };
            if !with.is_empty() {
                out = replace_host(&out, host, &with);
            }
        }
        let user = self.public.rw.as_ref().unwrap().name.clone();
        out = out
            .lines()
            .map(|l| match l.split_once("username: ") {
                Some((lead, name)) if USERNAMES.contains(&name.trim()) && lead.trim().is_empty() => format!("{lead}username: {user}"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        for (from, to) in PATHS {
            out = out.replace(from, &to.replace("<scratch>", &self.scratch.display().to_string()));
        }
        out.replace("<version>", &galaxy_version()) + "\n"
    }

    /// The CA bundle for `SSL_CERT_FILE`.
    pub(crate) fn ca_bundle(&self) -> PathBuf {
        let mut pem = String::new();
        let cas = [self.public.ca_cert.clone().unwrap(), self.private.ca_cert.clone().unwrap()];
        for ca in cas {
            pem.push_str(&std::fs::read_to_string(ca).unwrap());
        }
        for ca in self.extra_cas.borrow().iter() {
            pem.push_str(ca);
        }
        let path = self.scratch.join("ca-bundle.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// [`ENVIRONMENT`] on a command that runs blocks.
    pub(crate) fn environment(&self, cmd: &mut Command) {
        cmd.env("SSL_CERT_FILE", self.ca_bundle())
            .env("REGISTRY_AUTH_FILE", &self.auth_file)
            .env("HOME", &self.home);
    }

    /// Runs the blocks of `checks` as one playbook (a task list wrapped in a
    /// play on the local host; a play as it is), then each block's check.
    /// The first failing task fails its block; later blocks did not run.
    pub(crate) fn run_plays<'a>(&self, blocks: &Blocks<'a>, checks: Vec<Check>, vars: &Value, cwd: Option<&Path>) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut taken: Vec<(&'a Block, Assertion)> = Vec::new();
        for (file, key, check) in checks {
            match blocks.take(file, key) {
                Ok(b) => taken.push((b, check)),
                Err(e) => out.push(Outcome {
                    file: file.into(),
                    line: 0,
                    key: key.into(),
                    result: Err(e),
                }),
            }
        }
        let mut playbook = String::new();
        for (b, _) in &taken {
            let text = self.substitute(&b.text);
            if b.is_play() {
                playbook.push_str(&text);
            } else {
                let facts = b.text.contains("ansible_facts");
                playbook.push_str(&format!(
                    "- name: \"docs-test {}:{}\"\n  hosts: localhost\n  gather_facts: {facts}\n  tasks:\n",
                    b.file, b.line
                ));
                for line in text.lines() {
                    playbook.push_str(&format!("    {line}\n"));
                }
            }
        }
        self.runs.set(self.runs.get() + 1);
        let run_dir = self.scratch.join(format!("run-{}", self.runs.get()));
        std::fs::create_dir_all(&run_dir).unwrap();
        // Ansible runs local modules in the playbook's directory: a block's
        // relative paths are taken from there.
        let path = cwd.unwrap_or(&run_dir).join("docs-test-playbook.yaml");
        std::fs::write(&path, &playbook).unwrap();
        let mut cmd = ansible_playbook(CORE, self.coll.path());
        cmd.args(zuul_layout(&run_dir, &local_host(), vars)).arg(&path);
        self.environment(&mut cmd);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd).env("PWD", cwd);
        }
        let (ok, output) = run_playbook(&mut cmd);
        std::fs::write(run_dir.join("output.log"), &output).unwrap();
        // A failure outside the blocks' tasks (facts, syntax) fails them all.
        let failed_task = if ok {
            None
        } else {
            failing_task(&output).filter(|(t, _)| taken.iter().any(|(b, _)| b.task_names().contains(t)))
        };
        let mut reached = true;
        for (b, check) in taken {
            let result = if !reached {
                Err("not reached: an earlier block of the same playbook failed".to_string())
            } else if ok {
                check()
            } else {
                match &failed_task {
                    Some((task, excerpt)) if b.task_names().contains(task) => {
                        reached = false;
                        Err(format!("task {task:?} failed:\n{excerpt}"))
                    }
                    Some(_) => check(),
                    None => {
                        reached = false;
                        Err(format!("ansible-playbook failed:\n{}", tail(&output, 40)))
                    }
                }
            };
            out.push(b.outcome(result));
        }
        out
    }

    /// A copy of this checkout as a user has it after tools/setup.sh
    /// (binaries/ built), without what galaxy.yml leaves out of the package.
    pub(crate) fn repo_copy(&self, name: &str) -> Result<PathBuf, String> {
        let copy = self.scratch.join(format!("copy-{name}"));
        std::fs::create_dir_all(&copy).unwrap();
        let root = repo_root();
        let skip = [".git", "target", ".venv", ".work", "crates", "bench"];
        let entries: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !skip.iter().any(|s| p.file_name().is_some_and(|n| n == *s)))
            .filter(|p| !p.to_string_lossy().ends_with(".tar.gz"))
            .collect();
        let out = Command::new("cp")
            .arg("-a")
            .args(&entries)
            .arg(&copy)
            .output()
            .map_err(|e| e.to_string())?;
        expect(
            out.status.success(),
            &format!("copying the checkout: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
        let built = copy.join("binaries").join(std::env::consts::ARCH).join("registry_mirror");
        expect(built.is_file(), "binaries/ holds the release build (run tools/build-modules.sh)")?;
        Ok(copy)
    }

    /// Runs a shell block with bash (`-e`: every command must succeed), the
    /// commands of [`COMMANDS_NOT_RUN`] left out, in `cwd`, with the test's
    /// ansible-core first on `PATH`; returns what it printed.
    pub(crate) fn run_shell(&self, b: &Block, cwd: &Path, vars: &[(&str, &Path)]) -> Result<String, String> {
        let script: Vec<String> = self
            .substitute(&b.text)
            .lines()
            .filter(|l| !COMMANDS_NOT_RUN.iter().any(|(c, _)| l.trim_start().starts_with(c)))
            .map(String::from)
            .collect();
        let template = ansible_playbook(CORE, self.coll.path());
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-c", &script.join("\n")]).current_dir(cwd).env("PWD", cwd);
        for (k, v) in template.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let path = format!(
            "{}:{}",
            CORE.venv().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path);
        self.environment(&mut cmd);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        expect(out.status.success(), &format!("the commands failed:\n{}", tail(&text, 40)))?;
        Ok(text)
    }
}

/// Replaces `host` where it names a server (see [`HOSTS`]).
pub(crate) fn replace_host(text: &str, host: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(host) {
        let before = rest[..i].chars().last().or_else(|| out.chars().last());
        let after = &rest[i + host.len()..];
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || ".-_".contains(c)));
        let names = after.starts_with('/') || after.starts_with(":\n") || after.starts_with(": ") || after == ":";
        out.push_str(&rest[..i]);
        out.push_str(if starts && names { with } else { host });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The task that failed and the output from its header on.
pub(crate) fn failing_task(output: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = output.lines().collect();
    let fatal = lines.iter().position(|l| l.starts_with("fatal: [") || l.starts_with("failed: ["))?;
    let header = lines[..fatal].iter().rposition(|l| l.starts_with("TASK ["))?;
    let name = lines[header].trim_start_matches("TASK [").split("] ").next()?.trim_end_matches(']');
    let name = name.rsplit_once(" : ").map_or(name, |(_, n)| n).to_string();
    Some((name, lines[fatal..(fatal + 40).min(lines.len())].join("\n")))
}

pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("not so: {what}"))
    }
}

pub(crate) fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: Option<T>, want: Option<T>) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got:?}, expected {want:?}"))
    }
}

/// What a podman or buildah inspect command prints, as JSON.
pub(crate) fn local_json(tool: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(tool).args(args).output().map_err(|e| format!("{tool}: {e}"))?;
    expect(
        out.status.success(),
        &format!("{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{tool} {args:?}: {e}"))
}

/// Removes the images the build examples left in podman's storage.
pub(crate) struct LocalImages(pub(crate) Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("buildah").args(["manifest", "rm", name]).output();
            let _ = Command::new("podman").args(["rmi", "--force", name]).output();
        }
    }
}
