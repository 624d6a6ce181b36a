//! registry_mirror against real registries: the distribution registry
//! (plain; TLS with basic auth) and zuul-registry (TLS, bearer tokens).

use std::path::Path;

use imagegate_testkit::{run_module, FaultConfig, FaultProxy, Fixtures, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn module(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

fn registries(list: &[&TestRegistry]) -> Value {
    let mut m = serde_json::Map::new();
    for r in list {
        m.insert(r.host.clone(), r.module_entry());
    }
    Value::Object(m)
}

fn totals(run: &ModuleRun, key: &str) -> u64 {
    run.result["totals"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no totals.{key} in {}", run.stdout))
}

/// An engine client of the registry at `host` (plain HTTP), for a test's
/// own requests.
fn plain_client(host: &str) -> imagegate_registry::RegistryClient {
    let config = imagegate_registry::RegistryConfig {
        plain_http: true,
        ..Default::default()
    };
    imagegate_registry::Engine::new(Default::default())
        .client(host, "test", &config, Default::default())
        .unwrap()
}

/// Whether the registry stored anything at all under its data directory.
fn stored_files(reg: &TestRegistry) -> usize {
    fn count(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 }).sum())
            .unwrap_or(0)
    }
    count(&reg.data_dir())
}

/// The four-run pattern against one kind of registry: check mode with diff,
/// real run, check mode again, real run again; a single image and an index.
fn mirror_on(kind: Kind) {
    let fx = Fixtures::get();
    let src = TestRegistry::start(kind);
    let dst = TestRegistry::start(kind);
    src.seed(&fx.single(1), "team/app:v1");
    src.seed(&fx.multi(), "team/multi:2.0");
    let mut args = json!({
        "images": [
            {"src": format!("{}/team/app:v1", src.host), "dest": format!("{}/mirror/app", dst.host)},
            {"src": format!("{}/team/multi:2.0", src.host), "dest": format!("{}/mirror/multi:stable", dst.host)},
        ],
        "registries": registries(&[&src, &dst]),
        "_ansible_diff": true,
        "_ansible_check_mode": true,
    });
    let before_files = stored_files(&dst);

    let check = module(&args);
    check.assert_ok();
    assert!(check.changed(), "check mode predicts a change: {}", check.stdout);
    assert_eq!(stored_files(&dst), before_files, "check mode wrote to the registry");
    assert_eq!(dst.digest("mirror/app:v1"), None);
    let diff = &check.result["diff"];
    assert!(diff["before"].as_str().unwrap().contains("mirror/app:v1 (absent)"), "{diff}");
    let want_app = src.digest("team/app:v1").unwrap();
    let want_multi = src.digest("team/multi:2.0").unwrap();
    assert!(diff["after"].as_str().unwrap().contains(&want_app), "{diff}");
    assert_eq!(totals(&check, "bytes_moved"), 0);

    args["_ansible_check_mode"] = json!(false);
    let real = module(&args);
    real.assert_ok();
    assert!(real.changed());
    assert_eq!(real.result["diff"], check.result["diff"], "check mode predicted the real run");
    assert_eq!(dst.digest("mirror/app:v1").as_deref(), Some(want_app.as_str()));
    assert_eq!(dst.digest("mirror/multi:stable").as_deref(), Some(want_multi.as_str()));
    // The index arrived with every platform's manifest.
    let index: Value = serde_json::from_slice(&dst.raw_manifest("mirror/multi:stable")).unwrap();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    for child in children {
        let d = child["digest"].as_str().unwrap();
        dst.assert_holds("mirror/multi", d, "a platform manifest of the index");
    }
    assert!(totals(&real, "bytes_moved") > 0);
    assert_eq!(real.result["images"][0]["src_digest"], real.result["images"][0]["dest_digest"]);

    args["_ansible_check_mode"] = json!(true);
    let check2 = module(&args);
    check2.assert_ok();
    assert!(!check2.changed(), "{}", check2.stdout);

    args["_ansible_check_mode"] = json!(false);
    let again = module(&args);
    again.assert_ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_eq!(totals(&again, "bytes_moved"), 0);
    assert_eq!(totals(&again, "blobs_copied"), 0);
    assert_eq!(totals(&again, "manifests_written"), 0);
}

imagegate_testkit::test_each_kind!(
    mirror_on:
    mirror_distribution_plain => Distribution,
    mirror_distribution_tls_basic_auth => DistributionTls,
    mirror_zuul_registry_tokens => Zuul,
);

/// Within one registry blobs are mounted (distribution) or already shared
/// (zuul-registry keeps one blob store): no blob byte is streamed.
#[test]
fn same_registry_copy_streams_no_blob() {
    let fx = Fixtures::get();
    for kind in Kind::ALL {
        let reg = TestRegistry::start(kind);
        reg.seed(&fx.single(2), "one/app:v1");
        reg.seed(&fx.multi(), "one/multi:v1");
        let run = module(&json!({
            "images": [
                {"src": format!("{}/one/app:v1", reg.host), "dest": format!("{}/two/app", reg.host)},
                {"src": format!("{}/one/multi:v1", reg.host), "dest": format!("{}/two/multi", reg.host)},
            ],
            "registries": registries(&[&reg]),
        }));
        run.assert_ok();
        assert!(run.changed());
        assert_eq!(totals(&run, "bytes_moved"), 0, "{kind:?}: {}", run.stdout);
        assert_eq!(totals(&run, "blobs_copied"), 0, "{kind:?}");
        if kind != Kind::Zuul {
            assert!(totals(&run, "blobs_mounted") >= 2, "{kind:?}: {}", run.stdout);
        }
        assert_eq!(reg.digest("one/app:v1"), reg.digest("two/app:v1"));
        assert_eq!(reg.digest("one/multi:v1"), reg.digest("two/multi:v1"));
    }
}

/// Ten images through proxies injecting 20% faults of every kind but byte
/// flips, in front of both the source and the destination.
#[test]
fn survives_twenty_percent_faults() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Distribution);
    let src_proxy = FaultProxy::start(
        &format!("http://{}", src.host),
        FaultConfig {
            seed: 11,
            ..FaultConfig::mixed(0.2)
        },
    );
    let dst_proxy = FaultProxy::start(
        &format!("http://{}", dst.host),
        FaultConfig {
            seed: 23,
            ..FaultConfig::mixed(0.2)
        },
    );
    let images: Vec<Value> = (0..10)
        .map(|n| {
            src.seed(&fx.single(n), &format!("faulty/img{n}:v{n}"));
            json!({"src": format!("{}/faulty/img{n}:v{n}", src_proxy.host), "dest": format!("{}/copied/img{n}", dst_proxy.host)})
        })
        .collect();
    let run = module(&json!({
        "images": images,
        "registries": {
            src_proxy.host.clone(): {"plain_http": true},
            dst_proxy.host.clone(): {"plain_http": true},
        },
        "retries": 10,
        "retry_delay": 0.05,
    }));
    run.assert_ok();
    use std::sync::atomic::Ordering::Relaxed;
    let c = (&src_proxy.counters, &dst_proxy.counters);
    let (errors, limited, cuts) = (
        c.0.errors.load(Relaxed) + c.1.errors.load(Relaxed),
        c.0.rate_limited.load(Relaxed) + c.1.rate_limited.load(Relaxed),
        c.0.cuts.load(Relaxed) + c.1.cuts.load(Relaxed),
    );
    eprintln!("injected: {errors} errors, {limited} rate limits, {cuts} cut bodies; {}", run.msg());
    assert!(errors > 0 && limited > 0 && cuts > 0, "every kind of fault is injected");
    assert!(totals(&run, "retries") > 0, "{}", run.stdout);
    for n in 0..10 {
        let want = src.digest(&format!("faulty/img{n}:v{n}")).unwrap();
        assert_eq!(dst.digest(&format!("copied/img{n}:v{n}")), Some(want), "image {n}");
    }
}

/// What the benchmarks report beside their times: the proxy counts the
/// requests it forwarded and the body bytes each way, and its own stats
/// path is not counted.
#[test]
fn the_proxy_counts_requests_and_bytes_for_the_benchmarks() {
    let src = TestRegistry::seeded(Kind::Distribution, &[(5, "counted/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let sp = FaultProxy::start(&format!("http://{}", src.host), FaultConfig::default());
    let dp = FaultProxy::start(&format!("http://{}", dst.host), FaultConfig::default());
    let stats = |host: &str| -> Value {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            imagegate_testkit::STATS_PATH
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    };
    assert_eq!(stats(&sp.host)["requests"], 0);
    let run = module(&json!({
        "images": [{"src": format!("{}/counted/app:v1", sp.host), "dest": format!("{}/counted/app", dp.host)}],
        "registries": {sp.host.clone(): {"plain_http": true}, dp.host.clone(): {"plain_http": true}},
    }));
    run.assert_ok();
    let moved = totals(&run, "bytes_moved");
    let (s, d) = (stats(&sp.host), stats(&dp.host));
    assert_eq!(stats(&sp.host), s, "asking for the stats is not counted");
    // Every blob came down from the source and went up to the destination,
    // with the manifests and the config beside them.
    assert!(moved > 0);
    assert!(s["bytes_down"].as_u64().unwrap() >= moved, "{s} vs {moved}");
    assert!(d["bytes_up"].as_u64().unwrap() >= moved, "{d} vs {moved}");
    assert_eq!(s["bytes_up"], 0, "nothing was uploaded to the source");
    assert!(s["requests"].as_u64().unwrap() >= 2, "{s}");
    assert!(d["requests"].as_u64().unwrap() >= 3, "{d}");
}

/// A byte flipped in transit fails the copy with a digest error naming the
/// blob, and the destination tag is never created.
#[test]
fn a_flipped_byte_fails_and_tags_nothing() {
    let src = TestRegistry::seeded(Kind::Distribution, &[(3, "flip/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let proxy = FaultProxy::before(&src, |f| f.flip_blobs = true);
    let run = module(&json!({
        "images": [{"src": format!("{}/flip/app:v1", proxy.host), "dest": format!("{}/flip/app", dst.host)}],
        "registries": {proxy.host.clone(): {"plain_http": true}, dst.host.clone(): {"plain_http": true}},
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(!run.success, "exit code non-zero on failure");
    let msg = run.msg();
    assert!(msg.contains("digest mismatch for blob sha256:"), "{msg}");
    assert!(proxy.counters.flips.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(dst.digest("flip/app:v1"), None, "the tag must not exist");
}

/// Tag selection: a list, a regex, every tag; and a platform filter.
#[test]
fn tag_selection_and_platforms() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Distribution);
    for (n, tag) in [(4, "v1"), (5, "v2"), (6, "dev")] {
        src.seed(&fx.single(n), &format!("sel/app:{tag}"));
    }
    src.seed(&fx.multi(), "sel/multi:v1");
    let regs = registries(&[&src, &dst]);
    let run = module(&json!({
        "images": [
            {"src": format!("{}/sel/app", src.host), "dest": format!("{}/re/app", dst.host), "tag_regex": "^v[0-9]+$"},
            {"src": format!("{}/sel/app", src.host), "dest": format!("{}/all/app", dst.host), "all_tags": true},
            {"src": format!("{}/sel/app", src.host), "dest": format!("{}/list/app", dst.host), "tags": ["dev"]},
            {"src": format!("{}/sel/multi:v1", src.host), "dest": format!("{}/arm/multi", dst.host), "platforms": ["linux/arm64"]},
        ],
        "registries": regs,
    }));
    run.assert_ok();
    assert!(dst.digest("re/app:v1").is_some() && dst.digest("re/app:v2").is_some());
    assert_eq!(dst.digest("re/app:dev"), None);
    for tag in ["v1", "v2", "dev"] {
        assert_eq!(dst.digest(&format!("all/app:{tag}")), src.digest(&format!("sel/app:{tag}")));
    }
    assert_eq!(dst.digest("list/app:dev"), src.digest("sel/app:dev"));
    assert_eq!(dst.digest("list/app:v1"), None);
    let index: Value = serde_json::from_slice(&dst.raw_manifest("arm/multi:v1")).unwrap();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["platform"]["architecture"], "arm64");
}

/// The zuul-jobs item shape with `dest_registry` naming the credentials, and
/// chunked uploads.
#[test]
fn zuul_jobs_items_and_chunked_upload() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    for kind in [Kind::DistributionTls, Kind::Zuul] {
        let dst = TestRegistry::start(kind);
        src.seed(&fx.single(7), "zj/app:1.0");
        let mut entry = dst.module_entry();
        entry["repository"] = json!("^(zj|[0-9.:]+/zj)/");
        let run = module(&json!({
            "images": [{
                "src_repository": format!("{}/zj/app", src.host), "src_tag": "1.0",
                "dest_repository": format!("{}/zj/app", dst.host), "dest_tag": "latest",
                "dest_registry": "target",
            }],
            "registries": {src.host.clone(): src.module_entry(), "target": entry},
            "upload_chunk_size": 65536,
        }));
        run.assert_ok();
        assert_eq!(dst.digest("zj/app:latest"), src.digest("zj/app:1.0"), "{kind:?}");
    }
}

/// Blob GETs redirected to another origin (as registries do to object
/// storage): the copy succeeds and the registry's Authorization header never
/// reaches the other host.
#[test]
fn redirects_never_carry_credentials_to_another_host() {
    let src = TestRegistry::seeded(Kind::DistributionTls, &[(0, "redir/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let proxy = FaultProxy::before(&src, |f| f.redirect_blobs = true);
    let rw = src.rw.as_ref().unwrap();
    let run = module(&json!({
        "images": [{"src": format!("{}/redir/app:v1", proxy.host), "dest": format!("{}/redir/app", dst.host)}],
        "registries": {
            proxy.host.clone(): {"plain_http": true, "username": rw.name, "password": rw.password},
            dst.host.clone(): {"plain_http": true},
        },
    }));
    run.assert_ok();
    assert_eq!(dst.digest("redir/app:v1"), src.digest("redir/app:v1"));
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        proxy.counters.storage_requests.load(Relaxed) >= 2,
        "blobs were fetched through the redirect"
    );
    assert_eq!(
        proxy.counters.storage_with_auth.load(Relaxed),
        0,
        "Authorization was sent to another host"
    );
}

/// Credentials from an auth file (the format docker and podman write), and a
/// CA trusted through the system store rather than `ca_cert`: the store is
/// read from `SSL_CERT_FILE` here, the same loading path that picks up a CA
/// installed with update-ca-certificates.
#[test]
fn auth_file_and_system_ca_store() {
    use base64::Engine as _;
    let src = TestRegistry::seeded(Kind::Distribution, &[(1, "af/app:v1")]);
    let dst = TestRegistry::start(Kind::DistributionTls);
    let rw = dst.rw.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", rw.name, rw.password));
    std::fs::write(&auth, json!({"auths": {dst.host.clone(): {"auth": token}}}).to_string()).unwrap();
    let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    bundle.extend(std::fs::read(dst.ca_cert.as_ref().unwrap()).unwrap());
    let bundle_path = dir.path().join("bundle.pem");
    std::fs::write(&bundle_path, bundle).unwrap();

    let args_path = dir.path().join("args");
    std::fs::write(
        &args_path,
        json!({
            "images": [{"src": format!("{}/af/app:v1", src.host), "dest": format!("{}/af/app", dst.host)}],
            "registries": {src.host.clone(): {"plain_http": true}},
            "auth_file": auth,
        })
        .to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry_mirror"))
        .arg(&args_path)
        .env("SSL_CERT_FILE", &bundle_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains(&rw.password));
    assert_eq!(dst.digest("af/app:v1"), src.digest("af/app:v1"));

    // Without the CA in the store the same run fails on the certificate.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry_mirror"))
        .arg(&args_path)
        .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["failed"], json!(true), "{result}");
    assert!(result["msg"].as_str().unwrap().contains("certificate"), "{result}");
}

/// `Retry-After` is honoured on manifest PUTs: the first two PUTs are
/// answered 429 with `Retry-After: 1`, the backoff is set to 10 ms, and the
/// copy still takes at least the two seconds the registry asked for.
#[test]
fn retry_after_is_honoured_on_manifest_put() {
    let src = TestRegistry::seeded(Kind::Distribution, &[(2, "ra/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let proxy = FaultProxy::before(&dst, |f| {
        f.limit_manifest_puts = 2;
        f.retry_after_secs = 1;
    });
    let start = std::time::Instant::now();
    let run = module(&json!({
        "images": [{"src": format!("{}/ra/app:v1", src.host), "dest": format!("{}/ra/app", proxy.host)}],
        "registries": {src.host.clone(): {"plain_http": true}, proxy.host.clone(): {"plain_http": true}},
        "retry_delay": 0.01,
    }));
    let elapsed = start.elapsed();
    run.assert_ok();
    assert_eq!(totals(&run, "retries"), 2, "{}", run.stdout);
    assert!(elapsed >= std::time::Duration::from_secs(2), "waited only {elapsed:?}");
    assert_eq!(dst.digest("ra/app:v1"), src.digest("ra/app:v1"));
}

/// Tag lists are followed across pages (`Link: <...>; rel="next"`).
/// distribution 2.8 answers tag lists whole, so the proxy pages them.
#[test]
fn tag_lists_follow_pagination() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    let tags = ["a1", "a2", "b1", "b2", "c1"];
    for t in tags {
        reg.seed(&fx.single(3), &format!("pg/app:{t}"));
    }
    let proxy = FaultProxy::before(&reg, |f| f.paginate_tags = true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = plain_client(&proxy.host);
    let mut listed = rt.block_on(client.list_tags_paged("pg/app", 2)).unwrap().tags;
    listed.sort();
    assert_eq!(listed, tags);
    let requests = proxy.counters.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(requests, 3, "five tags in pages of two take three requests");
}

/// An entry of more tags than the result lists one by one (1,000): the
/// first thousand are listed, the rest added up in one summary that names
/// the tags it changed; the totals and the diff count every tag.
#[test]
fn many_tags_of_one_entry_are_summarised_past_a_thousand() {
    const TAGS: usize = 1004; // plus v1: five past the thousand listed
    let src = TestRegistry::seeded(Kind::Distribution, &[(2, "many/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = plain_client(&src.host);
    rt.block_on(async {
        use futures_util::StreamExt;
        let m = client.get_manifest("many/app", "v1").await.unwrap();
        let m = &m;
        let client = &client;
        futures_util::stream::iter((0..TAGS).map(|n| async move { client.put_manifest("many/app", &format!("t{n:04}"), m).await }))
            .buffer_unordered(16)
            .for_each(|r| async { r.unwrap() })
            .await;
    });
    let want = src.digest("many/app:v1");
    let args = |check: bool| {
        json!({
            "images": [{"src": format!("{}/many/app", src.host), "dest": format!("{}/many/app", dst.host), "all_tags": true}],
            "registries": registries(&[&src, &dst]),
            "_ansible_check_mode": check,
            "_ansible_diff": true,
        })
    };
    let summary_of = |run: &ModuleRun| -> Value {
        let images = run.result["images"].as_array().unwrap();
        assert_eq!(images.len(), 1001, "a thousand listed and one summary");
        assert!(images[..1000]
            .iter()
            .all(|i| i["summary"].is_null() && i["tags"].as_array().unwrap().len() == 1));
        // Tags sorted: t0000..t1003, v1; the last five are summarised.
        assert_eq!(images[999]["tags"][0]["tag"], "t0999");
        let s = images[1000].clone();
        assert_eq!(s["summary"], true);
        assert_eq!(s["copies"], 5);
        assert_eq!(s["dest"], format!("{}/many/app", dst.host));
        s
    };
    let five = json!(["t1000", "t1001", "t1002", "t1003", "v1"]);

    let check = module(&args(true));
    check.assert_ok();
    assert!(check.changed());
    assert_eq!(totals(&check, "images"), TAGS as u64 + 1);
    assert_eq!(totals(&check, "tags_changed"), TAGS as u64 + 1);
    let s = summary_of(&check);
    assert_eq!(s["changed_tags"], five);
    assert_eq!(s["changed"], true);
    let after = check.result["diff"]["after"].as_str().unwrap();
    assert!(after.contains("many/app:t0999 sha256:"), "listed tags are in the diff");
    assert!(
        after.contains("5 more tags, 5 of them to change"),
        "{}",
        &after[after.len().saturating_sub(300)..]
    );
    assert_eq!(dst.digest("many/app:v1"), None, "check mode wrote nothing");

    let real = module(&args(false));
    real.assert_ok();
    assert!(real.changed());
    let s = summary_of(&real);
    assert_eq!(s["changed_tags"], five);
    for tag in ["t0000", "t0999", "t1003", "v1"] {
        assert_eq!(dst.digest(&format!("many/app:{tag}")), want, "{tag}");
    }

    let again = module(&args(false));
    again.assert_ok();
    assert!(!again.changed(), "{}", again.msg());
    assert_eq!(totals(&again, "tags_changed"), 0);
    let s = summary_of(&again);
    assert_eq!(s["changed_tags"], json!([]));
    assert_eq!(s["changed"], false);
}

/// An item whose tags fail part-way (the registry denies one manifest PUT):
/// the run fails naming the item, and reports as moved, and as changed,
/// exactly the tags that did move.
#[test]
fn a_part_way_failure_of_many_tags_reports_the_tags_that_moved() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Distribution);
    for (n, tag) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        src.seed(&fx.single(n), &format!("part/app:{tag}"));
    }
    let proxy = FaultProxy::before(&dst, |f| f.deny_manifest_put = Some(2));
    let run = module(&json!({
        "images": [{"src": format!("{}/part/app", src.host), "dest": format!("{}/part/app", proxy.host), "all_tags": true}],
        "registries": {src.host.clone(): {"plain_http": true}, proxy.host.clone(): {"plain_http": true}},
        "referrers": false,
    }));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("images[0]"), "{}", run.msg());
    let moved: Vec<String> = serde_json::from_value(run.result["moved"].clone()).unwrap();
    let there: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .filter(|t| dst.digest(&format!("part/app:{t}")).is_some())
        .map(|t| format!("{}/part/app:{t}", proxy.host))
        .collect();
    assert!(!there.is_empty() && there.len() < 6, "some tags moved, not all: {there:?}");
    let mut sorted = moved.clone();
    sorted.sort();
    assert_eq!(sorted, there, "moved names exactly the tags that are there");
    assert!(run.changed(), "tags moved before the failure: {}", run.stdout);
    let listed = run.result["images"].as_array().unwrap();
    assert_eq!(
        listed.iter().filter(|i| i["changed"] == true).count(),
        there.len(),
        "{}",
        run.stdout
    );
    assert_eq!(listed.iter().filter(|i| i["failed"] == true).count(), 1, "{}", run.stdout);
}

/// Between two registries, blobs above 16 KiB are looked for at the
/// destination before they are sent; smaller ones (the config) are sent
/// without the question. Within one registry every blob is looked for.
#[test]
fn only_blobs_above_16_kib_are_looked_for_before_they_are_sent() {
    let src = TestRegistry::seeded(Kind::Distribution, &[(1, "ask/app:v1")]);
    let dest = imagegate_testkit::HostileRegistry::start(imagegate_testkit::Hostility::default());
    let run = module(&json!({
        "images": [{"src": format!("{}/ask/app:v1", src.host), "dest": format!("{}/copy/app", dest.host)}],
        "registries": {src.host.clone(): {"plain_http": true}, dest.host.clone(): {"plain_http": true}},
        "referrers": false,
    }));
    run.assert_ok();
    let m: Value = serde_json::from_slice(&src.raw_manifest("ask/app:v1")).unwrap();
    let blobs: Vec<&Value> = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()).collect();
    let (mut small, mut large) = (0, 0);
    for d in blobs {
        let (digest, size) = (d["digest"].as_str().unwrap(), d["size"].as_u64().unwrap());
        let heads = dest.count("HEAD", &format!("/copy/app/blobs/{digest}"));
        if size > 16 * 1024 {
            large += 1;
            assert_eq!(heads, 1, "a blob of {size} bytes is looked for first");
        } else {
            small += 1;
            assert_eq!(heads, 0, "a blob of {size} bytes is sent without asking");
        }
    }
    assert!(small > 0 && large > 0, "the fixture has blobs of both kinds");
    assert_eq!(totals(&run, "blobs_copied"), small + large);

    // Within one registry nothing is sent: each blob is looked for, then mounted.
    let run = module(&json!({
        "images": [{"src": format!("{}/ask/app:v1", src.host), "dest": format!("{}/again/app", src.host)}],
        "registries": registries(&[&src]),
        "referrers": false,
    }));
    run.assert_ok();
    assert_eq!(totals(&run, "blobs_copied"), 0, "{}", run.stdout);
}

/// Over TLS the registry's small requests share one HTTP/2 connection where
/// it offers one, and blob bodies (GETs and upload PUTs) go over HTTP/1.1:
/// distribution's Go server spends about a quarter less processor time
/// serving those (docs/architecture.md). Read from the registries' own access logs.
#[test]
fn over_tls_blob_bodies_go_over_http1_and_the_rest_over_http2() {
    let fx = Fixtures::get();
    let src = TestRegistry::start_logging_requests(Kind::DistributionTls);
    let dst = TestRegistry::start_logging_requests(Kind::DistributionTls);
    src.seed(&fx.single(1), "proto/app:v1");
    let seeded = src.requests().len();
    let run = module(&json!({
        "images": [{"src": format!("{}/proto/app:v1", src.host), "dest": format!("{}/proto/app", dst.host)}],
        "registries": registries(&[&src, &dst]),
        "referrers": false,
    }));
    run.assert_ok();
    assert!(totals(&run, "blobs_copied") >= 2, "{}", run.stdout);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let (got, sent) = (src.requests(), dst.requests());
    for (method, path, proto) in got[seeded..].iter().chain(&sent) {
        let kind = if method == "GET" && path.contains("/blobs/sha256:") {
            "blob body read"
        } else if (method == "PUT" || method == "PATCH") && path.contains("/blobs/uploads/") {
            "blob body sent"
        } else if path.contains("/manifests/") || (method == "HEAD" && path.contains("/blobs/")) {
            "small request"
        } else {
            continue;
        };
        let want = if kind == "small request" { "HTTP/2.0" } else { "HTTP/1.1" };
        assert_eq!(proto, want, "{kind}: {method} {path}");
        *seen.entry(kind).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "every kind of request was seen: {seen:?}");
    assert_eq!(seen["blob body read"] as u64, totals(&run, "blobs_copied"), "{seen:?}");
}

/// A digest source without a destination tag is copied by digest: the
/// manifest (an index with its children, or an image) is in the destination
/// repository under no tag, byte for byte; a second run changes nothing.
#[test]
fn a_digest_copies_by_digest_under_no_tag() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    src.seed(&fx.multi(), "set/multi:v1");
    src.seed(&fx.single(5), "set/single:v1");
    for kind in [Kind::Distribution, Kind::Zuul] {
        let dst = TestRegistry::start(kind);
        let regs = registries(&[&src, &dst]);
        for repo in ["set/multi", "set/single"] {
            let digest = src.digest(&format!("{repo}:v1")).unwrap();
            let args = json!({
                "images": [{"src": format!("{}/{repo}@{digest}", src.host), "dest": format!("{}/{repo}", dst.host)}],
                "registries": regs,
            });
            let run = module(&args);
            run.assert_ok();
            assert!(run.changed(), "{kind:?} {repo}: {}", run.stdout);
            assert_eq!(run.result["images"][0]["tags"][0]["tag"], json!(digest), "{}", run.stdout);
            dst.assert_holds(repo, &digest, &format!("{kind:?} {repo} by digest"));
            assert_eq!(
                dst.raw_manifest(&format!("{repo}@{digest}")),
                src.raw_manifest(&format!("{repo}@{digest}")),
                "byte for byte"
            );
            // zuul-registry lists every manifest reference it was given,
            // digests too (as it lists an index's children): no tag name.
            let listed = dst.tags(repo);
            assert!(
                listed.iter().all(|t| t.starts_with("sha256:")),
                "{kind:?} {repo}: no tag: {listed:?}"
            );
            if kind == Kind::Distribution {
                assert!(listed.is_empty(), "{listed:?}");
            }
            let again = module(&args);
            again.assert_ok();
            assert!(!again.changed(), "{kind:?} {repo}: {}", again.stdout);
        }
    }
}
