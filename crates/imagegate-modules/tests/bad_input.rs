//! Bad input: each case fails with a message naming the problem, changes
//! nothing, and never prints a secret (the passwords are searched for).

use std::path::Path;

use imagegate_testkit::{free_port, random_hex, run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn module(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

/// Runs a case that must fail; checks the message and that no secret shows.
fn must_fail(args: Value, expect: &[&str], secrets: &[&str]) -> ModuleRun {
    let run = module(&args);
    assert!(run.failed(), "expected failure: {}", run.stdout);
    assert!(!run.success, "non-zero exit code on failure");
    assert!(!run.changed());
    let msg = run.msg();
    eprintln!("failed as expected: {msg}");
    assert!(!msg.contains('\n'), "one-line message: {msg}");
    for e in expect {
        assert!(msg.contains(e), "message {msg:?} lacks {e:?}");
    }
    for s in secrets {
        assert!(!run.all_output().contains(s), "secret {s} printed:\n{}", run.all_output());
    }
    run
}

#[test]
fn bad_options_name_the_option() {
    let secret = format!("pw-{}", random_hex(8));
    let base = |extra: Value| {
        let mut v = json!({
            "images": [{"src": "127.0.0.1:1/a:b", "dest": "127.0.0.1:1/c"}],
            "dest_username": "someone",
            "dest_password": secret,
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    };
    must_fail(
        base(json!({"images": [{"src": "quay.io/Upper/Case", "dest": "x.io/a"}]})),
        &["option 'images[0].src'", "invalid image reference", "lowercase"],
        &[&secret],
    );
    must_fail(
        base(json!({"colour": "blue"})),
        &["option 'colour'", "unsupported option"],
        &[&secret],
    );
    // Unknown keys of an image item are ignored with a warning (see
    // extra_keys_of_mirror_items_warn); anywhere else they are refused.
    must_fail(base(json!({"sauce": 1})), &["option 'sauce'", "unsupported option"], &[&secret]);
    must_fail(
        base(json!({"concurrency": "many"})),
        &["option 'concurrency'", "invalid type"],
        &[&secret],
    );
    // A string for a list is split on commas, as Ansible does; its items
    // must still be image dicts.
    must_fail(
        base(json!({"images": "a.io/x"})),
        &["option 'images[0]'", "invalid type"],
        &[&secret],
    );
    must_fail(
        base(json!({"images": [{"dest": "b.io/c"}]})),
        &["option 'images[0].src'", "missing"],
        &[&secret],
    );
    must_fail(base(json!({"retries": 1000})), &["option 'retries'"], &[&secret]);
    must_fail(base(json!({"src_password": "x"})), &["option 'src_username'"], &[&secret]);
    // Keys of a credentials entry that imagegate does not use are ignored,
    // as zuul-jobs ignores them: the run fails on the unreachable registry,
    // not on the key.
    let run = module(&base(
        json!({"registries": {"127.0.0.1:1": {"username": "u", "password": "long-password", "colour": 1}}, "retries": 0}),
    ));
    assert!(run.failed() && !run.msg().contains("colour"), "{}", run.stdout);
    assert!(!run.all_output().contains("long-password"));
    must_fail(base(json!({"images": []})), &["option 'images'", "empty"], &[&secret]);
}

#[test]
fn registry_failures_are_clear() {
    let plain = TestRegistry::seeded(Kind::Distribution, &[(8, "bad/app:v1")]);
    let tls = TestRegistry::start(Kind::DistributionTls);
    let zuul = TestRegistry::start(Kind::Zuul);
    let wrong = format!("wrong-{}", random_hex(8));
    let files_before = std::fs::read_dir(tls.dir.path()).unwrap().count();

    // Wrong password, basic auth (distribution with htpasswd).
    let mut entry = tls.module_entry();
    entry["password"] = json!(wrong);
    let real_pw = tls.rw.as_ref().unwrap().password.clone();
    must_fail(
        json!({
            "images": [{"src": format!("{}/bad/app:v1", plain.host), "dest": format!("{}/bad/app", tls.host)}],
            "registries": {plain.host.clone(): plain.module_entry(), tls.host.clone(): entry},
        }),
        &["authentication to", &tls.host, "rw-user"],
        &[&wrong, &real_pw],
    );
    assert_eq!(tls.digest("bad/app:v1"), None);
    assert_eq!(std::fs::read_dir(tls.dir.path()).unwrap().count(), files_before);

    // Wrong password, bearer tokens (zuul-registry).
    let mut entry = zuul.module_entry();
    entry["password"] = json!(wrong);
    must_fail(
        json!({
            "images": [{"src": format!("{}/bad/app:v1", plain.host), "dest": format!("{}/bad/app", zuul.host)}],
            "registries": {plain.host.clone(): plain.module_entry(), zuul.host.clone(): entry},
        }),
        &["authentication to", &zuul.host],
        &[&wrong],
    );
    assert_eq!(zuul.digest("bad/app:v1"), None);

    // The read-only user of zuul-registry may read but not push.
    let ro = zuul.ro.as_ref().unwrap();
    let mut entry = zuul.module_entry();
    entry["username"] = json!(ro.name);
    entry["password"] = json!(ro.password);
    must_fail(
        json!({
            "images": [{"src": format!("{}/bad/app:v1", plain.host), "dest": format!("{}/bad/app", zuul.host)}],
            "registries": {plain.host.clone(): plain.module_entry(), zuul.host.clone(): entry},
        }),
        &["authentication to", "ro-user"],
        &[&ro.password],
    );

    // A source tag that does not exist.
    must_fail(
        json!({
            "images": [{"src": format!("{}/bad/app:nope", plain.host), "dest": format!("{}/bad/app", plain.host)}],
            "registries": {plain.host.clone(): plain.module_entry()},
        }),
        &["bad/app:nope", "not found"],
        &[],
    );

    // A registry nobody listens on.
    let port = free_port();
    must_fail(
        json!({
            "images": [{"src": format!("127.0.0.1:{port}/x/y:z"), "dest": format!("{}/x/y", plain.host)}],
            "registries": {format!("127.0.0.1:{port}"): {"plain_http": true}, plain.host.clone(): plain.module_entry()},
            "retries": 1,
            "retry_delay": 0.01,
            "src_username": "u",
            "src_password": wrong,
        }),
        &["cannot reach", &format!("127.0.0.1:{port}"), "after 1 retries"],
        &[&wrong],
    );

    // TLS without the CA: the certificate is refused, clearly.
    let mut entry = tls.module_entry();
    entry.as_object_mut().unwrap().remove("ca_cert");
    must_fail(
        json!({
            "images": [{"src": format!("{}/bad/app:v1", plain.host), "dest": format!("{}/bad/app", tls.host)}],
            "registries": {plain.host.clone(): plain.module_entry(), tls.host.clone(): entry},
            "retries": 0,
        }),
        &["TLS", "certificate", "ca_cert"],
        &[&real_pw],
    );
}

/// Older ansible-cores pass templated values as strings ("{{ n | int }}"
/// arrives as "86400"): options convert them as Ansible's argument spec
/// does, and still refuse what Ansible would refuse.
#[test]
fn templated_strings_convert_as_ansible_does() {
    use imagegate_testkit::{HostileRegistry, Hostility};
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::start(Hostility::default());
    let plain = json!({"plain_http": "yes", "tls_verify": "True"});
    let regs = json!({src.host.clone(): plain.clone(), dest.host.clone(): plain});
    let run = module(&json!({
        "images": [{"src": format!("{}/hostile/app", src.host), "dest": format!("{}/copy/app", dest.host), "all_tags": "yes", "platforms": ""}],
        "registries": regs,
        "concurrency": "2",
        "retries": "1",
        "retry_delay": "0",
        "timeout": "5",
    }));
    run.assert_ok();
    assert_eq!(dest.count("PUT", "/copy/app/manifests/v1"), 1);
    must_fail(
        json!({"images": [{"src": "a.io/a:b", "dest": "b.io/c"}], "retries": "several"}),
        &["option 'retries'", "invalid type"],
        &[],
    );

    let retag = run_module(
        Path::new(env!("CARGO_BIN_EXE_container_retag")),
        &json!({
            "cleanup": [{"repository": format!("{}/hostile/app", src.host), "regex": "^change_", "age": "86400"}],
            "registries": regs,
        }),
    );
    retag.assert_ok();
}

/// A credentials entry's `repository` pattern is searched for in the whole
/// repository name, registry included, as zuul-jobs' `regex_search` does.
#[test]
fn repository_patterns_match_as_zuul_jobs_does() {
    use imagegate_testkit::{HostileRegistry, Hostility};
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::start(Hostility::default());
    let run_with = |pattern: &str| {
        module(&json!({
            "images": [{"src": format!("{}/hostile/app:v1", src.host), "dest": format!("{}/team/app", dest.host)}],
            "registries": {
                src.host.clone(): {"plain_http": true},
                dest.host.clone(): {"plain_http": true, "repository": pattern},
            },
        }))
    };
    for allowed in ["team/app", "^127\\.0\\.0\\.1:[0-9]+/team/", "^(.*/)?team/"] {
        run_with(allowed).assert_ok();
    }
    for refused in ["^team/", "^other/", "team/app$x"] {
        let run = run_with(refused);
        assert!(run.failed(), "{refused}: {}", run.stdout);
        assert!(
            run.msg().contains("option 'images[0].dest'") && run.msg().contains("not permitted"),
            "{}",
            run.msg()
        );
    }
    assert_eq!(
        dest.count("PUT", "/manifests/"),
        1,
        "only the permitted runs wrote (the first; the others were up to date)"
    );
}

/// Items of mirror_container_images_images may carry keys of the user's
/// own, as zuul-jobs allows: they are ignored with a warning.
#[test]
fn extra_keys_of_mirror_items_warn() {
    use imagegate_testkit::{HostileRegistry, Hostility};
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::start(Hostility::default());
    let run = module(&json!({
        "images": [{
            "src_repository": format!("{}/hostile/app", src.host), "src_tag": "v1",
            "dest_repository": format!("{}/copy/app", dest.host), "dest_tag": "v1",
            "description": "kept in our own inventory",
        }],
        "registries": {src.host.clone(): {"plain_http": true}, dest.host.clone(): {"plain_http": true}},
    }));
    run.assert_ok();
    assert!(run.changed());
    let warnings = run.result["warnings"].to_string();
    assert!(warnings.contains("images[0].description"), "{}", run.stdout);
    must_fail(
        json!({"images": [{"src": "a.io/a:b", "dest": "b.io/c"}], "colour": 1}),
        &["option 'colour'", "unsupported option"],
        &[],
    );
}

/// A misspelt key in a registries entry (zuul-jobs ignores keys it does not
/// know, and so do the modules) is named in a warning, beside the failure
/// it causes; its value is not printed.
#[test]
fn a_misspelt_registries_key_is_named() {
    let secret = format!("pw-{}", random_hex(8));
    let run = must_fail(
        json!({
            "images": [{"src": "127.0.0.1:1/a:b", "dest": "127.0.0.1:1/c"}],
            "registries": {"registry.example.com": {"username": "someone", "passwd": secret}},
        }),
        &[
            "registries.registry.example.com",
            "username and password go together",
            "has a username but no password",
        ],
        &[&secret],
    );
    let warnings = run.result["warnings"].to_string();
    assert!(
        warnings.contains("'registries.registry.example.com.passwd' is not used by registry_mirror"),
        "{warnings}"
    );
}
