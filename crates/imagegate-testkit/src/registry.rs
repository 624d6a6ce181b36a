//! Real registries on 127.0.0.1: the distribution registry (Debian's
//! `docker-registry`), plain or with TLS and htpasswd, and zuul-registry
//! with TLS and bearer tokens. Each runs as a child process on a free port
//! and is stopped by its process id when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::tools::{run, venv_tool};
use crate::{free_port, random_hex, Fixtures};

/// Makes a `#[test]` for each `name => Kind` given, calling `run` (a
/// function taking a [`Kind`]) with that kind of registry.
#[macro_export]
macro_rules! test_each_kind {
    ($run:ident: $($name:ident => $kind:ident),+ $(,)?) => {
        $( #[test] fn $name() { $run($crate::Kind::$kind) } )+
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// distribution, plain HTTP, no auth.
    Distribution,
    /// distribution with TLS (a CA made for the test) and htpasswd basic auth.
    DistributionTls,
    /// zuul-registry with TLS, bearer tokens, a read-write and a read-only user.
    Zuul,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Distribution, Kind::DistributionTls, Kind::Zuul];
}

pub struct User {
    pub name: String,
    pub password: String,
}

pub struct TestRegistry {
    pub kind: Kind,
    /// `127.0.0.1:<port>`
    pub host: String,
    pub dir: TempDir,
    /// The CA that signed the server certificate (TLS kinds).
    pub ca_cert: Option<PathBuf>,
    /// A directory holding only `ca.crt`, for skopeo's `--*-cert-dir`.
    pub cert_dir: Option<PathBuf>,
    pub rw: Option<User>,
    pub ro: Option<User>,
    child: Child,
}

impl TestRegistry {
    pub fn start(kind: Kind) -> Self {
        Self::start_with(kind, false)
    }

    /// Starts a registry of `kind` already holding fixture images: see
    /// [`Self::seed_singles`].
    pub fn seeded(kind: Kind, images: &[(usize, &str)]) -> Self {
        let reg = Self::start(kind);
        reg.seed_singles(images);
        reg
    }

    /// Seeds, in order, the fixture image [`Fixtures::single`]`(n)` under
    /// `repo:tag` for each `(n, repo:tag)` of `images` (a later one under
    /// the same tag moves it).
    pub fn seed_singles(&self, images: &[(usize, &str)]) {
        let fx = Fixtures::get();
        for (n, repo_tag) in images {
            self.seed(&fx.single(*n), repo_tag);
        }
    }

    /// A distribution registry that writes an access log line per request
    /// (method, path, protocol version) to its log; see [`Self::requests`].
    pub fn start_logging_requests(kind: Kind) -> Self {
        assert_ne!(kind, Kind::Zuul, "zuul-registry keeps no access log");
        Self::start_with(kind, true)
    }

    fn start_with(kind: Kind, access_log: bool) -> Self {
        let dir = tempfile::Builder::new().prefix("imagegate-registry-").tempdir().expect("tempdir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let (ca_cert, cert_dir, server) = if kind == Kind::Distribution {
            (None, None, None)
        } else {
            let (ca, cert_dir, cert, key) = make_certs(dir.path());
            (Some(ca), Some(cert_dir), Some((cert, key)))
        };
        let user = |prefix: &str| User {
            name: format!("{prefix}-user"),
            password: format!("pw-{}", random_hex(12)),
        };
        let (rw, ro) = match kind {
            Kind::Distribution => (None, None),
            Kind::DistributionTls => (Some(user("rw")), None),
            Kind::Zuul => (Some(user("rw")), Some(user("ro"))),
        };
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = match kind {
            Kind::Distribution | Kind::DistributionTls => {
                let mut config = format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {quiet}\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: {secret}\n",
                    data = dir.path().join("data").display(),
                    secret = random_hex(16),
                    quiet = !access_log,
                );
                if let Some((cert, key)) = &server {
                    config.push_str(&format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        cert.display(),
                        key.display()
                    ));
                }
                if let Some(u) = &rw {
                    let out = run(Command::new("htpasswd").args(["-Bbn", &u.name, &u.password]));
                    let htpasswd = dir.path().join("htpasswd");
                    std::fs::write(&htpasswd, out.stdout).expect("htpasswd");
                    config.push_str(&format!(
                        "auth:\n  htpasswd:\n    realm: imagegate-test\n    path: {}\n",
                        htpasswd.display()
                    ));
                }
                let path = dir.path().join("config.yml");
                std::fs::write(&path, config).expect("config");
                let mut c = Command::new("docker-registry");
                c.arg("serve").arg(path);
                c
            }
            Kind::Zuul => {
                let (cert, key) = server.as_ref().expect("certs");
                let (rw, ro) = (rw.as_ref().expect("rw"), ro.as_ref().expect("ro"));
                let config = format!(
                    "registry:\n  address: '127.0.0.1'\n  port: {port}\n  public-url: 'https://{host}'\n  tls-cert: '{cert}'\n  tls-key: '{key}'\n  secret: '{secret}'\n  users:\n    - name: '{rwn}'\n      pass: '{rwp}'\n      access: write\n    - name: '{ron}'\n      pass: '{rop}'\n      access: read\n  storage:\n    driver: filesystem\n    root: '{data}'\n",
                    cert = cert.display(),
                    key = key.display(),
                    secret = random_hex(16),
                    rwn = rw.name,
                    rwp = rw.password,
                    ron = ro.name,
                    rop = ro.password,
                    data = dir.path().join("data").display(),
                );
                let path = dir.path().join("registry.yaml");
                std::fs::write(&path, config).expect("config");
                let mut c = Command::new(venv_tool("zuul-registry"));
                c.arg("-c").arg(path).arg("serve");
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?} registry ({cmd:?}): {e}"));
        let mut reg = Self {
            kind,
            host,
            dir,
            ca_cert,
            cert_dir,
            rw,
            ro,
            child,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{:?} registry exited ({status}):\n{}", self.kind, self.log());
            }
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} registry did not listen on {} within 60 s:\n{}",
                    self.kind,
                    self.host,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The requests of the access log (see [`Self::start_logging_requests`])
    /// as (method, path, protocol), in the order they were answered.
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.log()
            .lines()
            .filter_map(|line| {
                // 127.0.0.1 - - [date] "METHOD PATH HTTP/x" status size ...
                let request = line.split('"').nth(1)?;
                let mut parts = request.split(' ');
                let (method, path, proto) = (parts.next()?, parts.next()?, parts.next()?);
                proto
                    .starts_with("HTTP/")
                    .then(|| (method.to_string(), path.to_string(), proto.to_string()))
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `registries` entry a module needs for this registry (read-write).
    pub fn module_entry(&self) -> Value {
        let mut v = json!({});
        if self.kind == Kind::Distribution {
            v["plain_http"] = json!(true);
        }
        if let Some(ca) = &self.ca_cert {
            v["ca_cert"] = json!(ca);
        }
        if let Some(u) = &self.rw {
            v["username"] = json!(u.name);
            v["password"] = json!(u.password);
        }
        v
    }

    /// skopeo flags for using this registry on one side (`src` or `dest`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match &self.cert_dir {
            Some(d) => flags.push(format!("--{side}-cert-dir={}", d.display())),
            None => flags.push(format!("--{side}-tls-verify=false")),
        }
        if let Some(u) = &self.rw {
            flags.push(format!("--{side}-creds={}:{}", u.name, u.password));
        }
        flags
    }

    /// `skopeo ARGS... docker://<this registry>/<reference>`, with the flags
    /// that reach this registry (a command that reads, not a copy).
    fn skopeo_read(&self, args: &[&str], reference: &str) -> Command {
        let mut cmd = Command::new("skopeo");
        cmd.args(args)
            .args(self.skopeo_flags("src").iter().map(|f| f.replace("--src-", "--")))
            .arg(format!("docker://{}/{reference}", self.host));
        cmd
    }

    /// The manifest digest a tag has, asked with skopeo (independently of
    /// the engine under test), or `None` if the tag does not exist.
    pub fn digest(&self, repo_tag: &str) -> Option<String> {
        let out = self.skopeo_read(&["inspect", "--raw"], repo_tag).output().expect("skopeo");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("manifest unknown") || err.contains("not found") || err.contains("404") || err.contains("MANIFEST_UNKNOWN"),
                "skopeo inspect {repo_tag} failed unexpectedly: {err}"
            );
            return None;
        }
        Some(imagegate_registry::Digest::of(&out.stdout).to_string())
    }

    /// Asserts that `repo` here serves the manifest `digest` by its digest
    /// (it arrived unchanged); `what` is the failure's message.
    pub fn assert_holds(&self, repo: &str, digest: &str, what: &str) {
        assert_eq!(self.digest(&format!("{repo}@{digest}")).as_deref(), Some(digest), "{what}");
    }

    /// The tags of a repository, listed with skopeo (sorted; empty when the
    /// repository has none or is unknown).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = self.skopeo_read(&["list-tags"], repo).output().expect("skopeo");
        if !out.status.success() {
            return Vec::new();
        }
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo list-tags JSON");
        sorted_strings(&listed["Tags"])
    }

    /// The raw manifest bytes of a tag or digest, through skopeo.
    pub fn raw_manifest(&self, repo_ref: &str) -> Vec<u8> {
        run(&mut self.skopeo_read(&["inspect", "--raw"], repo_ref)).stdout
    }

    /// Seeds the fixture image [`Fixtures::single`]`(n)` under
    /// `repo_tag(n)` for each `n` of `images`, in order.
    pub fn seed_each(&self, images: std::ops::Range<usize>, repo_tag: impl Fn(usize) -> String) {
        let fx = Fixtures::get();
        for n in images {
            self.seed(&fx.single(n), &repo_tag(n));
        }
    }

    /// Copies a fixture (an OCI layout reference `oci:<dir>:<tag>`) to
    /// `repo:tag` here with skopeo, all platforms.
    pub fn seed(&self, oci_ref: &str, repo_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--quiet"])
            .args(self.skopeo_flags("dest"))
            .arg(oci_ref)
            .arg(format!("docker://{}/{repo_tag}", self.host));
        run(&mut cmd);
    }

    /// Where the registry keeps its files (to tell whether anything was written).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// The strings of a JSON list (a tag list), sorted; what is not a string is
/// left out, and anything but a list gives none.
pub(crate) fn sorted_strings(list: &Value) -> Vec<String> {
    let mut strings: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    strings.sort();
    strings
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Stop only the process we started, by its id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a CA and a server certificate for 127.0.0.1 and localhost with
/// openssl. Returns (ca.crt, dir holding only ca.crt, server.crt, server.key).
pub(crate) fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let tls = dir.join("tls");
    let cert_dir = dir.join("certs.d");
    std::fs::create_dir_all(&tls).expect("tls dir");
    std::fs::create_dir_all(&cert_dir).expect("certs dir");
    let p = |n: &str| tls.join(n);
    // openssl ARGS... then each (flag, file in tls/) pair.
    let openssl = |args: &[&str], files: &[(&str, &str)]| {
        let mut cmd = Command::new("openssl");
        cmd.args(args);
        for (flag, name) in files {
            cmd.arg(flag).arg(p(name));
        }
        run(cmd.stderr(Stdio::null()));
    };
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=imagegate test CA",
        ],
        &[("-keyout", "ca.key"), ("-out", "ca.crt")],
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[("-keyout", "server.key"), ("-out", "server.csr")],
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        &["x509", "-req", "-days", "2", "-CAcreateserial"],
        &[
            ("-in", "server.csr"),
            ("-CA", "ca.crt"),
            ("-CAkey", "ca.key"),
            ("-out", "server.crt"),
            ("-extfile", "ext.cnf"),
        ],
    );
    std::fs::copy(p("ca.crt"), cert_dir.join("ca.crt")).expect("copy ca");
    (p("ca.crt"), cert_dir, p("server.crt"), p("server.key"))
}
