//! container_retag against real registries (distribution, zuul-registry),
//! and against the fake Quay and Docker Hub web APIs for those methods.

use std::path::Path;

use imagegate_testkit::webapi::FakeWebApi;
use imagegate_testkit::{run_module, run_module_measured, FaultProxy, Fixtures, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn module(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_retag")), args)
}

fn entry(reg: &TestRegistry) -> Value {
    reg.module_entry()
}

/// Ten images promoted from their change tag to two final tags each.
fn promote_ten_on(kind: Kind) {
    let reg = TestRegistry::start(kind);
    let mut digests = Vec::new();
    for n in 0..10 {
        reg.seed_singles(&[
            (n, &format!("prom/img{n}:change_42_latest")),
            (n, &format!("prom/img{n}:unrelated")),
        ]);
        digests.push(reg.digest(&format!("prom/img{n}:change_42_latest")).unwrap());
    }
    let images = |with_expected: bool| -> Value {
        (0..10)
            .map(|n| {
                let mut i = json!({
                    "repository": format!("{}/prom/img{n}", reg.host),
                    "src_tag": "change_42_latest",
                    "tags": ["latest", "1.0"],
                    "remove_tags": ["change_42_latest"],
                });
                if with_expected {
                    i["expected_digest"] = json!(digests[n]);
                }
                i
            })
            .collect()
    };
    let regs = json!({reg.host.clone(): entry(&reg)});
    let check = module(&json!({"images": images(true), "registries": regs, "_ansible_check_mode": true, "_ansible_diff": true}));
    check.assert_ok();
    assert!(check.changed());
    assert_eq!(reg.digest("prom/img0:latest"), None, "check mode wrote nothing");
    assert!(reg.digest("prom/img0:change_42_latest").is_some());

    let real = module(&json!({"images": images(true), "registries": regs, "_ansible_diff": true}));
    real.assert_ok();
    assert!(real.changed());
    assert_eq!(
        real.result["diff"]["after"], check.result["diff"]["after"],
        "check mode predicted the moves"
    );
    for (n, d) in digests.iter().enumerate() {
        for tag in ["latest", "1.0", "unrelated"] {
            assert_eq!(reg.digest(&format!("prom/img{n}:{tag}")).as_ref(), Some(d), "img{n}:{tag}");
        }
    }
    let removed = real.result["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 10);
    match kind {
        Kind::Zuul => {
            // zuul-registry has no way to delete a tag over its API: the
            // promotion stands and each change tag is reported, not removed.
            assert!(removed.iter().all(|r| r["failed"] == json!(true)), "{removed:?}");
            assert_eq!(real.result["warnings"].as_array().map(Vec::len), Some(10));
            assert!(reg.digest("prom/img0:change_42_latest").is_some());
        }
        _ => {
            assert!(removed.iter().all(|r| r["method"] == json!("overwrite")), "{removed:?}");
            for n in 0..10 {
                assert_eq!(reg.digest(&format!("prom/img{n}:change_42_latest")), None);
            }
        }
    }

    let again = module(&json!({"images": images(true), "registries": regs}));
    again.assert_ok();
    assert!(!again.changed(), "{}", again.stdout);
    if kind == Kind::Zuul {
        // The change tags are still there and still cannot go: the message
        // says so instead of calling every tag where it should be.
        assert_eq!(
            again.msg(),
            "nothing moved or removed; 10 tags could not be removed (see the warnings)"
        );
    } else {
        assert_eq!(again.msg(), "every tag is already where it should be");
    }

    if kind != Kind::Zuul {
        let without = module(&json!({"images": images(false), "registries": regs}));
        assert!(without.failed());
        assert!(
            without.msg().contains("10 missing") && without.msg().contains("prom/img0:change_42_latest"),
            "{}",
            without.msg()
        );
    }
}

imagegate_testkit::test_each_kind!(
    promote_ten_on:
    promote_ten_images_distribution => Distribution,
    promote_ten_images_zuul_registry => Zuul,
);

#[test]
fn expected_digest_mismatch_and_missing_images_move_nothing() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(0, "set/a:testing"), (1, "set/b:testing")]);
    let regs = json!({reg.host.clone(): entry(&reg)});
    let wrong = reg.digest("set/b:testing").unwrap();
    let run = module(&json!({
        "images": [{"repository": format!("{}/set/a", reg.host), "src_tag": "testing", "tags": ["current"], "expected_digest": wrong}],
        "registries": regs,
    }));
    assert!(run.failed());
    assert!(run.msg().contains("digest mismatch") && run.msg().contains(&wrong), "{}", run.msg());
    assert_eq!(reg.digest("set/a:current"), None);

    // A promotion set (testing -> current) with one image missing.
    let set: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|n| json!({"repository": format!("{}/set/{n}", reg.host), "src_tag": "testing", "tags": ["current"]}))
        .collect();
    let run = module(&json!({"images": set, "registries": regs}));
    assert!(run.failed());
    assert!(
        run.msg().contains("1 missing") && run.msg().contains("set/c:testing"),
        "{}",
        run.msg()
    );
    assert_eq!(reg.digest("set/a:current"), None);
    assert_eq!(reg.digest("set/b:current"), None);
}

/// A write failure midway (the fifth manifest PUT is denied): every tag
/// already moved is put back, the existing ones to their old digest and the
/// new ones removed; `previous-<tag>` keeps the old target.
#[test]
fn a_failed_write_puts_every_moved_tag_back() {
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed_each(0..4, |n| format!("stage/img{n}:tripleo-ci-testing"));
    // img0 and img1 were promoted before (to other content).
    reg.seed_singles(&[(8, "stage/img0:current-tripleo"), (9, "stage/img1:current-tripleo")]);
    let before: Vec<Option<String>> = (0..4).map(|n| reg.digest(&format!("stage/img{n}:current-tripleo"))).collect();
    let proxy = FaultProxy::before(&reg, |f| f.deny_manifest_put = Some(4));
    let images: Vec<Value> = (0..4)
        .map(|n| json!({"repository": format!("{}/stage/img{n}", proxy.host), "src_tag": "tripleo-ci-testing", "tags": ["current-tripleo"], "keep_previous": true}))
        .collect();
    let run = module(&json!({"images": images, "registries": {proxy.host.clone(): {"plain_http": true}}}));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("put back"), "{}", run.msg());
    assert!(run.result["not_restored"].as_array().unwrap().is_empty(), "{}", run.stdout);
    for (n, want) in before.iter().enumerate() {
        assert_eq!(&reg.digest(&format!("stage/img{n}:current-tripleo")), want, "img{n} restored");
    }
    // Without the fault, the set moves and the old targets are kept.
    let images: Vec<Value> = (0..4)
        .map(|n| json!({"repository": format!("{}/stage/img{n}", reg.host), "src_tag": "tripleo-ci-testing", "tags": ["current-tripleo"], "keep_previous": true}))
        .collect();
    let run = module(&json!({
        "images": images,
        "registries": {reg.host.clone(): {"plain_http": true}},
        "record_file": reg.dir.path().join("record.json"),
    }));
    run.assert_ok();
    assert_eq!(reg.digest("stage/img0:previous-current-tripleo"), before[0]);
    assert_eq!(
        reg.digest("stage/img2:current-tripleo"),
        reg.digest("stage/img2:tripleo-ci-testing")
    );
    let record: Value = serde_json::from_slice(&std::fs::read(reg.dir.path().join("record.json")).unwrap()).unwrap();
    assert_eq!(record["state"], "complete");
    let entries = record["entries"].as_array().unwrap();
    // img0 and img1: previous-current-tripleo, then current-tripleo; img2
    // and img3 had no target to keep.
    assert_eq!(entries.len(), 6, "{record}");
    assert_eq!(entries[1]["tag"], "current-tripleo");
    assert_eq!(entries[1]["before"], json!(before[0]));
    assert!(entries.iter().all(|e| e["state"] == "moved"), "{record}");
}

/// Each removal method where it can run: overwrite on distribution keeps the
/// other tags of the image; oci is refused by both registries; zuul-registry
/// refuses overwrite without leaving anything behind.
#[test]
fn tag_removal_methods_on_real_registries() {
    let dist = TestRegistry::seeded(Kind::Distribution, &[(5, "rm/app:change_7"), (5, "rm/app:keep")]);
    let regs = json!({dist.host.clone(): entry(&dist)});
    let remove = |reg: &TestRegistry, regs: &Value, method: &str| {
        module(&json!({
            "images": [{"repository": format!("{}/rm/app", reg.host), "remove_tags": ["change_7"]}],
            "method": method,
            "registries": regs,
        }))
    };
    let oci = remove(&dist, &regs, "oci");
    assert!(oci.failed(), "distribution 2.8 refuses the OCI tag delete");
    assert!(dist.digest("rm/app:change_7").is_some());
    let over = remove(&dist, &regs, "overwrite");
    over.assert_ok();
    assert_eq!(over.result["removed"][0]["method"], "overwrite");
    assert_eq!(dist.digest("rm/app:change_7"), None);
    assert!(dist.digest("rm/app:keep").is_some(), "the other tag of the image survives");
    let again = remove(&dist, &regs, "overwrite");
    again.assert_ok();
    assert!(!again.changed());

    let zuul = TestRegistry::seeded(Kind::Zuul, &[(5, "rm/app:change_7")]);
    let zregs = json!({zuul.host.clone(): entry(&zuul)});
    for method in ["oci", "overwrite"] {
        let run = remove(&zuul, &zregs, method);
        assert!(run.failed(), "{method}: {}", run.stdout);
        assert!(zuul.digest("rm/app:change_7").is_some());
    }
    let tags = String::from_utf8(
        std::process::Command::new("skopeo")
            .args(["list-tags", "--cert-dir"])
            .arg(zuul.cert_dir.as_ref().unwrap())
            .arg(format!(
                "--creds={}:{}",
                zuul.rw.as_ref().unwrap().name,
                zuul.rw.as_ref().unwrap().password
            ))
            .arg(format!("docker://{}/rm/app", zuul.host))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!tags.contains("imagegate-probe"), "no probe tag is left behind: {tags}");
}

/// The quay and dockerhub methods, against the fake web APIs, with the tags
/// in a real registry.
#[test]
fn quay_and_dockerhub_methods() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(6, "org/app:change_1"), (6, "org/app:change_2")]);
    let web = FakeWebApi::start();
    web.add_tag("org/app", "change_1", 0);
    web.add_tag("org/app", "change_2", 0);
    let base = |extra: Value| {
        let mut e = json!({"plain_http": true, "api_url": web.url});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({reg.host.clone(): e})
    };
    let quay = module(&json!({
        "images": [{"repository": format!("{}/org/app", reg.host), "remove_tags": ["change_1"]}],
        "method": "quay",
        "registries": base(json!({"type": "quay", "api_token": web.quay_token})),
    }));
    quay.assert_ok();
    assert_eq!(quay.result["removed"][0]["method"], "quay");
    assert!(!quay.all_output().contains(&web.quay_token));
    let hub = module(&json!({
        "images": [{"repository": format!("{}/org/app", reg.host), "remove_tags": ["change_2"]}],
        "registries": base(json!({"type": "docker", "username": web.hub_user, "password": web.hub_password})),
    }));
    hub.assert_ok();
    assert_eq!(
        hub.result["removed"][0]["method"], "dockerhub",
        "auto picks dockerhub for type docker"
    );
    assert!(!hub.all_output().contains(&web.hub_password) && !hub.all_output().contains(web.hub_token()));
    assert_eq!(web.deleted(), vec!["org/app:change_1".to_string(), "org/app:change_2".to_string()]);
    let requests = web.state.lock().unwrap().requests.clone();
    assert!(
        requests.contains(&"DELETE /api/v1/repository/org/app/tag/change_1".to_string()),
        "{requests:?}"
    );
    assert!(requests.contains(&"POST /v2/users/login/".to_string()), "{requests:?}");
    assert!(
        requests.contains(&"DELETE /v2/repositories/org/app/tags/change_2/".to_string()),
        "{requests:?}"
    );

    // A wrong token is a clear failure naming nothing secret.
    let bad = module(&json!({
        "images": [{"repository": format!("{}/org/app", reg.host), "remove_tags": ["change_1"]}],
        "method": "quay",
        "registries": base(json!({"type": "quay", "api_token": "wrong-token-123"})),
    }));
    assert!(bad.failed());
    assert!(!bad.all_output().contains("wrong-token-123"));
}

/// Stale cleanup removes only matching tags older than the age: by image
/// `created` on distribution, by the web API's timestamps for Quay and
/// Docker Hub.
#[test]
fn stale_cleanup_filters_by_regex_and_age() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed(&fx.single(7), "stale/app:change_1_latest"); // created 1970: old
    reg.seed(&fx.fresh(), "stale/app:change_2_latest"); // created at fixture build: young
    reg.seed(&fx.single(7), "stale/app:release_1"); // old, does not match
    let args = |check: bool| {
        json!({
            "cleanup": [{"repository": format!("{}/stale/app", reg.host), "regex": "^change_.*$", "age": 30 * 86400}],
            "registries": {reg.host.clone(): {"plain_http": true}},
            "_ansible_check_mode": check,
        })
    };
    let check = module(&args(true));
    check.assert_ok();
    assert_eq!(check.result["cleaned"].as_array().unwrap().len(), 1, "{}", check.stdout);
    assert!(reg.digest("stale/app:change_1_latest").is_some(), "check mode removes nothing");
    let run = module(&args(false));
    run.assert_ok();
    assert_eq!(run.result["cleaned"][0]["tag"], format!("{}/stale/app:change_1_latest", reg.host));
    assert_eq!(run.result["cleaned"][0]["age_from"], "created");
    assert_eq!(reg.digest("stale/app:change_1_latest"), None);
    assert!(reg.digest("stale/app:change_2_latest").is_some(), "younger than the age");
    assert!(reg.digest("stale/app:release_1").is_some(), "does not match the regex");

    // Ages from the Quay API (start_ts).
    let web = FakeWebApi::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    reg.seed(&fx.single(7), "stale/app:change_3_latest");
    web.add_tag("stale/app", "change_2_latest", now - 10 * 86400);
    web.add_tag("stale/app", "change_3_latest", now - 40 * 86400);
    web.add_tag("stale/app", "release_1", now - 400 * 86400);
    let run = module(&json!({
        "cleanup": [{"repository": format!("{}/stale/app", reg.host), "regex": "^change_.*$", "age": 30 * 86400}],
        "registries": {reg.host.clone(): {"plain_http": true, "type": "quay", "api_url": web.url, "api_token": web.quay_token}},
    }));
    run.assert_ok();
    assert_eq!(run.result["cleaned"].as_array().unwrap().len(), 1, "{}", run.stdout);
    assert_eq!(run.result["cleaned"][0]["age_from"], "quay");
    assert_eq!(web.deleted(), vec!["stale/app:change_3_latest".to_string()]);
}

/// Ages from the Docker Hub API (`last_updated`), followed across pages.
#[test]
fn stale_cleanup_with_docker_hub_ages() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    let web = FakeWebApi::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 120 tags make two pages of 100; the old ones are on both.
    for n in 0..120 {
        let tag = format!("change_{n:03}_latest");
        let old = n % 50 == 0;
        web.add_tag("hub/app", &tag, if old { now - 3 * 86400 } else { now - 3600 });
        if old {
            reg.seed(&fx.single(1), &format!("hub/app:{tag}"));
        }
    }
    let run = module(&json!({
        "cleanup": [{"repository": format!("{}/hub/app", reg.host), "age": 86400}],
        "registries": {reg.host.clone(): {"plain_http": true, "type": "docker", "api_url": web.url, "username": web.hub_user, "password": web.hub_password}},
    }));
    run.assert_ok();
    let mut deleted = web.deleted();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            "hub/app:change_000_latest",
            "hub/app:change_050_latest",
            "hub/app:change_100_latest"
        ]
    );
    assert!(run.result["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["age_from"] == "dockerhub"));
}

/// A Quay or Docker Hub tag page far longer than asked for: a page of
/// hundreds of thousands of tiny tags (about 15 MiB, within the web answers'
/// 16 MiB byte cap) is
/// refused while it is parsed, within bounded memory, and a page of 150
/// (within every budget) is refused for its length, so what is kept over
/// many pages stays bounded too. Nothing is removed.
#[test]
fn web_api_tag_pages_longer_than_asked_are_refused_within_bounded_memory() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(3, "flood/app:change_1_latest")]);
    let web = FakeWebApi::start();
    web.add_tag("flood/app", "change_1_latest", 0);
    let quay = json!({"plain_http": true, "type": "quay", "api_url": web.url, "api_token": web.quay_token});
    let hub = json!({"plain_http": true, "type": "docker", "api_url": web.url, "username": web.hub_user, "password": web.hub_password});
    let args = |entry: &Value| {
        json!({
            "cleanup": [{"repository": format!("{}/flood/app", reg.host), "regex": "^change_.*$", "age": 86400}],
            "registries": {reg.host.clone(): entry},
        })
    };
    for (api, entry, flood) in [("Quay", &quay, 600_000), ("Docker Hub", &hub, 250_000)] {
        web.flood_tag_pages(flood);
        let (run, peak_kib) = run_module_measured(Path::new(env!("CARGO_BIN_EXE_container_retag")), &args(entry));
        eprintln!("{api}: peak RSS {} KiB", peak_kib);
        assert!(run.failed(), "{api}: {}", run.stdout);
        assert!(run.msg().contains("more than 100000 JSON values"), "{api}: {}", run.msg());
        assert!(peak_kib < 64 * 1024, "{api}: the module's peak RSS was {} MiB", peak_kib / 1024);

        web.flood_tag_pages(150);
        let run = module(&args(entry));
        assert!(run.failed(), "{api}: {}", run.stdout);
        assert!(
            run.msg().contains(&format!("{api} sent 150 tags on a page of 100 asked for")),
            "{api}: {}",
            run.msg()
        );
    }
    assert!(web.deleted().is_empty(), "nothing removed");
    assert!(reg.digest("flood/app:change_1_latest").is_some());
}

#[test]
fn bad_input_names_the_option() {
    let cases = [
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"]}], "method": "ftp"}),
            "option 'method'",
        ),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"], "remove_tags": ["y"]}]}),
            "option 'images[0].remove_tags'",
        ),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"], "expected_digest": "sha256:12"}]}),
            "option 'images[0].expected_digest'",
        ),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["bad tag"]}]}),
            "option 'images[0].tags'",
        ),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"], "dest": "other.io/a"}]}),
            "option 'images[0].dest'",
        ),
        (
            json!({"cleanup": [{"repository": "r.io/a", "regex": "("}]}),
            "option 'cleanup[0].regex'",
        ),
        (json!({}), "option 'images'"),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"]}], "concurrency": 0}),
            "option 'concurrency': must be between 1 and 32",
        ),
        (
            json!({"images": [{"repository": "r.io/a", "src_tag": "x", "tags": ["y"]}], "concurrency": 33}),
            "option 'concurrency': must be between 1 and 32",
        ),
    ];
    for (args, expect) in cases {
        let run = module(&args);
        assert!(run.failed(), "{args}");
        assert!(run.msg().starts_with(expect), "{args}: {}", run.msg());
    }
}
