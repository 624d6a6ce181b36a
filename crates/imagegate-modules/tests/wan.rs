//! Transfers over slow and broken links, between real registries
//! (distribution) with the test kit's proxy in front pacing blob bodies to a
//! byte rate or cutting them: large layers copy however long they take
//! while they keep moving, and a download that breaks continues where it
//! stopped. (The intermediate-registry promotion copies with
//! registry_mirror, so the mirror's test stands for it.)

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use imagegate_testkit::fixtures::big_image;
use imagegate_testkit::{run_module, FaultConfig, FaultProxy, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn mirror(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

fn push(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_push")), args)
}

const MIB: usize = 1024 * 1024;

/// A big image: one layer of `bytes` (made from `seed`) in a layout of its
/// own, and two plain registries, the image in the first under `repo_tag`.
/// Gives back the layout's directory, the source, the destination, the
/// image's digest and the layer's size.
fn big(bytes: usize, seed: u64, repo_tag: &str) -> (tempfile::TempDir, TestRegistry, TestRegistry, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let image = big_image(dir.path(), bytes, seed);
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Distribution);
    src.seed(&image, repo_tag);
    let want = src.digest(repo_tag).unwrap();
    (dir, src, dst, want, bytes as u64)
}

/// A 64 MiB layer over a link of 450 KiB/s (about 150 s, longer than any
/// fixed timer of the HTTP client): pulled from a slow source by
/// registry_mirror, and pushed from a layout to a destination that reads
/// that slowly by container_push, both at once. Each body moves the whole
/// time, so neither is cut off; digests exact, progress in the log.
#[test]
fn a_64_mib_layer_copies_over_a_450_kib_per_second_link() {
    let (dir, src, dst, want, _) = big(64 * MIB, 1, "wan/big:v1");
    let slow = FaultConfig {
        blob_rate: 450 * 1024,
        ..FaultConfig::default()
    };
    let slow_src = FaultProxy::start(&format!("http://{}", src.host), slow.clone());
    let slow_dst = FaultProxy::start(&format!("http://{}", dst.host), slow);

    let mirror_args = json!({
        "images": [{"src": format!("{}/wan/big:v1", slow_src.host), "dest": format!("{}/mirrored/big", dst.host)}],
        "registries": {slow_src.host.clone(): {"plain_http": true}, dst.host.clone(): {"plain_http": true}},
    });
    let push_args = json!({
        "layout": dir.path(),
        "name": "big",
        "repository": format!("{}/pushed/big", slow_dst.host),
        "tags": ["v1"],
        "registries": {slow_dst.host.clone(): {"plain_http": true}},
    });
    let mirrored = std::thread::spawn(move || mirror(&mirror_args));
    let pushed = push(&push_args);
    let mirrored = mirrored.join().unwrap();

    mirrored.assert_ok();
    pushed.assert_ok();
    assert_eq!(dst.digest("mirrored/big:v1"), Some(want));
    // The layout's own manifest (skopeo wrote the source's anew).
    let index: Value = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(dst.digest("pushed/big:v1").as_deref(), index["manifests"][0]["digest"].as_str());
    for (name, run, stats) in [
        ("mirror", &mirrored, &mirrored.result["totals"]),
        ("push", &pushed, &pushed.result["stats"]),
    ] {
        assert!(
            run.stderr.contains("of 64.0 MiB (") && run.stderr.contains("left"),
            "{name}: no progress lines: {}",
            run.stderr
        );
        assert!(stats["seconds"].as_f64().unwrap() > 100.0, "{name}: {stats}");
        let rate = stats["bytes_per_second"].as_u64().unwrap();
        assert!((300 * 1024..=460 * 1024).contains(&rate), "{name}: mean rate {rate}");
        assert_eq!(stats["bytes_resent"], 0, "{name}: {stats}");
    }
    assert!(slow_src.counters.blob_bytes_down.load(Relaxed) >= 64 * MIB as u64);
    assert!(slow_dst.counters.bytes_up.load(Relaxed) >= 64 * MIB as u64);
}

/// A download cut at half its bytes continues with a range request: the
/// source serves less than a tenth of the blob twice and nothing is resent.
/// A source that ignores `Range` sends the whole blob again; the copy
/// still completes, digest exact, and the bytes sent again are counted.
#[test]
fn a_cut_download_resumes_where_it_broke() {
    let (_dir, src, dst, want, size) = big(16 * MIB, 2, "wan/cut:v1");
    for (ignore_range, dest) in [(false, "resumed/cut"), (true, "restarted/cut")] {
        let proxy = FaultProxy::before(&src, |f| {
            f.cut_blob_gets = 1;
            f.ignore_range = ignore_range;
        });
        let run = mirror(&json!({
            "images": [{"src": format!("{}/wan/cut:v1", proxy.host), "dest": format!("{}/{dest}", dst.host)}],
            "registries": {proxy.host.clone(): {"plain_http": true}, dst.host.clone(): {"plain_http": true}},
        }));
        run.assert_ok();
        assert_eq!(dst.digest(&format!("{dest}:v1")), Some(want.clone()), "{dest}");
        assert_eq!(proxy.counters.cuts.load(Relaxed), 1, "{dest}: the download was cut");
        assert!(run.stderr.contains("the download broke after"), "{dest}: {}", run.stderr);
        let served = proxy.counters.blob_bytes_down.load(Relaxed);
        let resent = run.result["totals"]["bytes_resent"].as_u64().unwrap();
        assert_eq!(run.result["totals"]["retries"], 0, "{dest}: resumed, not retried: {}", run.stdout);
        if ignore_range {
            assert!(run.stderr.contains("no range support"), "{}", run.stderr);
            assert!(served >= size + size / 2, "the whole blob again: {served}");
            assert!((size / 4..=size).contains(&resent), "bytes sent again are counted: {resent}");
        } else {
            assert!(served - size < size / 10, "served twice: {} of {size}", served - size);
            assert_eq!(resent, 0, "{}", run.stdout);
        }
    }
}

/// A chunked upload that fails after the registry acknowledged a chunk
/// continues its session from the registry's offset (`GET` on the upload,
/// `Range: 0-<last>`): the second of three 8 MiB chunks refused with 503
/// costs one retry and no chunk the registry already holds. Where the
/// session is gone (distribution drops one whose chunk broke midway), the
/// retry starts a new upload, and the bytes sent again are counted.
#[test]
fn a_chunked_upload_resumes_where_the_registry_holds_its_chunks() {
    // skopeo compresses the layer on its way to the source: a little more.
    let (_dir, src, dst, want, size) = big(24 * MIB, 3, "wan/chunked:v1");
    for (refuse, dest) in [(true, "resumed/chunked"), (false, "restarted/chunked")] {
        let proxy = FaultProxy::before(&dst, |f| {
            f.refuse_patch = refuse.then_some(1);
            f.cut_patch = (!refuse).then_some(1);
        });
        let run = mirror(&json!({
            "images": [{"src": format!("{}/wan/chunked:v1", src.host), "dest": format!("{}/{dest}", proxy.host)}],
            "registries": {src.host.clone(): {"plain_http": true}, proxy.host.clone(): {"plain_http": true}},
            "upload_chunk_size": 8 * MIB,
            "retry_delay": 0.05,
        }));
        run.assert_ok();
        assert_eq!(dst.digest(&format!("{dest}:v1")), Some(want.clone()), "{dest}");
        let totals = &run.result["totals"];
        assert_eq!(totals["retries"], 1, "{dest}: {totals}");
        let up = proxy.counters.bytes_up.load(Relaxed);
        let resent = totals["bytes_resent"].as_u64().unwrap();
        if refuse {
            let at: u64 = run
                .stderr
                .split("resuming the upload at byte ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no resumed upload: {}", run.stderr));
            assert!(at >= 8 * MIB as u64 && at < 9 * MIB as u64, "resumed after the first chunk: {at}");
            assert!(up < size + size / 10, "the registry was sent {up} bytes for {size}");
            assert!(resent <= 8 * MIB as u64, "at most the refused chunk: {resent}");
        } else {
            assert!(run.stderr.contains("starting a new upload"), "{}", run.stderr);
            assert!(up >= size + 8 * MIB as u64, "the first chunk went twice: {up}");
            assert!(resent >= 8 * MIB as u64, "{totals}");
        }
    }
}

/// A source that goes silent half way through a blob: the attempt fails
/// after about one stall window (here 2 s; 30 s by default), and the retry
/// of a chunked upload continues at the registry's offset, reading the
/// source from there with a range request, so little is served or sent
/// twice. A source that stalls on every attempt fails within the windows
/// and backoff of the retry budget, naming the blob and both registries,
/// and writes no tag. (Through the engine: the stall window is no module
/// option.)
#[test]
fn a_stalled_source_fails_its_attempt_and_the_retry_resumes() {
    use imagegate_registry::{
        copy_image, BlobCache, CopyRequest, Engine, EngineOptions, ErrorKind, Limits, Reference, RegistryConfig, RetryPolicy, Stats,
        UploadMode,
    };
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let (_dir, src, dst, want, _) = big(16 * MIB, 4, "wan/stall:v1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plain = RegistryConfig {
        plain_http: true,
        ..RegistryConfig::default()
    };
    for (stalls, attempts) in [(1, 3), (10, 2)] {
        let proxy = FaultProxy::before(&src, |f| f.stall_blob_gets = stalls);
        let engine = Engine::new(EngineOptions {
            retry: RetryPolicy {
                max_attempts: attempts,
                initial_delay: Duration::from_millis(100),
                ..RetryPolicy::default()
            },
            limits: Limits {
                stall_window: Duration::from_secs(2),
                ..Limits::default()
            },
            upload: UploadMode::Chunked(MIB),
        });
        let stats = Arc::new(Stats::default());
        let s = engine.client(&proxy.host, "src", &plain, stats.clone()).unwrap();
        let d = engine.client(&dst.host, "dst", &plain, stats.clone()).unwrap();
        let dest = format!("stalled{stalls}/app");
        let req = CopyRequest {
            src: Reference::parse(&format!("{}/wan/stall:v1", proxy.host)).unwrap(),
            dest: Reference::parse(&format!("{}/{dest}", dst.host)).unwrap(),
            dest_tags: vec!["v1".into()],
            platforms: vec![],
        };
        let start = Instant::now();
        let result = rt.block_on(copy_image(&s, &d, &req, false, 2, &BlobCache::default()));
        let took = start.elapsed();
        let snap = stats.snapshot();
        let served = proxy.counters.blob_bytes_down.load(Relaxed);
        if stalls == 1 {
            result.unwrap();
            assert_eq!(dst.digest(&format!("{dest}:v1")), Some(want.clone()));
            assert_eq!(snap.retries, 1, "{snap:?}");
            assert!(snap.bytes_resent <= 2 * MIB as u64, "resumed, not restarted: {snap:?}");
            let size = 16 * MIB as u64;
            assert!(served < size + 3 * MIB as u64, "the source served {served} bytes for {size}");
            assert!(took < Duration::from_secs(15), "took {took:?}");
        } else {
            let e = result.unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Stalled { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("sha256:") && text.contains(&proxy.host) && text.contains(&dst.host),
                "{text}"
            );
            assert!(took < Duration::from_secs(10), "two windows and a backoff, took {took:?}");
            assert_eq!(dst.digest(&format!("{dest}:v1")), None, "no tag written");
        }
    }
}

/// Round trips at WAN latency: a promotion of eight images on a TLS
/// registry with credentials, through the byte-level relay, opens one
/// connection (HTTP/2 carries every request on it) and meets one
/// authentication challenge, not one of each per image: requests that
/// start before the registry's first answer wait for it and share it.
#[test]
fn a_promotion_meets_one_challenge_on_one_connection() {
    let reg = TestRegistry::start_logging_requests(Kind::DistributionTls);
    reg.seed_each(0..8, |n| format!("team/img{n}:change_1_latest"));
    let relay = imagegate_testkit::LatencyRelay::start(&reg.host, std::time::Duration::from_millis(5), 0);
    let challenges_before = reg.log().matches("\" 401 ").count();
    let images: Vec<Value> = (0..8)
        .map(|n| json!({"repository": format!("{}/team/img{n}", relay.host), "src_tag": "change_1_latest", "tags": ["current"]}))
        .collect();
    let run = run_module(
        Path::new(env!("CARGO_BIN_EXE_container_retag")),
        &json!({"images": images, "registries": {relay.host.clone(): reg.module_entry()}}),
    );
    run.assert_ok();
    // Counted before skopeo below adds requests of its own.
    let challenges = reg.log().matches("\" 401 ").count() - challenges_before;
    let h2 = reg.requests().iter().filter(|(_, _, proto)| proto == "HTTP/2.0").count();
    assert_eq!(challenges, 1, "401 answers in the call");
    assert_eq!(relay.counters.connections.load(Relaxed), 1, "{}", relay.counters.to_json());
    assert!(h2 >= 16, "requests over HTTP/2: {h2}");
    for n in 0..8 {
        assert_eq!(
            reg.digest(&format!("team/img{n}:current")),
            reg.digest(&format!("team/img{n}:change_1_latest"))
        );
    }
}
