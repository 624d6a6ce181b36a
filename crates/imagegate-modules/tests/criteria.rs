//! container_retag's `criteria`: nothing moves unless every named Zuul job
//! succeeded for exactly the digests about to move, as a builds API reports
//! (the test kit's ZuulBuildsApi, filtering as zuul-web does); and a builds
//! API that misbehaves (a huge answer, no answer, a redirect to another
//! origin, an API on the registry's own origin) stops the promotion without
//! holding it long or getting any credential.

use std::path::Path;
use std::time::{Duration, Instant};

use imagegate_testkit::hostile::Auth;
use imagegate_testkit::webapi::{ZuulBuildsApi, ZuulMisbehaviour};
use imagegate_testkit::{run_module, run_module_measured, Fixtures, HostileRegistry, Hostility, Kind, ModuleRun, Recorder, TestRegistry};
use serde_json::{json, Map, Value};

fn retag(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_retag")), args)
}

/// A build of `job` whose stage artifact maps `images` to their digests,
/// run after merge (periodic, no change), as Zuul 14's builds API gives it.
fn stage(job: &str, result: &str, uuid: &str, images: &Map<String, Value>) -> Value {
    stage_in("periodic", None, job, result, uuid, images)
}

/// The same in `pipeline`, for `change` if given (before merge).
fn stage_in(pipeline: &str, change: Option<u64>, job: &str, result: &str, uuid: &str, images: &Map<String, Value>) -> Value {
    let git_ref = match change {
        Some(c) => format!("refs/changes/{:02}/{c}/1", c % 100),
        None => "refs/heads/master".to_string(),
    };
    json!({"uuid": uuid, "job_name": job, "result": result, "project": "rdo/promotion", "pipeline": pipeline,
    "ref": {"project": "rdo/promotion", "ref": git_ref, "change": change, "patchset": change.map(|_| "1")},
    "artifacts": [
        {"name": "logs", "url": "https://logs.example/", "metadata": {"type": "zuul_manifest"}},
        {"name": "stage", "url": "https://logs.example/stage.json", "metadata": {"type": "imagegate_stage", "images": images}},
    ]})
}

struct Stage {
    reg: TestRegistry,
    images: Vec<String>,
    digests: Map<String, Value>,
}

/// The builds API of tenant `rdo`, answering with `builds`.
fn rdo_api(builds: Value) -> ZuulBuildsApi {
    ZuulBuildsApi::start("rdo", builds)
}

fn three_images() -> Stage {
    let reg = TestRegistry::start(Kind::Distribution);
    let images: Vec<String> = (0..3).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect();
    reg.seed_each(0..3, |n| format!("tripleo/img{n}:tripleo-ci-testing"));
    let digests = (0..3)
        .map(|n| {
            (
                images[n].clone(),
                json!(reg.digest(&format!("tripleo/img{n}:tripleo-ci-testing")).unwrap()),
            )
        })
        .collect();
    Stage { reg, images, digests }
}

fn args(s: &Stage, api: &str, check: bool) -> Value {
    json!({
        "images": s.images.iter().map(|i| json!({"repository": i, "src_tag": "tripleo-ci-testing", "tags": ["current-tripleo"]})).collect::<Vec<_>>(),
        "criteria": {"api": api, "project": "rdo/promotion", "ref": "refs/heads/master", "jobs": ["standalone", "ovb"]},
        "registries": {s.reg.host.clone(): {"plain_http": true}},
        "_ansible_check_mode": check,
        "_ansible_diff": true,
    })
}

#[test]
fn criteria_gate_the_promotion_in_check_mode_and_for_real() {
    let s = three_images();
    let nothing_moved = |s: &Stage| {
        for n in 0..3 {
            assert_eq!(s.reg.digest(&format!("tripleo/img{n}:current-tripleo")), None, "img{n} moved");
        }
    };

    // ovb never ran: nothing moves, even in check mode the API is asked,
    // and each image is named with the job.
    let api = rdo_api(json!([stage("standalone", "SUCCESS", "s1", &s.digests)]));
    let run = retag(&args(&s, &api.base, true));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().starts_with("nothing moved; criteria not met: "), "{}", run.msg());
    for image in &s.images {
        assert!(run.msg().contains(&format!("ovb missing for {image}@sha256:")), "{}", run.msg());
    }
    assert!(!run.msg().contains("standalone"), "{}", run.msg());
    assert_eq!(run.result["criteria_unmet"].as_array().unwrap().len(), 3, "{}", run.stdout);
    let queries = api.queries.lock().unwrap().clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("job_name=ovb") && q.contains("project=rdo%2Fpromotion") && q.contains("ref=refs%2Fheads%2Fmaster")),
        "{queries:?}"
    );
    let run = retag(&args(&s, &api.base, false));
    assert!(run.failed() && !run.changed(), "{}", run.stdout);
    nothing_moved(&s);

    // ovb failed for img1 (its only build for that digest): nothing moves.
    let mut without_img1 = s.digests.clone();
    without_img1.remove(&s.images[1]);
    let api = rdo_api(json!([
        stage("standalone", "SUCCESS", "s1", &s.digests),
        stage("ovb", "SUCCESS", "o2", &without_img1),
        stage("ovb", "FAILURE", "o1", &s.digests),
    ]));
    let run = retag(&args(&s, &api.base, false));
    assert!(run.failed(), "{}", run.stdout);
    assert!(
        run.msg().contains(&format!(
            "ovb failed (FAILURE) for {}@{}",
            s.images[1],
            s.digests[&s.images[1]].as_str().unwrap()
        )),
        "{}",
        run.msg()
    );
    assert!(!run.msg().contains(&s.images[0]), "{}", run.msg());
    nothing_moved(&s);

    // A build of another job, or one that tested another digest, counts
    // for nothing even if the API returns it.
    let mut other_digest = s.digests.clone();
    other_digest.insert(s.images[2].clone(), json!(format!("sha256:{}", "0".repeat(64))));
    let api = rdo_api(json!([
        stage("standalone", "SUCCESS", "s1", &s.digests),
        stage("ovb", "SUCCESS", "o3", &other_digest)
    ]));
    let run = retag(&args(&s, &api.base, false));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains(&format!("ovb missing for {}@", s.images[2])), "{}", run.msg());
    nothing_moved(&s);

    // Every criterion met. Check mode predicts, writes nothing, shows the diff.
    let api = rdo_api(json!([
        stage("standalone", "SUCCESS", "s1", &s.digests),
        stage("ovb", "SUCCESS", "o4", &s.digests)
    ]));
    let check = retag(&args(&s, &api.base, true));
    check.assert_ok();
    assert!(check.changed());
    assert_eq!(
        check.result["criteria"]["msg"], "2 jobs succeeded for all 3 images",
        "{}",
        check.stdout
    );
    assert!(check.result["diff"]["after"]
        .as_str()
        .unwrap()
        .contains("tripleo/img0:current-tripleo sha256:"));
    nothing_moved(&s);
    let real = retag(&args(&s, &api.base, false));
    real.assert_ok();
    assert!(real.changed());
    let met = real.result["criteria"]["met"].as_array().unwrap();
    assert_eq!(met.len(), 6, "{}", real.stdout);
    assert!(met.iter().any(|m| m["job"] == "ovb" && m["build"] == "o4"), "{}", real.stdout);
    for (n, image) in s.images.iter().enumerate() {
        assert_eq!(
            s.reg.digest(&format!("tripleo/img{n}:current-tripleo")).as_deref(),
            s.digests[image].as_str()
        );
    }
    // The registry's credentials (none here) and no header of any kind went to the API.
    assert!(api.authorizations.lock().unwrap().iter().all(String::is_empty));
    let again = retag(&args(&s, &api.base, false));
    again.assert_ok();
    assert!(!again.changed(), "{}", again.stdout);

    // The stage tag moves on to an image no job tested: nothing moves.
    let fx = Fixtures::get();
    s.reg.seed(&fx.single(3), "tripleo/img0:tripleo-ci-testing");
    let mut next = args(&s, &api.base, false);
    next["images"][0]["tags"] = json!(["next"]);
    let run = retag(&next);
    assert!(run.failed(), "{}", run.stdout);
    let moved_on = s.reg.digest("tripleo/img0:tripleo-ci-testing").unwrap();
    assert!(
        run.msg().contains(&format!("standalone missing for {}@{moved_on}", s.images[0])),
        "{}",
        run.msg()
    );
    assert_eq!(s.reg.digest("tripleo/img0:next"), None);
}

/// A build of an unmerged change in a pre-review pipeline ran the change's
/// own version of the job, which can record any artifact and succeed: it
/// does not satisfy the criteria, and the message says why. Builds of the
/// pipelines the criteria name do, changes or not, and the result says
/// which builds counted.
#[test]
fn only_builds_of_reviewed_code_meet_the_criteria() {
    let s = three_images();
    let api = rdo_api(json!([
        stage_in("check", Some(42), "standalone", "SUCCESS", "c1", &s.digests),
        stage_in("check", Some(42), "ovb", "SUCCESS", "c2", &s.digests),
    ]));
    let mut a = args(&s, &api.base, false);
    a["criteria"]["ref"] = Value::Null;
    let run = retag(&a);
    assert!(run.failed() && !run.changed(), "{}", run.stdout);
    assert!(
        run.msg()
            .contains("ovb failed (SUCCESS not counted: it ran change 42 in check before review"),
        "{}",
        run.msg()
    );
    for n in 0..3 {
        assert_eq!(s.reg.digest(&format!("tripleo/img{n}:current-tripleo")), None, "img{n} moved");
    }
    // The operator trusts gate: a gate build of a change counts, the check
    // build still does not.
    let api = rdo_api(json!([
        stage_in("check", Some(42), "standalone", "SUCCESS", "c1", &s.digests),
        stage_in("gate", Some(42), "standalone", "SUCCESS", "g1", &s.digests),
        stage_in("gate", Some(42), "ovb", "SUCCESS", "g2", &s.digests),
    ]));
    let mut a = args(&s, &api.base, false);
    a["criteria"]["ref"] = Value::Null;
    a["criteria"]["pipelines"] = json!(["gate"]);
    let run = retag(&a);
    run.assert_ok();
    let met = run.result["criteria"]["met"].as_array().unwrap();
    assert_eq!(met.len(), 6, "{}", run.stdout);
    assert!(met.iter().all(|m| m["pipeline"] == "gate" && m["change"] == "42"), "{met:?}");
    assert!(
        met.iter().any(|m| m["build"] == "g1") && !met.iter().any(|m| m["build"] == "c1"),
        "{met:?}"
    );
    assert_eq!(run.result["criteria"]["pipelines"], json!(["gate"]));
    for n in 0..3 {
        assert_eq!(
            s.reg.digest(&format!("tripleo/img{n}:current-tripleo")),
            s.reg.digest(&format!("tripleo/img{n}:tripleo-ci-testing"))
        );
    }
}

#[test]
fn criteria_options_are_checked() {
    let reg = "127.0.0.1:1";
    let base = |criteria: Value| {
        json!({
            "images": [{"repository": format!("{reg}/a/b"), "src_tag": "x", "tags": ["y"]}],
            "criteria": criteria,
            "registries": {reg: {"plain_http": true}},
        })
    };
    for (criteria, option, words) in [
        (
            json!({"api": "ftp://zuul.example/api/tenant/t", "jobs": ["j"]}),
            "criteria.api",
            "http or https",
        ),
        (
            json!({"api": "https://u:p@zuul.example/api/tenant/t", "jobs": ["j"]}),
            "criteria.api",
            "credentials",
        ),
        (
            json!({"api": "https://zuul.example/api/tenant/t", "jobs": []}),
            "criteria.jobs",
            "at least one job",
        ),
        (
            json!({"api": "https://zuul.example/api/tenant/t", "jobs": ["j"], "ca_cert": "/nonexistent/ca.pem"}),
            "criteria.ca_cert",
            "not a file",
        ),
        (
            json!({"api": "https://zuul.example/api/tenant/t", "jobs": ["j"], "tenant": "t"}),
            "criteria.tenant",
            "unsupported option",
        ),
    ] {
        let run = retag(&base(criteria));
        assert!(run.failed(), "{}", run.stdout);
        assert!(run.msg().contains(option) && run.msg().contains(words), "{option}: {}", run.msg());
    }
    let run = retag(&json!({"restore_from": "/nonexistent", "criteria": {"api": "https://z.example/api/tenant/t", "jobs": ["j"]}}));
    assert!(run.failed() && run.msg().contains("restore_from"), "{}", run.stdout);
}

/// One image in a registry that wants Basic credentials, to promote.
fn promotion(api: &str, extra: Value) -> (TestRegistry, Value) {
    let reg = TestRegistry::seeded(Kind::DistributionTls, &[(1, "tripleo/img:tripleo-ci-testing")]);
    let rw = reg.rw.as_ref().unwrap();
    let mut args = json!({
        "images": [{"repository": format!("{}/tripleo/img", reg.host), "src_tag": "tripleo-ci-testing", "tags": ["current-tripleo"]}],
        "criteria": {"api": api, "jobs": ["ovb"]},
        "registries": {reg.host.clone(): {"ca_cert": reg.ca_cert, "username": rw.name, "password": rw.password}},
        "retry_delay": 0,
    });
    if let (Value::Object(a), Value::Object(e)) = (&mut args, extra) {
        a.extend(e);
    }
    (reg, args)
}

#[test]
fn a_huge_builds_answer_is_refused() {
    let api = ZuulBuildsApi::misbehaving("rdo", json!([]), ZuulMisbehaviour::HugeBody(40 * 1024 * 1024));
    let (reg, args) = promotion(&api.base, json!({"retries": 0}));
    let start = Instant::now();
    let run = retag(&args);
    eprintln!("huge answer refused after {:?}", start.elapsed());
    assert!(run.failed(), "{}", run.stdout);
    assert!(
        run.msg().contains("could not be read") && run.msg().contains("answer larger than"),
        "{}",
        run.msg()
    );
    assert_eq!(reg.digest("tripleo/img:current-tripleo"), None, "nothing moved");
}

/// A page within the byte cap made of millions of tiny values (15 MiB of
/// `{},`): refused while it is parsed, so the module's memory stays bounded
/// (parsed whole into JSON values it took several hundred MiB).
#[test]
fn a_builds_page_of_tiny_values_is_refused_within_bounded_memory() {
    let api = ZuulBuildsApi::misbehaving("rdo", json!([]), ZuulMisbehaviour::DenseBody(15 * 1024 * 1024));
    let (reg, args) = promotion(&api.base, json!({"retries": 0}));
    let (run, peak_kib) = run_module_measured(Path::new(env!("CARGO_BIN_EXE_container_retag")), &args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("more than 1000000 JSON values"), "{}", run.msg());
    assert!(peak_kib < 200 * 1024, "the module's peak RSS was {} MiB", peak_kib / 1024);
    assert_eq!(reg.digest("tripleo/img:current-tripleo"), None, "nothing moved");
}

#[test]
fn a_builds_api_that_does_not_answer_is_given_up_on() {
    let api = ZuulBuildsApi::misbehaving("rdo", json!([]), ZuulMisbehaviour::Slow(Duration::from_secs(120)));
    let (reg, args) = promotion(&api.base, json!({"retries": 1, "timeout": 1}));
    let start = Instant::now();
    let run = retag(&args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("no answer within 1 seconds"), "{}", run.msg());
    assert!(start.elapsed() < Duration::from_secs(30), "held for {:?}", start.elapsed());
    assert_eq!(api.queries.lock().unwrap().len(), 2, "one retry");
    assert_eq!(reg.digest("tripleo/img:current-tripleo"), None, "nothing moved");
}

#[test]
fn a_redirect_to_another_origin_is_refused_and_nothing_is_sent_there() {
    let elsewhere = Recorder::start();
    let api = ZuulBuildsApi::misbehaving(
        "rdo",
        json!([]),
        ZuulMisbehaviour::RedirectTo(format!("{}/api/tenant/rdo/builds", elsewhere.url)),
    );
    let (reg, args) = promotion(&api.base, json!({}));
    let run = retag(&args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("another origin"), "{}", run.msg());
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert_eq!(reg.digest("tripleo/img:current-tripleo"), None, "nothing moved");
    // The API itself got no credential either.
    assert!(api.authorizations.lock().unwrap().iter().all(String::is_empty));
}

/// A builds API on the registry's own origin gets none of the registry's
/// credentials: the registry's transport never serves the API.
#[test]
fn a_builds_api_on_the_registrys_origin_gets_no_credentials() {
    let reg = HostileRegistry::start(Hostility {
        auth: Auth::Basic,
        ..Default::default()
    });
    let run = retag(&json!({
        "images": [{"repository": format!("{}/{}", reg.host, reg.repository), "src_tag": "v1", "tags": ["promoted"]}],
        "criteria": {"api": format!("http://{}/api/tenant/rdo", reg.host), "jobs": ["ovb"]},
        "registries": {reg.host.clone(): {"plain_http": true, "username": reg.user, "password": reg.password}},
        "retries": 0,
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().starts_with("nothing moved;"), "{}", run.msg());
    let seen = reg.seen();
    let api: Vec<_> = seen.iter().filter(|s| s.target.starts_with("/api/")).collect();
    assert!(!api.is_empty(), "the API was asked: {seen:?}");
    assert!(api.iter().all(|s| s.authorization.is_none()), "{api:?}");
    assert!(
        seen.iter().any(|s| s.authorization.is_some()),
        "the registry itself got its credentials"
    );
    assert_eq!(reg.count("PUT", "/manifests/"), 0, "nothing moved");
    assert!(!run.all_output().contains(&reg.password));
}

/// An https builds API is trusted through `criteria.ca_cert` (and not
/// without it): the registry's own TLS settings do not apply to it.
#[test]
fn an_https_builds_api_is_trusted_through_its_ca_cert() {
    let s = three_images();
    let api = ZuulBuildsApi::start_tls(
        "rdo",
        json!([
            stage("standalone", "SUCCESS", "s1", &s.digests),
            stage("ovb", "SUCCESS", "o1", &s.digests)
        ]),
    );
    let mut args = args(&s, &api.base, false);
    args["retries"] = json!(0);
    let untrusted = retag(&args);
    assert!(untrusted.failed(), "{}", untrusted.stdout);
    assert!(
        untrusted.msg().contains("could not be read")
            && untrusted.msg().contains("certificate")
            && untrusted.msg().contains("the API's CA with its ca_cert"),
        "{}",
        untrusted.msg()
    );
    assert_eq!(s.reg.digest("tripleo/img0:current-tripleo"), None, "nothing moved");
    args["criteria"]["ca_cert"] = json!(api.ca_cert);
    let trusted = retag(&args);
    trusted.assert_ok();
    assert_eq!(
        s.reg.digest("tripleo/img0:current-tripleo").as_deref(),
        s.digests[&s.images[0]].as_str()
    );
}

/// A builds API that ignores `limit` and `skip` and answers every page in
/// full is read for four pages per job, no more; the builds it returned
/// still decide (here: failed).
#[test]
fn pages_of_builds_are_bounded() {
    let s = three_images();
    let failures: Vec<Value> = (0..600).map(|n| stage("ovb", "FAILURE", &format!("f{n}"), &s.digests)).collect();
    let api = rdo_api(Value::Array(failures));
    let mut args = args(&s, &api.base, false);
    args["criteria"]["jobs"] = json!(["ovb"]);
    let run = retag(&args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(
        run.msg().contains(&format!("ovb failed (FAILURE) for {}@", s.images[0])),
        "{}",
        run.msg()
    );
    let queries = api.queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 4, "{queries:?}");
    assert!(queries[3].contains("skip=1800"), "{queries:?}");
    assert_eq!(s.reg.digest("tripleo/img0:current-tripleo"), None, "nothing moved");
}
