//! The `imagegate` command end to end against the test kit's real
//! registries: what it prints, what it changes, and its exit codes.

use std::io::Write;
use std::process::{Command, Stdio};

use imagegate_testkit::{Fixtures, HostileRegistry, Hostility, Kind, TestRegistry};
use serde_json::Value;

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn imagegate(args: &[&str], stdin: Option<&str>) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // No auth file of the machine's user gets in the way.
        .env("HOME", "/nonexistent")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    let mut child = cmd.spawn().expect("imagegate runs");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("imagegate ends");
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("imagegate {args:?}: exit {}\n{}{}", ran.code, ran.stdout, ran.stderr);
    ran
}

#[test]
fn copy_shows_what_it_would_do_then_does_it_and_tags_lists_it() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed(&fx.multi(), "src/app:v1");
    let (src, dest) = (format!("{}/src/app:v1", reg.host), format!("{}/dst/app:v1", reg.host));
    let plain = ["--plain-http", reg.host.as_str()];

    let dry = imagegate(&[&plain[..], &["copy", &src, &dest, "--dry-run"]].concat(), None);
    assert_eq!(dry.code, 0);
    assert!(dry.stdout.contains(&format!("+ {dest} sha256:")), "{}", dry.stdout);
    assert!(dry.stdout.contains("would change 1 of 1 image tags"), "{}", dry.stdout);
    assert_eq!(reg.digest("dst/app:v1"), None, "--dry-run copied");

    let done = imagegate(&[&plain[..], &["copy", &src, &dest]].concat(), None);
    assert_eq!(done.code, 0);
    assert!(done.stdout.contains("changed 1 of 1 image tags"), "{}", done.stdout);
    assert_eq!(reg.digest("dst/app:v1"), reg.digest("src/app:v1"), "the index, every platform");
    assert!(!done.stderr.is_empty(), "progress lines go to stderr");
    let quiet = imagegate(&[&plain[..], &["copy", &src, &dest, "--quiet"]].concat(), None);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""));
    assert!(quiet.stdout.contains("already up to date"), "{}", quiet.stdout);

    let tags = imagegate(&[&plain[..], &["tags", &format!("{}/dst/app", reg.host)]].concat(), None);
    assert_eq!((tags.code, tags.stdout.as_str()), (0, "v1\n"));
    let none = imagegate(
        &[&plain[..], &["tags", &format!("{}/dst/app", reg.host), "--regex", "^v2"]].concat(),
        None,
    );
    assert_eq!((none.code, none.stdout.as_str()), (0, ""));

    // inspect: the index's platforms, then a signature seen once it is there.
    let shown = imagegate(&[&plain[..], &["inspect", &dest, "--json"]].concat(), None);
    let doc: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(doc["digest"].as_str(), reg.digest("dst/app:v1").as_deref());
    let mut platforms: Vec<&str> = doc["platforms"]
        .as_array()
        .expect("an index")
        .iter()
        .filter_map(|p| p["platform"].as_str())
        .collect();
    // The index lists them in the order of its build.
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert!(doc["signature"].is_null(), "{doc}");
    let digest = reg.digest("dst/app:v1").expect("copied");
    reg.seed(&fx.single(7), &format!("dst/app:{}.sig", digest.replace(':', "-")));
    let signed = imagegate(&[&plain[..], &["inspect", &dest]].concat(), None);
    assert_eq!(signed.code, 0);
    assert!(signed.stdout.contains("an index of 2 images; signed"), "{}", signed.stdout);
    // A referrer, listed in the referrers tag schema (distribution has no
    // referrers API): an index under `sha256-<hex>`.
    let child = &doc["platforms"][0];
    let listed = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child["digest"],
                       "size": child["size"], "artifactType": "application/vnd.example.sbom"}],
    });
    let url = format!("http://{}/v2/dst/app/manifests/{}", reg.host, digest.replace(':', "-"));
    let put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(listed.to_string())
        .arg(&url)
        .status()
        .expect("curl runs");
    assert!(put.success(), "PUT {url}");
    let referred = imagegate(&[&plain[..], &["inspect", &dest, "--json"]].concat(), None);
    let doc: Value = serde_json::from_str(&referred.stdout).expect("JSON");
    assert_eq!(
        doc["referrers"],
        serde_json::json!([{"digest": child["digest"], "artifact_type": "application/vnd.example.sbom"}])
    );
    assert_eq!(doc["cosign_tags"], serde_json::json!([format!("{}.sig", digest.replace(':', "-"))]));
    assert!(doc["msg"].as_str().unwrap_or_default().ends_with("; signed; 1 referrer"), "{doc}");

    // --json: the module's result document.
    let json = imagegate(&[&plain[..], &["copy", &src, &dest, "--json"]].concat(), None);
    let doc: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["failed"], false);
    assert_eq!(doc["images"][0]["dest_digest"].as_str(), reg.digest("dst/app:v1").as_deref());
}

#[test]
fn promote_from_a_yaml_file_and_restore_from_its_record() {
    let reg = TestRegistry::seeded(
        Kind::Distribution,
        &[(1, "stage/app:candidate"), (2, "stage/app:current"), (3, "stage/app:change_9")],
    );
    let before = reg.digest("stage/app:current");
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("record.json");
    let file = dir.path().join("promote.yaml");
    let (host, record_file) = (&reg.host, record.display());
    std::fs::write(
        &file,
        format!("# a promotion, as container_retag takes it\nimages:\n  - repository: {host}/stage/app\n    src_tag: candidate\n    tags: [current]\n    remove_tags: [change_9]\nrecord_file: {record_file}\nregistries:\n  {host}:\n    plain_http: true\n"),
    )
    .expect("write");
    let file = file.to_str().expect("path");

    let dry = imagegate(&["promote", "-f", file, "--dry-run"], None);
    assert_eq!(dry.code, 0);
    assert!(dry.stdout.contains("would move 1 tags and remove 1 tags"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(&format!("- {}/stage/app:change_9 sha256:", reg.host)),
        "{}",
        dry.stdout
    );
    assert_eq!(reg.digest("stage/app:current"), before);

    let done = imagegate(&["promote", "-f", file], None);
    assert_eq!(done.code, 0);
    assert_eq!(reg.digest("stage/app:current"), reg.digest("stage/app:candidate"));
    assert_eq!(reg.digest("stage/app:change_9"), None);

    let restored = imagegate(&["--plain-http", &reg.host, "restore", record.to_str().expect("path")], None);
    assert_eq!(restored.code, 0);
    assert!(restored.stdout.contains("put back 2 tags"), "{}", restored.stdout);
    assert_eq!(reg.digest("stage/app:current"), before);
    assert!(reg.digest("stage/app:change_9").is_some());
}

#[test]
fn mirror_reads_its_options_from_stdin_and_rm_tag_removes_one_tag() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    for t in ["1.0", "1.1", "old"] {
        reg.seed(&fx.single(4), &format!("m/app:{t}"));
    }
    let options = serde_json::json!({
        "images": [{"src": format!("{}/m/app", reg.host), "dest": format!("{}/n/app", reg.host), "tag_regex": "^1\\."}],
        "registries": {reg.host.clone(): {"plain_http": true}},
    });
    let done = imagegate(&["mirror", "-f", "-"], Some(&options.to_string()));
    assert_eq!(done.code, 0);
    assert_eq!(reg.tags("n/app"), ["1.0", "1.1"]);

    let rm = imagegate(&["--plain-http", &reg.host, "rm-tag", &format!("{}/m/app:old", reg.host)], None);
    assert_eq!(rm.code, 0);
    assert_eq!(reg.tags("m/app"), ["1.0", "1.1"], "only that tag went");

    // Twelve failed entries: the message names ten, the result has all.
    let missing: Vec<Value> = (0..12)
        .map(|i| serde_json::json!({"src": format!("{}/none/app{i:02}:1", reg.host), "dest": format!("{}/n/x{i:02}", reg.host)}))
        .collect();
    let options = serde_json::json!({"images": missing, "registries": {reg.host.clone(): {"plain_http": true}}});
    let failed = imagegate(&["mirror", "-f", "-", "--json"], Some(&options.to_string()));
    assert_eq!(failed.code, 1);
    let doc: Value = serde_json::from_str(&failed.stdout).expect("JSON");
    let msg = doc["msg"].as_str().expect("msg");
    assert!(
        msg.starts_with("12 images failed: ") && msg.ends_with("; and 2 more (each image's error is in its entry of images)"),
        "{msg}"
    );
    assert!(msg.contains("none/app09") && !msg.contains("none/app10"), "{msg}");
    let errors = doc["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter(|i| i["failed"] == true && i["msg"].is_string())
        .count();
    assert_eq!(errors, 12, "{doc}");
}

#[test]
fn exit_codes_say_bad_input_failure_and_refusal() {
    let reg = TestRegistry::start(Kind::Distribution);
    // Bad input: named, nothing done (2).
    let unknown = serde_json::json!({"images": [{"src": "r.example/a:1", "dest": "r.example/b"}], "colour": "red"});
    let bad = imagegate(&["mirror", "-f", "-"], Some(&unknown.to_string()));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("colour"), "{}", bad.stderr);
    let no_tag = imagegate(&["rm-tag", &format!("{}/r/app", reg.host)], None);
    assert_eq!(no_tag.code, 2, "{}", no_tag.stderr);
    let not_yaml = imagegate(&["promote", "-f", "-"], Some("images: [unclosed"));
    assert_eq!(not_yaml.code, 2);
    assert!(not_yaml.stderr.contains("not YAML or JSON"), "{}", not_yaml.stderr);

    // A failure (1): the source is not there; a password given is never
    // printed, whatever is.
    let secret = "pw-never-shown-4711";
    let options = serde_json::json!({
        "images": [{"src": format!("{}/no/such:v1", reg.host), "dest": format!("{}/x/y:v1", reg.host)}],
        "registries": {reg.host.clone(): {"plain_http": true, "username": "u", "password": secret}},
    });
    for json in [false, true] {
        let args: &[&str] = if json {
            &["mirror", "-f", "-", "--json"]
        } else {
            &["mirror", "-f", "-"]
        };
        let failed = imagegate(args, Some(&options.to_string()));
        assert_eq!(failed.code, 1);
        assert!(!failed.stdout.contains(secret) && !failed.stderr.contains(secret));
    }
    let missing = imagegate(
        &[
            "--plain-http",
            &reg.host,
            "copy",
            &format!("{}/no/such:v1", reg.host),
            &format!("{}/x/y:v1", reg.host),
        ],
        None,
    );
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no/such"), "{}", missing.stderr);

    // A refusal (3): the registry does not keep the tag the promotion
    // writes, so it reads back changed underneath.
    let hostile = HostileRegistry::start(Hostility {
        forget_tag_puts: true,
        ..Default::default()
    });
    let options = serde_json::json!({
        "images": [{"repository": format!("{}/{}", hostile.host, hostile.repository), "src_tag": "v1", "tags": ["stable"]}],
        "registries": {hostile.host.clone(): {"plain_http": true}},
    });
    let refused = imagegate(&["promote", "-f", "-", "--json"], Some(&options.to_string()));
    assert_eq!(refused.code, 3);
    let doc: Value = serde_json::from_str(&refused.stdout).expect("JSON");
    assert!(doc["msg"].as_str().unwrap_or_default().contains("changed underneath"), "{doc}");
}

#[test]
fn completion_and_the_manual_page_come_from_the_command_definitions() {
    let bash = imagegate(&["completions", "bash"], None);
    assert_eq!(bash.code, 0);
    for command in ["copy", "mirror", "promote", "restore", "tags", "inspect", "rm-tag"] {
        assert!(bash.stdout.contains(command), "{command} is not completed");
    }
    // bash loads it and completes the command with it.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("imagegate.bash");
    std::fs::write(&script, &bash.stdout).expect("write");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p imagegate", script.display()))
        .output()
        .expect("bash");
    let registered = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && registered.contains("imagegate"), "{registered}");
    let zsh = imagegate(&["completions", "zsh"], None);
    assert!(zsh.code == 0 && zsh.stdout.starts_with("#compdef imagegate"), "{}", zsh.stdout);

    let man = imagegate(&["man"], None);
    assert_eq!(man.code, 0);
    assert!(man.stdout.contains(".TH imagegate"), "{}", man.stdout);
    assert!(
        man.stdout.contains("rm\\-tag") && man.stdout.contains("\\-\\-dry\\-run"),
        "{}",
        man.stdout
    );
    let bad = imagegate(&["completions", "tcsh-like"], None);
    assert_eq!(bad.code, 2, "clap refuses an unknown shell as bad input");
}
