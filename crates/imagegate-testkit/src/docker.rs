//! A real Docker engine (Debian's `docker.io`, Engine 20.10) for tests: one
//! `dockerd` per test on a private socket, data root and exec root, with no
//! bridge and no iptables, the way it runs on these machines. Stopped by its
//! process id when dropped, its network namespaces unmounted and its
//! directories removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::run;

/// How long a daemon may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DockerDaemon {
    /// `unix:///.../docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl DockerDaemon {
    /// Starts a daemon and waits until it answers.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// Starts a daemon that reads its configuration from
    /// [`config_file`](Self::config_file) (`{}` to begin with), and can be
    /// restarted by [`restart_script`](Self::restart_script), as a role
    /// would restart the system's daemon.
    pub fn start_with_config() -> Self {
        Self::launch(true)
    }

    fn launch(with_config: bool) -> Self {
        let dir = tempfile::Builder::new().prefix("imagegate-docker-").tempdir().expect("tempdir");
        let d = dir.path();
        let sock = d.join("docker.sock");
        let mut args: Vec<String> = vec![
            "--data-root".into(),
            d.join("data").display().to_string(),
            "--exec-root".into(),
            d.join("exec").display().to_string(),
            "-H".into(),
            format!("unix://{}", sock.display()),
            "--pidfile".into(),
            d.join("docker.pid").display().to_string(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--bridge=none".into(),
            "--storage-driver=vfs".into(),
        ];
        if with_config {
            std::fs::write(d.join("daemon.json"), "{}\n").expect("daemon.json");
            args.extend(["--config-file".into(), d.join("daemon.json").display().to_string()]);
            // Stops the daemon by the pid it wrote, starts it again with the
            // same arguments, and waits until it answers.
            let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
            let script = format!(
                "#!/bin/sh\nset -e\npid=$(cat '{pidfile}')\nkill \"$pid\"\n\
                 for i in $(seq 200); do kill -0 \"$pid\" 2>/dev/null || break; sleep 0.1; done\n\
                 setsid dockerd {args} >>'{log}' 2>&1 </dev/null &\n\
                 for i in $(seq 600); do DOCKER_HOST='unix://{sock}' '{client}' version >/dev/null 2>&1 && exit 0; sleep 0.1; done\n\
                 echo 'dockerd did not come back' >&2; exit 1\n",
                pidfile = d.join("docker.pid").display(),
                args = quoted.join(" "),
                log = d.join("dockerd.log").display(),
                sock = sock.display(),
                client = docker_client().display(),
            );
            std::fs::write(d.join("restart.sh"), script).expect("restart.sh");
        }
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log");
        let child = Command::new("dockerd")
            .args(&args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dockerd (is Debian's docker.io installed?): {e}"));
        let daemon = Self {
            host: format!("unix://{}", sock.display()),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ok = daemon.docker().args(["version", "--format", "{{.Server.Version}}"]).output();
            if matches!(&ok, Ok(o) if o.status.success()) {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The daemon's configuration file (with [`start_with_config`](Self::start_with_config)).
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("daemon.json")
    }

    /// A command that restarts the daemon (with [`start_with_config`](Self::start_with_config)).
    pub fn restart_script(&self) -> String {
        format!("sh {}", self.dir.path().join("restart.sh").display())
    }

    /// The process id the running daemon wrote.
    fn running_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("docker.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A `docker` command talking to this daemon.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(docker_client());
        c.env("DOCKER_HOST", &self.host);
        c
    }

    /// Imports a one-layer base image holding busybox (from the
    /// busybox-static package) as `name`: no registry is reachable here.
    pub fn import_busybox(&self, name: &str) {
        let root = self.dir.path().join("busybox-root");
        std::fs::create_dir_all(root.join("bin")).expect("rootfs");
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
        for applet in ["sh", "cat", "echo", "ls", "test"] {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
        let tar = self.dir.path().join("busybox.tar");
        run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."));
        run(self.docker().arg("import").arg(&tar).arg(name));
    }

    /// The image ID (config digest) of a local image.
    pub fn image_id(&self, name: &str) -> Option<String> {
        let out = self
            .docker()
            .args(["image", "inspect", "--format", "{{.Id}}", name])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The docker client: Debian's (`/usr/bin/docker`, the engine's own
/// version) when present, else the first on PATH.
pub fn docker_client() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

impl Drop for DockerDaemon {
    fn drop(&mut self) {
        // A restarted daemon is no longer our child: stop it by the pid it
        // wrote, which is a daemon this kit started.
        let restarted = self.running_pid().filter(|pid| self.child.as_ref().map(|c| c.id()) != Some(*pid));
        if let Some(pid) = restarted {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets dockerd stop its containerd and unmount.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("exec/netns")) {
            for e in entries.flatten() {
                let _ = Command::new("umount").arg(e.path()).status();
            }
        }
    }
}
