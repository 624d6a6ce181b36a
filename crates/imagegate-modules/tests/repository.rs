//! Checks over the repository as a whole: the Zuul configuration against
//! Zuul's own schemas, the documentation, the Galaxy package.

use std::process::Command;

use imagegate_testkit::repo_root;
use imagegate_testkit::tools::venv_tool;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Issue 24's measure, kept: no function of the crates (the test kit left
/// out) is longer than 80 lines. The measure itself finds long ones.
#[test]
fn no_function_is_longer_than_80_lines() {
    let script = repo_root().join("tools/long-functions.py");
    let (ok, out) = run(Command::new("python3").arg(&script));
    assert!(ok, "{out}");
    assert!(out.contains("0 functions longer than 80 lines"), "{out}");
    let (ok, out) = run(Command::new("python3").arg(&script).arg("20"));
    assert!(!ok && out.contains("crates/imagegate-registry/src/promotion.rs"), "{out}");
}

#[test]
fn zuul_config_loads_with_zuuls_schemas() {
    let (ok, out) = run(Command::new(venv_tool("python3"))
        .arg(repo_root().join("tools/check-zuul-config.py"))
        .arg(repo_root()));
    assert!(ok, "{out}");
    let defined: usize = std::fs::read_dir(repo_root().join("zuul.d"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().matches("\n- job:").count())
        .sum();
    assert!(defined >= 9, "the container and docker-image jobs are defined");
    assert!(out.contains(&format!("{defined} jobs")), "every job was checked: {out}");
}

const MODULES: [&str; 5] = [
    "registry_mirror",
    "container_retag",
    "container_push",
    "container_build",
    "registries_conf",
];

fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "_build" && entry.file_name() != "__pycache__" {
                copy_dir(&from, &to);
            }
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// The built module for this machine's architecture: the release build
/// tools/setup.sh put in binaries/<arch>, else this test run's own build.
fn module_binary(name: &str) -> std::path::PathBuf {
    let built = repo_root().join("binaries").join(std::env::consts::ARCH).join(name);
    if built.exists() {
        return built;
    }
    std::path::PathBuf::from(match name {
        "registry_mirror" => env!("CARGO_BIN_EXE_registry_mirror"),
        "container_retag" => env!("CARGO_BIN_EXE_container_retag"),
        "container_push" => env!("CARGO_BIN_EXE_container_push"),
        "registries_conf" => env!("CARGO_BIN_EXE_registries_conf"),
        _ => env!("CARGO_BIN_EXE_container_build"),
    })
}

/// `ansible-galaxy collection build` packs the module binaries of both
/// architectures and the docs; installed into an empty collections path,
/// `ansible-doc -l` lists every module without a warning, ansible-doc shows
/// full docs for each, and a playbook runs them by FQCN (asking the host its
/// architecture once, for its first task); one play over this host and an
/// aarch64 host runs each its own executable. A mixed-up or missing
/// architecture gets a clear failure, not an exec format error.
#[test]
fn galaxy_package_installs_and_runs() {
    use imagegate_testkit::{Kind, TestRegistry};
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let root = repo_root();
    for dir in ["meta", "roles", "playbooks", "plugins", "changelogs", "zuul.d"] {
        copy_dir(&root.join(dir), &src.join(dir));
    }
    for file in ["galaxy.yml", "README.md", "CHANGELOG.rst"] {
        std::fs::copy(root.join(file), src.join(file)).unwrap();
    }
    let native = std::env::consts::ARCH;
    std::fs::create_dir_all(src.join("binaries").join(native)).unwrap();
    for m in MODULES {
        std::fs::copy(module_binary(m), src.join("binaries").join(native).join(m)).unwrap();
    }
    std::fs::create_dir_all(src.join("binaries/aarch64")).unwrap();
    for (m, path) in imagegate_testkit::ansible::release_binaries("aarch64") {
        std::fs::copy(path, src.join("binaries/aarch64").join(m)).unwrap();
    }
    let coll = work.path().join("collections");
    let home = work.path().join("home");
    let ansible = |tool: &str| {
        let mut c = Command::new(venv_tool(tool));
        c.env("ANSIBLE_COLLECTIONS_PATH", &coll)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_NOCOLOR", "1");
        c
    };
    let (ok, out) = run(ansible("ansible-galaxy")
        .args(["collection", "build", "--output-path"])
        .arg(work.path())
        .arg(&src));
    assert!(ok, "{out}");
    let tarball = work.path().join("imagegate-containers-0.2.0.tar.gz");
    let (ok, listing) = run(Command::new("tar").arg("tzf").arg(&tarball));
    assert!(ok);
    for m in MODULES {
        for arch in [native, "aarch64"] {
            assert!(listing.contains(&format!("binaries/{arch}/{m}\n")), "{arch} {m} packed:\n{listing}");
        }
        assert!(listing.contains(&format!("plugins/modules/{m}.yml")), "{m} docs packed");
        assert!(listing.contains(&format!("plugins/modules/{m}.py")), "{m} doc stub packed");
        assert!(
            !listing.contains(&format!("plugins/modules/{m}\n")),
            "no binary in plugins/modules:\n{listing}"
        );
    }
    let (ok, out) = run(ansible("ansible-galaxy")
        .args(["collection", "install", "-p"])
        .arg(&coll)
        .arg(&tarball));
    assert!(ok, "{out}");
    let (ok, list) = run(ansible("ansible-doc").args(["-l", "imagegate.containers"]));
    assert!(ok, "{list}");
    for m in MODULES {
        assert!(
            list.contains(&format!("imagegate.containers.{m} ")),
            "ansible-doc -l lists {m}:\n{list}"
        );
    }
    assert!(
        !list.contains("WARNING") && !list.contains("UTF-8"),
        "ansible-doc -l warns:\n{list}"
    );
    for m in MODULES {
        let (ok, doc) = run(ansible("ansible-doc").arg(format!("imagegate.containers.{m}")));
        assert!(ok, "{doc}");
        for part in ["OPTIONS", "ATTRIBUTES", "check_mode", "EXAMPLES", "RETURN VALUES"] {
            assert!(doc.contains(part), "ansible-doc {m} lacks {part}:\n{doc}");
        }
    }

    let reg = TestRegistry::seeded(Kind::Distribution, &[(4, "gal/app:v1")]);
    let play = work.path().join("play.yml");
    std::fs::write(
        &play,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  module_defaults:\n    group/imagegate.containers.registry:\n      registries: {{'{h}': {{plain_http: true}}}}\n  tasks:\n    - imagegate.containers.registry_mirror:\n        images: [{{src: '{h}/gal/app:v1', dest: '{h}/gal/copy'}}]\n      register: r\n    - imagegate.containers.registry_mirror:\n        images: [{{src: '{h}/gal/app:v1', dest: '{h}/gal/copy'}}]\n      register: again\n    - ansible.builtin.assert:\n        that: [r is changed, again is not changed, r.ansible_facts.imagegate_architecture == '{a}', again.ansible_facts is not defined]\n",
            h = reg.host,
            a = native
        ),
    )
    .unwrap();
    let (ok, out) = run(ansible("ansible-playbook")
        .args(["-i", "localhost,", "-c", "local", "-vvv"])
        .arg(&play));
    assert!(ok, "{out}");
    assert_eq!(reg.digest("gal/copy:v1"), reg.digest("gal/app:v1"));
    assert!(out.contains("EXEC /bin/sh"), "-vvv shows the commands run: {out}");
    assert_eq!(
        out.matches("uname -m").count(),
        1,
        "one architecture probe, for the first task: {out}"
    );
    assert!(out.contains(&format!("running binaries/{native}/registry_mirror")), "{out}");

    // The same installed collection in one play over this host and an
    // aarch64 host: each is sent, and runs, the executable of its own
    // architecture (the aarch64 one under qemu).
    let fleet = work.path().join("fleet.yml");
    std::fs::write(
        &fleet,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - imagegate.containers.registry_mirror:\n        images: [{{src: '{h}/gal/app:v1', dest: '{h}/gal/{{{{ inventory_hostname }}}}'}}]\n        registries: {{'{h}': {{plain_http: true}}}}\n      register: r\n    - ansible.builtin.assert:\n        that: [r is changed, \"r.ansible_facts.imagegate_architecture == ('aarch64' if inventory_hostname == 'arm' else '{native}')\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    let shell = imagegate_testkit::arch::aarch64_shell(work.path());
    let inventory = work.path().join("fleet-inventory.yml");
    std::fs::write(
        &inventory,
        format!(
            "all:\n  hosts:\n    here: {{ansible_connection: local}}\n    arm: {{ansible_connection: local, ansible_shell_executable: '{}'}}\n",
            shell.display()
        ),
    )
    .unwrap();
    let (ok, out) = run(ansible("ansible-playbook").arg("-vvv").arg("-i").arg(&inventory).arg(&fleet));
    assert!(ok, "{out}");
    let installed = coll.join("ansible_collections/imagegate/containers/binaries");
    for (host, arch) in [("here", native), ("arm", "aarch64")] {
        assert_eq!(reg.digest(&format!("gal/{host}:v1")), reg.digest("gal/app:v1"), "{host}");
        let put = format!("<{host}> PUT {}/{arch}/registry_mirror TO", installed.display());
        assert!(out.contains(&put), "{put}:\n{out}");
    }

    // A collection whose x86_64 directory holds an aarch64 executable.
    let first = installed.join(native).join("registry_mirror");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[18] = if native == "aarch64" { 0x3E } else { 0xB7 };
    bytes[19] = 0x00;
    std::fs::write(&first, bytes).unwrap();
    let (ok, out) = run(ansible("ansible-playbook").args(["-i", "localhost,", "-c", "local"]).arg(&play));
    assert!(!ok);
    assert!(
        out.contains(&format!("binaries/{native}/registry_mirror is not an {native} executable")),
        "{out}"
    );
    assert!(!out.contains("Exec format error"), "{out}");

    // A collection without this architecture's executables.
    std::fs::remove_dir_all(installed.join(native)).unwrap();
    let (ok, out) = run(ansible("ansible-playbook").args(["-i", "localhost,", "-c", "local"]).arg(&play));
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "has no executable for {native}, the architecture of localhost (this collection carries aarch64)"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("rustup target add {native}-unknown-linux-musl")), "{out}");
}

/// The docs build with Sphinx and zuul-sphinx without a warning, and
/// document every job, role (every input in its argument specs) and module.
#[test]
fn docs_build_cleanly_and_cover_everything() {
    let root = repo_root();
    let out = tempfile::tempdir().unwrap();
    let (ok, log) = run(Command::new(venv_tool("sphinx-build"))
        .args(["-W", "-q", "-b", "html"])
        .arg(root.join("docs"))
        .arg(out.path()));
    assert!(ok, "sphinx-build -W failed:\n{log}");
    let html = |page: &str| std::fs::read_to_string(out.path().join(page)).unwrap();
    let (jobs, roles, modules) = (html("jobs.html"), html("roles.html"), html("modules.html"));

    let mut zuul = String::new();
    for entry in std::fs::read_dir(root.join("zuul.d")).unwrap() {
        zuul.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let job_names: Vec<&str> = zuul.lines().filter_map(|l| l.trim().strip_prefix("name: ")).collect();
    assert!(job_names.len() >= 6);
    for job in job_names {
        assert!(jobs.contains(&format!("id=\"job-{job}\"")), "job {job} is not documented");
    }
    for entry in std::fs::read_dir(root.join("roles")).unwrap() {
        let role = entry.unwrap().file_name().into_string().unwrap();
        assert!(roles.contains(&format!("id=\"role-{role}\"")), "role {role} is not documented");
        let readme = std::fs::read_to_string(root.join(format!("roles/{role}/README.rst"))).unwrap();
        let specs = std::fs::read_to_string(root.join(format!("roles/{role}/meta/argument_specs.yaml")))
            .unwrap_or_else(|_| panic!("role {role} has no meta/argument_specs.yaml"));
        // Options are the keys indented six spaces under `options:`.
        for option in keys_indented(&specs, 6) {
            assert!(
                readme.contains(&format!(".. zuul:rolevar:: {option}")),
                "role {role}: input {option} has no zuul:rolevar in README.rst"
            );
        }
    }
    for entry in std::fs::read_dir(root.join("plugins/modules")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(module) = name.strip_suffix(".yml") {
            assert!(
                modules.contains(&format!("imagegate.containers.{module}")),
                "module {module} is not documented"
            );
            // The options of the doc fragments it extends are on its page too.
            let section = modules
                .split(&format!("<section id=\"imagegate-containers-{}\">", module.replace('_', "-")))
                .nth(1)
                .unwrap_or_else(|| panic!("module {module} has no section"));
            let section = section.split("<section id=\"imagegate-containers-").next().unwrap();
            let sidecar = std::fs::read_to_string(root.join("plugins/modules").join(&name)).unwrap();
            for fragment in sidecar
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- imagegate.containers."))
                .filter(|f| !f.ends_with(':'))
            {
                let text = std::fs::read_to_string(root.join(format!("plugins/doc_fragments/{fragment}.py"))).unwrap();
                // Options are the keys indented two spaces under `options:`.
                for option in keys_indented(&text, 2) {
                    assert!(
                        section.contains(&format!("<strong>{option}</strong>")),
                        "module {module}: option {option} of doc fragment {fragment} is not on its page"
                    );
                }
            }
        }
    }
}

/// docs/benchmarks.md cannot drift from bench/results: its generated blocks
/// hold exactly their result files' reports, every result file it names
/// exists, and every result file's commit is in the history
/// (`bench/docs.py --check`). The check itself fails on a drifted block.
#[test]
fn the_benchmark_page_matches_its_result_files() {
    let root = repo_root();
    let (ok, log) = run(Command::new("python3").arg(root.join("bench/docs.py")).arg("--check"));
    assert!(ok, "{log}");
    // A copy of the page with one figure of a generated block changed.
    let page = std::fs::read_to_string(root.join("docs/benchmarks.md")).unwrap();
    let marker = "<!-- generated from bench/results/";
    let block = page.find(marker).expect("the page has a generated block");
    // The figures start after the marker line (which names a dated file).
    let at = block + page[block..].find("```text\n").unwrap();
    let end = at + page[at..].find("<!-- end of generated block -->").unwrap();
    let digit = at + page[at..end].find(|c: char| c.is_ascii_digit() && c != '0').unwrap();
    let copy = tempfile::tempdir().unwrap();
    for dir in ["bench", "docs"] {
        std::fs::create_dir_all(copy.path().join(dir)).unwrap();
    }
    std::fs::copy(root.join("bench/docs.py"), copy.path().join("bench/docs.py")).unwrap();
    let (ok, log) = run(Command::new("cp")
        .arg("-r")
        .arg(root.join("bench/results"))
        .arg(copy.path().join("bench")));
    assert!(ok, "{log}");
    let mut drifted = page.clone();
    drifted.replace_range(digit..digit + 1, if &page[digit..digit + 1] == "9" { "8" } else { "9" });
    std::fs::write(copy.path().join("docs/benchmarks.md"), drifted).unwrap();
    let (ok, log) = run(Command::new("python3")
        .arg(copy.path().join("bench/docs.py"))
        .arg("--check")
        .env("GIT_DIR", root.join(".git")));
    assert!(!ok && log.contains("differs from its result file"), "{log}");
}

/// One version everywhere: galaxy.yml, the crates (whose binaries the
/// modules_version check compares) and the newest release of the changelog,
/// which antsibull-changelog (the tool Ansible collections use) finds valid;
/// nothing in the docs is added in a version after it.
#[test]
fn the_release_version_is_the_same_everywhere() {
    let root = repo_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let field = |text: &str, prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let galaxy = field(&read("galaxy.yml"), "version:");
    assert_eq!(field(&read("Cargo.toml"), "version ="), galaxy, "Cargo.toml");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let releases: Vec<String> = read("changelogs/changelog.yaml")
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':').filter(|v| parse_ok(v)).map(str::to_string))
        .collect();
    let newest = releases.iter().max_by_key(|v| parse(v)).expect("a release");
    assert_eq!(newest, &galaxy, "the changelog's newest release");
    assert!(
        read("CHANGELOG.rst").contains(&format!("v{galaxy}\n")),
        "CHANGELOG.rst has v{galaxy}"
    );
    let (ok, log) = run(Command::new(venv_tool("antsibull-changelog")).arg("lint").current_dir(&root));
    assert!(ok && !log.contains("ERROR"), "{log}");
    for dir in ["plugins/modules", "plugins/doc_fragments", "roles"] {
        // grep answers 1 where nothing matches (the roles say no version).
        let out = Command::new("grep")
            .args(["-rhoE", "--include=*.yml", "--include=*.yaml", "--include=*.py"])
            .arg("version_added: *['\"]?[0-9.]+")
            .arg(root.join(dir))
            .output()
            .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{out:?}");
        for found in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
            let v = found.rsplit([' ', '"', '\'']).next().unwrap();
            assert!(parse(v) <= parse(&galaxy), "{dir}: {found} is after {galaxy}");
        }
    }
}

fn parse_ok(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The keys (`name:` lines with nothing after the colon) indented exactly
/// `indent` spaces in a YAML text.
fn keys_indented(text: &str, indent: usize) -> impl Iterator<Item = &str> {
    let prefix = " ".repeat(indent);
    text.lines().filter_map(move |l| {
        l.strip_prefix(prefix.as_str())
            .filter(|o| !o.starts_with(' '))
            .and_then(|o| o.strip_suffix(':'))
    })
}
