//! One call never contradicts itself, and a promotion survives being
//! killed or raced: conflicting targets, failures that changed something,
//! the promotion record (`record_file`, `restore_from`) and the
//! compare-and-swap of each move, against the distribution registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imagegate_testkit::{run_module, FaultProxy, Fixtures, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn retag(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_retag")), args)
}

fn mirror(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

fn regs(reg: &TestRegistry) -> Value {
    json!({reg.host.clone(): reg.module_entry()})
}

/// Names of the repositories the registry stores (to tell that nothing was written).
fn repositories(reg: &TestRegistry) -> Vec<String> {
    let root = reg.data_dir().join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.join("_manifests").exists() {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            } else if p.is_dir() {
                walk(&p, root, out);
            }
        }
    }
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn retag_refuses_two_images_for_one_tag_before_any_write() {
    let reg = TestRegistry::seeded(
        Kind::Distribution,
        &[(0, "conf/app:one"), (1, "conf/app:two"), (0, "conf/app:one-again")],
    );
    let repo = format!("{}/conf/app", reg.host);
    let run = retag(&json!({
        "images": [
            {"repository": repo, "src_tag": "one", "tags": ["ok", "current"]},
            {"repository": repo, "src_tag": "two", "tags": ["current"]},
        ],
        "registries": regs(&reg),
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(!run.changed());
    let msg = run.msg();
    assert!(
        msg.contains("conf/app:current") && msg.contains("images[0]") && msg.contains("images[1]"),
        "{msg}"
    );
    assert_eq!(reg.digest("conf/app:current"), None, "nothing written");
    assert_eq!(
        reg.digest("conf/app:ok"),
        None,
        "nothing written, not even the tag without conflict"
    );

    // The same image twice for one tag is no conflict; the record names
    // the tag once, and restores it.
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let same = retag(&json!({
        "images": [
            {"repository": repo, "src_tag": "one", "tags": ["current"]},
            {"repository": repo, "src_tag": "one-again", "tags": ["current"]},
        ],
        "record_file": record,
        "registries": regs(&reg),
    }));
    same.assert_ok();
    assert_eq!(reg.digest("conf/app:current"), reg.digest("conf/app:one"));
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["entries"].as_array().unwrap().len(), 1, "{rec}");
    let restore = retag(&json!({"restore_from": record, "registries": regs(&reg)}));
    restore.assert_ok();
    assert!(restore.changed());
    assert_eq!(reg.digest("conf/app:current"), None);
}

#[test]
fn mirror_refuses_two_sources_for_one_tag_before_any_write() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(2, "src/a:v1"), (3, "src/b:v1"), (2, "src/c:v1")]);
    let before = repositories(&reg);
    let run = mirror(&json!({
        "images": [
            {"src": format!("{}/src/a:v1", reg.host), "dest": format!("{}/dst/app:latest", reg.host)},
            {"src": format!("{}/src/b:v1", reg.host), "dest": format!("{}/dst/app:latest", reg.host)},
        ],
        "registries": regs(&reg),
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(!run.changed());
    let msg = run.msg();
    assert!(
        msg.contains("dst/app:latest") && msg.contains("images[0]") && msg.contains("images[1]") && msg.contains("src/b:v1"),
        "{msg}"
    );
    assert_eq!(repositories(&reg), before, "no repository, manifest or blob link written");

    // Same source twice, or two sources of one digest: no conflict.
    let run = mirror(&json!({
        "images": [
            {"src": format!("{}/src/a:v1", reg.host), "dest": format!("{}/dst/app:latest", reg.host)},
            {"src": format!("{}/src/a:v1", reg.host), "dest": format!("{}/dst/app:latest", reg.host)},
            {"src": format!("{}/src/c:v1", reg.host), "dest": format!("{}/dst/app:latest", reg.host)},
        ],
        "registries": regs(&reg),
    }));
    run.assert_ok();
    assert_eq!(reg.digest("dst/app:latest"), reg.digest("src/a:v1"));
}

#[test]
fn a_failure_after_moves_reports_changed_and_what_moved() {
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed_each(0..4, |n| format!("part/img{n}:testing"));
    let proxy = FaultProxy::before(&reg, |f| f.deny_manifest_put = Some(2));
    let images: Vec<Value> = (0..4)
        .map(|n| json!({"repository": format!("{}/part/img{n}", proxy.host), "src_tag": "testing", "tags": ["current"]}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let run = retag(&json!({
        "images": images,
        "atomic": false,
        "record_file": record,
        "registries": {proxy.host.clone(): {"plain_http": true}},
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.changed(), "tags moved before the failure: {}", run.stdout);
    let moved: Vec<String> = serde_json::from_value(run.result["moved"].clone()).unwrap();
    assert!(moved.len() >= 2, "{}", run.stdout);
    for name in &moved {
        let n = name.split("img").nth(1).unwrap().split(':').next().unwrap();
        assert_eq!(
            reg.digest(&format!("part/img{n}:current")),
            reg.digest(&format!("part/img{n}:testing")),
            "{name} moved as reported"
        );
    }
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["state"], "failed");
    let marked = rec["entries"].as_array().unwrap().iter().filter(|e| e["state"] == "moved").count();
    assert_eq!(marked, moved.len(), "{rec}");

    // The record puts the moved tags back (they did not exist before).
    let restore = retag(&json!({"restore_from": record, "registries": {proxy.host.clone(): {"plain_http": true}}}));
    restore.assert_ok();
    assert!(restore.changed());
    for n in 0..4 {
        assert_eq!(reg.digest(&format!("part/img{n}:current")), None, "img{n}");
    }

    // With atomic (the default), the failure lists the moves and the put-backs.
    let proxy = FaultProxy::before(&reg, |f| f.deny_manifest_put = Some(2));
    let images: Vec<Value> = (0..4)
        .map(|n| json!({"repository": format!("{}/part/img{n}", proxy.host), "src_tag": "testing", "tags": ["current"]}))
        .collect();
    let run = retag(&json!({"images": images, "registries": {proxy.host.clone(): {"plain_http": true}}}));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.changed(), "{}", run.stdout);
    let moved = run.result["moved"].as_array().unwrap().len();
    assert!(moved >= 2, "{}", run.stdout);
    assert_eq!(run.result["restored"].as_array().unwrap().len(), moved, "{}", run.stdout);
    for n in 0..4 {
        assert_eq!(reg.digest(&format!("part/img{n}:current")), None, "img{n} put back");
    }
}

/// Images in the killed promotion: more than the module moves at once.
const KILLED_IMAGES: usize = 32;

fn wait_for_moves(record: &Path, at_least: usize, deadline: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(record) {
            // Replaced whole by rename: always parses.
            let rec: Value = serde_json::from_slice(&bytes).expect("the record is whole JSON at every moment");
            let moved = rec["entries"].as_array().unwrap().iter().filter(|e| e["state"] == "moved").count();
            if moved >= at_least {
                return rec;
            }
        }
        assert!(start.elapsed() < deadline, "no {at_least} moves recorded in {deadline:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn args_file(dir: &Path, name: &str, args: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, args.to_string()).unwrap();
    path
}

#[test]
fn a_killed_promotion_leaves_a_record_that_restores_every_tag() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    let mut before = Vec::new();
    for n in 0..KILLED_IMAGES {
        reg.seed(&fx.single(n % 10), &format!("kill/img{n}:testing"));
        // Half the targets exist (put back to their manifest), half do
        // not (removed on restore).
        if n % 2 == 0 {
            reg.seed(&fx.single((n + 1) % 10), &format!("kill/img{n}:current"));
        }
        before.push(reg.digest(&format!("kill/img{n}:current")));
    }
    // Slow enough to be killed half-way.
    let proxy = FaultProxy::before(&reg, |f| f.delay_ms = 150);
    let entry = json!({proxy.host.clone(): {"plain_http": true}});
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("promotion.json");
    let images: Vec<Value> = (0..KILLED_IMAGES)
        .map(|n| json!({"repository": format!("{}/kill/img{n}", proxy.host), "src_tag": "testing", "tags": ["current"]}))
        .collect();
    let args = args_file(
        dir.path(),
        "args",
        // Four images at a time: the kill lands between waves of moves,
        // never after all of them (the default moves all 32 at once).
        &json!({"images": images, "record_file": record, "registries": entry, "concurrency": 4}),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_container_retag"))
        .arg(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_moves(&record, 1, Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let rec: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["format"], "imagegate-promotion-record");
    assert_eq!(rec["version"], 2);
    assert_eq!(rec["state"], "in_progress", "killed before the end");
    let entries = rec["entries"].as_array().unwrap();
    assert_eq!(entries.len(), KILLED_IMAGES, "the whole plan is on disk");
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(e["repository"], format!("kill/img{n}"));
        assert_eq!(e["before"], json!(before[n]), "img{n}: the previous digest, or null");
    }
    let moved_now = (0..KILLED_IMAGES)
        .filter(|n| reg.digest(&format!("kill/img{n}:current")) == reg.digest(&format!("kill/img{n}:testing")))
        .count();
    assert!(
        moved_now > 0 && moved_now < KILLED_IMAGES,
        "killed half-way: {moved_now} of {KILLED_IMAGES} moved"
    );

    // Check mode predicts the restore and writes nothing.
    let restore = json!({"restore_from": record, "registries": entry, "_ansible_diff": true});
    let mut check = restore.clone();
    check["_ansible_check_mode"] = json!(true);
    let predicted = retag(&check);
    predicted.assert_ok();
    assert!(predicted.changed());
    let still_moved = (0..KILLED_IMAGES)
        .filter(|n| reg.digest(&format!("kill/img{n}:current")) == reg.digest(&format!("kill/img{n}:testing")))
        .count();
    assert_eq!(still_moved, moved_now, "check mode wrote nothing");

    let real = retag(&restore);
    real.assert_ok();
    assert!(real.changed());
    assert_eq!(real.result["diff"], predicted.result["diff"], "check mode predicted the restore");
    for (n, want) in before.iter().enumerate() {
        assert_eq!(&reg.digest(&format!("kill/img{n}:current")), want, "img{n} restored");
        assert!(reg.digest(&format!("kill/img{n}:testing")).is_some(), "the source tag is untouched");
    }

    let again = retag(&restore);
    again.assert_ok();
    assert!(!again.changed(), "a second restore changes nothing: {}", again.stdout);

    // A tag moved by someone else since: the restore refuses, naming it,
    // and writes nothing.
    reg.seed(&fx.single(9), "kill/img1:current");
    let third = retag(&json!({"restore_from": record, "registries": entry}));
    assert!(third.failed(), "{}", third.stdout);
    assert!(third.msg().contains("kill/img1:current"), "{}", third.msg());
    assert!(!third.changed());
}

#[test]
fn racing_promotions_of_the_same_tags_have_at_most_one_winner() {
    const IMAGES: usize = 12;
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    for n in 0..IMAGES {
        reg.seed_singles(&[
            (n % 10, &format!("race/img{n}:a")),
            ((n + 3) % 10, &format!("race/img{n}:b")),
            ((n + 5) % 10, &format!("race/img{n}:current")),
        ]);
    }
    let orig: Vec<Option<String>> = (0..IMAGES).map(|n| reg.digest(&format!("race/img{n}:current"))).collect();
    // A little latency, so that the two runs interleave.
    let proxy = FaultProxy::before(&reg, |f| f.delay_ms = 20);
    let args = |src: &str, concurrency: u64| {
        let images: Vec<Value> = (0..IMAGES)
            .map(|n| json!({"repository": format!("{}/race/img{n}", proxy.host), "src_tag": src, "tags": ["current"]}))
            .collect();
        json!({"images": images, "registries": {proxy.host.clone(): {"plain_http": true}}, "concurrency": concurrency})
    };
    // `b` starts together with `a` (every image at once, the default), or
    // a little later while `a` is still planning or moving (two images at
    // a time: `a` then takes about half a second, so a late `b` still races
    // it on a loaded machine), so that the two interleave in different ways.
    for (round, (stagger_ms, concurrency)) in [(0u64, 32u64), (0, 32), (100, 2), (250, 2)].into_iter().enumerate() {
        // Back to the start.
        for n in 0..IMAGES {
            reg.seed(&fx.single((n + 5) % 10), &format!("race/img{n}:current"));
        }
        let (a, b) = (args("a", concurrency), args("b", concurrency));
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                retag(&a)
            });
            let tb = s.spawn(|| {
                barrier.wait();
                std::thread::sleep(Duration::from_millis(stagger_ms));
                retag(&b)
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        for (run, src) in [(&ra, "a"), (&rb, "b")] {
            eprintln!("round {round}: {src}: failed={} {}", run.failed(), run.msg());
        }
        let ok = [&ra, &rb].iter().filter(|r| !r.failed()).count();
        assert!(ok <= 1, "round {round}: both promotions succeeded:\n{}\n{}", ra.stdout, rb.stdout);
        if ok == 0 {
            // No winner: every tag is where one of the three states put it,
            // never absent or anything else.
            for (n, was) in orig.iter().enumerate() {
                let now = reg.digest(&format!("race/img{n}:current"));
                assert!(now.is_some(), "round {round}: img{n} lost its tag");
                let known = now == *was || ["a", "b"].iter().any(|t| reg.digest(&format!("race/img{n}:{t}")) == now);
                assert!(known, "round {round}: img{n} is at {now:?}");
            }
        }
        for (run, src) in [(&ra, "a"), (&rb, "b")] {
            if run.failed() {
                assert!(
                    run.msg().contains("changed underneath") && run.msg().contains("race/img"),
                    "round {round}: the loser names the tag: {}",
                    run.msg()
                );
            } else {
                // The winner's tags are where it says, except where the
                // loser wrote too: without a conditional PUT, a loser whose
                // compare-read came just before the winner's write can
                // overwrite a tag the winner has verified, and its put-back
                // then restores what it saw. Such a tag is at the winner's
                // digest or at the loser's "before", and the loser's result
                // names it as moved.
                let loser = if src == "a" { &rb } else { &ra };
                let loser_moved: Vec<&str> = loser.result["moved"]
                    .as_array()
                    .map(|m| m.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (n, was) in orig.iter().enumerate() {
                    let now = reg.digest(&format!("race/img{n}:current"));
                    let winners = reg.digest(&format!("race/img{n}:{src}"));
                    if loser_moved.iter().any(|m| m.ends_with(&format!("race/img{n}:current"))) {
                        assert!(
                            now == winners || now == *was,
                            "round {round}: img{n}, written by both, is at {now:?}"
                        );
                    } else {
                        assert_eq!(now, winners, "round {round}: img{n} is where the winner ({src}) says");
                    }
                }
            }
        }
    }
}

#[test]
fn restore_from_refuses_what_is_not_a_record_and_company() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    // The record of 0.1.0 was a bare list.
    std::fs::write(&old, r#"[{"image": "r.example/a", "tag": "x", "old_digest": null}]"#).unwrap();
    let run = retag(&json!({"restore_from": old}));
    assert!(run.failed() && !run.changed());
    assert!(
        run.msg().contains("option 'restore_from'") && run.msg().contains("not a promotion record"),
        "{}",
        run.msg()
    );
    let run = retag(&json!({"restore_from": dir.path().join("missing.json")}));
    assert!(run.failed() && run.msg().contains("missing.json"), "{}", run.msg());
    let run = retag(&json!({
        "restore_from": old,
        "images": [{"repository": "r.example/a", "src_tag": "x", "tags": ["y"]}],
    }));
    assert!(run.failed() && run.msg().contains("option 'restore_from'"), "{}", run.msg());
}

/// A promotion that removes its change tags (as the promote role's tag
/// method does) records each removal before it is made, so a restore puts
/// the change tags back as well as the final tags: every tag as before, and
/// the promotion can run again. A record of version 1 (without removals)
/// is still read.
#[test]
fn restore_brings_back_the_change_tags_a_promotion_removed() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed_each(0..3, |n| format!("team/img{n}:change_7_latest"));
    reg.seed(&fx.single(9), "team/img0:latest");
    let tags = |reg: &TestRegistry| -> Vec<Option<String>> {
        (0..3)
            .flat_map(|n| [format!("team/img{n}:change_7_latest"), format!("team/img{n}:latest")])
            .map(|t| reg.digest(&t))
            .collect()
    };
    let before = tags(&reg);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let images: Vec<Value> = (0..3)
        .map(|n| json!({"repository": format!("{}/team/img{n}", reg.host), "src_tag": "change_7_latest", "tags": ["latest"], "remove_tags": ["change_7_latest"]}))
        .collect();
    let args = json!({"images": images, "record_file": record, "registries": regs(&reg)});
    let run = retag(&args);
    run.assert_ok();
    assert_eq!(reg.digest("team/img1:change_7_latest"), None, "the change tags are gone");
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["version"], 2);
    let removals: Vec<&Value> = rec["entries"].as_array().unwrap().iter().filter(|e| e["after"].is_null()).collect();
    assert_eq!(removals.len(), 3, "{rec}");
    assert!(removals.iter().all(|e| e["state"] == "moved"), "{rec}");

    let restore = retag(&json!({"restore_from": record, "registries": regs(&reg)}));
    restore.assert_ok();
    assert_eq!(tags(&reg), before, "every tag as before the promotion");
    // So the promotion can run again, and moves the same tags.
    let again = retag(&json!({"images": args["images"], "registries": regs(&reg)}));
    again.assert_ok();
    assert!(again.changed());

    // A version 1 record (no removals) is still read and put back.
    let mut v1 = rec.clone();
    v1["version"] = json!(1);
    v1["entries"] = json!(rec["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["after"].is_null())
        .collect::<Vec<_>>());
    let old = dir.path().join("v1.json");
    std::fs::write(&old, v1.to_string()).unwrap();
    let restore = retag(&json!({"restore_from": old, "registries": regs(&reg)}));
    restore.assert_ok();
    assert_eq!(reg.digest("team/img0:latest"), before[1], "img0:latest back");
    assert_eq!(reg.digest("team/img1:latest"), None, "img1:latest did not exist");
}
