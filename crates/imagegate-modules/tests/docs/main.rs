//! Docs as tests: every code block the documentation shows (README.md,
//! docs/, the roles' README.rst, the modules' EXAMPLES) is run here, against
//! the test kit's real registries and a real ansible-playbook, or is marked
//! in the docs source with the reason it cannot run here. tests/docs/extract.py
//! finds the blocks and their markers; this file decides how each runs.
//!
//! A block is changed only by the rules of [`HOSTS`], [`USERNAMES`],
//! [`PATHS`] and [`PLACEHOLDERS`] (registry hosts, credentials, system
//! paths, placeholders a reader fills in); what the examples leave to the
//! environment comes from [`ENVIRONMENT`], and the variables they read are
//! given values pointing at the test registries. A block with no language,
//! or the language `text`, is output or a diagram, not an example
//! ([`not_an_example`]); it is counted and listed. Anything else that is
//! neither run by a scenario below nor marked fails the test, as does every
//! block that fails, each named by its file and line.
//!
//! Blocks that are Ansible task lists run in a play on the local host
//! (`ansible_connection: local`); a block that is a play runs as it is.
//! Ansible runs local modules in the playbook's directory, so a block's
//! relative paths (container_build's `context: images/base`) are taken
//! from there. Zuul configuration snippets are checked with Zuul's own
//! schemas (tests/docs/extract.py zuul), as tools/check-zuul-config.py
//! checks zuul.d.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use imagegate_testkit::ansible::{ansible_playbook, local_host, run_playbook, zuul_layout, zuul_returned, Core};
use imagegate_testkit::tools::venv_tool;
use imagegate_testkit::webapi::ZuulBuildsApi;
use imagegate_testkit::{galaxy_version, repo_root, run_module, Fixtures, Kind, TestRegistry};
use serde_json::{json, Value};

/// One ansible-core is enough here: the module tests cover each release.
const CORE: Core = Core::V2_18;

/// Which test server stands for a host the docs name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stand {
    /// Public registries the docs pull from (TLS, basic auth here).
    Public,
    /// The site's own registry (TLS, basic auth).
    Private,
    /// A plain-HTTP registry on the node (the docs' `plain_http: true`).
    Plain,
    /// Zuul's web API (the test kit's builds API, over TLS).
    ZuulApi,
}

impl Stand {
    fn name(self) -> &'static str {
        match self {
            Stand::Public => "the public registry (distribution, TLS, basic auth)",
            Stand::Private => "the private registry (distribution, TLS, basic auth)",
            Stand::Plain => "the plain-HTTP registry (distribution)",
            Stand::ZuulApi => "the test kit's Zuul builds API (TLS)",
        }
    }
}

/// Hosts of the docs and what stands for them (`127.0.0.1:<port>`). A host
/// is replaced only where it names a server: before `/` (an image reference
/// or URL) or as a mapping key (`host:` at the end of a line or before a
/// space). Where a block only writes a name into a file (registries_conf's
/// `namespaces: [docker.io, quay.io]`) it stays.
const HOSTS: &[(&str, Stand)] = &[
    ("quay.io", Stand::Public),
    ("docker.io", Stand::Public),
    ("ghcr.io", Stand::Public),
    ("registry.example.com", Stand::Private),
    ("localhost:5000", Stand::Plain),
    ("zuul.example.com", Stand::ZuulApi),
];

/// Usernames the docs write: each is the read-write user of the test
/// registry its entry stands for (the test kit names them all `rw-user`).
/// Passwords are the variables the docs use (`{{ mirror_password }}` ...),
/// given as variables with the test registries' passwords.
const USERNAMES: &[&str] = &["mirror", "pusher", "robot"];

/// System paths the docs write to, and where they go here (under the
/// scratch directory, `<scratch>`).
const PATHS: &[(&str, &str)] = &[
    ("/var/log/", "<scratch>/var/log/"),
    ("/etc/containers/registries.conf.d/", "<scratch>/etc/containers/registries.conf.d/"),
    ("/usr/share/ansible/collections", "<scratch>/usr/share/ansible/collections"),
];

/// Placeholders a reader fills in, and what fills them here.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("<version>", "galaxy.yml's version"),
    // Only where a module checks the digest (the declared-by-digest file);
    // in an artifact's metadata it is data and stays.
    ("sha256:1111...", "the digest the block's first image has in the test registry"),
];

/// What the examples leave to the node, and how the node is set up here.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SSL_CERT_FILE",
        "the test CAs (the public registries' certificates are in the system store)",
    ),
    (
        "REGISTRY_AUTH_FILE",
        "credentials for every test registry (as `podman login` leaves them)",
    ),
    (
        "HOME",
        "<scratch>/home (layouts and the installed collection stay out of the real one)",
    ),
    (
        "ANSIBLE_COLLECTIONS_PATH",
        "the collection the test kit builds; `ansible-galaxy collection install` installs into <scratch>",
    ),
];

/// Commands of shell blocks that are not run, with the reason. The rest of
/// their block runs.
const COMMANDS_NOT_RUN: &[(&str, &str)] = &[(
    "bash tools/build-modules.sh",
    "a release build of every module for two architectures takes minutes here; tools/setup.sh ran it, and the scratch copy packs its binaries/",
)];

/// Blocks with no language or `text`: output, messages and diagrams.
fn not_an_example(b: &Block) -> bool {
    b.lang.is_empty() || b.lang == "text"
}

#[test]
fn every_docs_example_runs() {
    let started = Instant::now();
    let blocks = extract();
    let env = Env::new();
    let mut results: Vec<Outcome> = Vec::new();
    let groups: Vec<(&str, Scenario)> = vec![
        ("mirror", mirror),
        ("build and push", build_and_push),
        ("promotion", promotion),
        ("shell", shell),
        ("zuul configuration", zuul_config),
    ];
    let claimed = Blocks::new(&blocks);
    for (name, group) in &groups {
        let t = Instant::now();
        let out = group(&env, &claimed);
        eprintln!("docs-test: {name}: {} blocks in {:.1} s", out.len(), t.elapsed().as_secs_f64());
        results.extend(out);
    }
    report(&blocks, &claimed, &results, started);
}

mod blocks;
mod env;
mod scenarios;

use blocks::*;
use env::*;
use scenarios::*;

#[test]
fn hosts_are_replaced_only_where_they_name_a_server() {
    let text =
        "src: quay.io/a:1\nregistries:\n  quay.io:\n    x: 1\nnamespaces: [docker.io, quay.io]\nname: quay.io is fine\nnotquay.io/x\n";
    assert_eq!(
        replace_host(text, "quay.io", "127.0.0.1:1"),
        "src: 127.0.0.1:1/a:1\nregistries:\n  127.0.0.1:1:\n    x: 1\nnamespaces: [docker.io, quay.io]\nname: quay.io is fine\nnotquay.io/x\n"
    );
    assert_eq!(
        replace_host("api: https://zuul.example.com/api", "zuul.example.com", "h:2"),
        "api: https://h:2/api"
    );
}
