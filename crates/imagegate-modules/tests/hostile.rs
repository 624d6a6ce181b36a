//! The modules against a registry that misbehaves on purpose (the test
//! kit's HostileRegistry) and a Recorder standing for another host: where
//! credentials may go, and that no registry can hold a module for long.

use std::path::Path;
use std::time::Duration;

use imagegate_testkit::hostile::Auth;
use imagegate_testkit::{run_module, run_module_measured, HostileRegistry, Hostility, ModuleRun, Recorder};
use serde_json::{json, Value};

fn mirror(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

fn retag(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_retag")), args)
}

fn entry(h: &HostileRegistry) -> Value {
    json!({"plain_http": h.ca_cert.is_none(), "ca_cert": h.ca_cert, "username": h.user, "password": h.password})
}

/// Mirrors the hostile registry's image to `dest` (another hostile one).
fn mirror_args(src: &HostileRegistry, dest: &HostileRegistry, extra: Value) -> Value {
    let mut args = json!({
        "images": [{"src": format!("{}/hostile/app:v1", src.host), "dest": format!("{}/copy/app", dest.host)}],
        "registries": {src.host.clone(): entry(src), dest.host.clone(): entry(dest)},
        "retry_delay": 0,
    });
    if let (Value::Object(a), Value::Object(e)) = (&mut args, extra) {
        a.extend(e);
    }
    args
}

/// No form of the registry's password, and none of the bearer tokens it
/// handed out, appears in anything the module printed.
fn assert_nothing_secret(run: &ModuleRun, h: &HostileRegistry) {
    let out = run.all_output();
    assert!(!out.contains(&h.password), "password printed:\n{out}");
    assert!(!out.contains(&h.basic_value()), "base64(user:password) printed:\n{out}");
    for s in h.seen() {
        if let Some(token) = s.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            assert!(!out.contains(token), "a bearer token was printed:\n{out}");
        }
    }
}

#[test]
fn a_tag_page_on_another_origin_is_refused() {
    let elsewhere = Recorder::start();
    let src = HostileRegistry::with(|h| {
        h.auth = Auth::Basic;
        h.tags_next = Some(format!("{}/v2/hostile/app/tags/list?last=v1", elsewhere.url));
    });
    let dest = HostileRegistry::start(Hostility::default());
    let mut args = mirror_args(&src, &dest, json!({}));
    args["images"] = json!([{"src": format!("{}/hostile/app", src.host), "dest": format!("{}/copy/app", dest.host), "all_tags": true}]);
    let run = mirror(&args);
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("not its own origin"), "{}", run.msg());
    assert!(elsewhere.seen().is_empty(), "the other host was asked: {:?}", elsewhere.seen());
    assert_nothing_secret(&run, &src);
}

#[test]
fn a_tag_page_loop_ends_quickly() {
    let src = HostileRegistry::with(|h| h.tags_next = Some("/v2/hostile/app/tags/list?n=1000".into()));
    let dest = HostileRegistry::start(Hostility::default());
    let mut args = mirror_args(&src, &dest, json!({}));
    args["images"] = json!([{"src": format!("{}/hostile/app", src.host), "dest": format!("{}/copy/app", dest.host), "all_tags": true}]);
    let run = mirror(&args);
    assert!(run.failed() && run.msg().contains("pagination loop"), "{}", run.stdout);
    assert!(run.msg().contains(&src.host), "the error names the registry: {}", run.msg());
    assert_eq!(src.count("GET", "/tags/list"), 1, "the repeated page is not fetched again");
}

/// A tag list with names that are not valid tag names (a path, an option,
/// a forged log line): each is skipped, never written, and reported escaped
/// in the result, its warnings and the log; the valid tags are mirrored,
/// and a regex sees only valid names.
#[test]
fn invalid_listed_tag_names_are_skipped_and_reported() {
    let forged = "x\n[registry_mirror] all 9 image tags already up to date\u{1b}[2J";
    let src = HostileRegistry::with(|h| h.extra_tags = vec!["../../../v2/other/manifests/x".into(), "--all".into(), forged.into()]);
    let dest = HostileRegistry::start(Hostility::default());
    for selection in [json!({"all_tags": true}), json!({"tag_regex": ".*"})] {
        let mut args = mirror_args(&src, &dest, json!({}));
        let mut entry = json!({"src": format!("{}/hostile/app", src.host), "dest": format!("{}/copy/app", dest.host)});
        entry.as_object_mut().unwrap().extend(selection.as_object().unwrap().clone());
        args["images"] = json!([entry]);
        let run = mirror(&args);
        run.assert_ok();
        assert_eq!(
            dest.count("PUT", "/copy/app/manifests/v1"),
            1,
            "{selection}: the valid tag is mirrored"
        );
        let puts: Vec<String> = dest.seen().into_iter().filter(|s| s.method == "PUT").map(|s| s.target).collect();
        assert!(puts.iter().all(|t| !t.contains("other") && !t.contains("--all")), "{puts:?}");
        let skipped = &run.result["skipped_tags"][0];
        assert_eq!(skipped["total"], 3, "{}", run.stdout);
        let names: Vec<&str> = skipped["names"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(names.contains(&"--all"), "{names:?}");
        assert!(
            names.contains(&"x\\n[registry_mirror] all 9 image tags already up to date\\x1b[2J"),
            "{names:?}"
        );
        assert!(run.stdout.contains("skipped 3 listed names"), "a warning says so: {}", run.stdout);
        // The log names each skipped name on one line, escaped: no forged
        // line, no terminal escape.
        assert!(run.stderr.contains("skipped the listed tag"), "{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
        assert!(
            run.stderr.lines().all(|l| !l.starts_with("[registry_mirror] all 9")),
            "a forged log line: {}",
            run.stderr
        );
    }
}

/// A tag page within the page-size cap, made of ten million one-to-three
/// character names (about 55 MiB): refused for its tag count while it is
/// parsed, so the module keeps at most the limit's names, not every name
/// (parsed whole, such a page took the module to about 490 MiB).
#[test]
fn a_flood_of_short_tag_names_is_refused_within_bounded_memory() {
    let src = HostileRegistry::with(|h| h.tag_flood = 10_000_000);
    let dest = HostileRegistry::start(Hostility::default());
    let mut args = mirror_args(&src, &dest, json!({}));
    args["images"] = json!([{"src": format!("{}/hostile/app", src.host), "dest": format!("{}/copy/app", dest.host), "all_tags": true}]);
    let (run, peak_kib) = run_module_measured(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), &args);
    assert!(run.failed() && run.msg().contains("more than 1000000 tags"), "{}", run.stdout);
    assert_eq!(dest.count("PUT", "/manifests/"), 0, "nothing was written");
    assert!(peak_kib < 200 * 1024, "the module's peak RSS was {} MiB", peak_kib / 1024);
}

/// A destination that answers 201 to every tag write but never serves the
/// tag: the mirror and the push read every tag back, fail naming it, and
/// claim no change.
#[test]
fn a_tag_write_the_registry_does_not_serve_is_not_claimed() {
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::with(|h| h.forget_tag_puts = true);
    let args = mirror_args(&src, &dest, json!({}));
    let run = mirror(&args);
    assert!(run.failed() && !run.changed(), "{}", run.stdout);
    assert!(
        run.msg().contains("does not serve it where it was written") && run.msg().contains("/copy/app:v1 is missing"),
        "{}",
        run.msg()
    );
    assert_eq!(dest.count("PUT", "/copy/app/manifests/v1"), 1, "the write was made");
    assert!(
        dest.count("HEAD", "/copy/app/manifests/v1") + dest.count("GET", "/copy/app/manifests/v1") >= 2,
        "and read back"
    );

    // container_push of an OCI layout (the test kit's fixture image).
    let fixture = imagegate_testkit::Fixtures::get().single(1);
    let (layout, name) = fixture.trim_start_matches("oci:").rsplit_once(':').unwrap();
    let run = run_module(
        Path::new(env!("CARGO_BIN_EXE_container_push")),
        &json!({
            "layout": layout, "name": name, "repository": format!("{}/copy/pushed", dest.host), "tags": ["1.0"],
            "registries": {dest.host.clone(): entry(&dest)}, "retry_delay": 0,
        }),
    );
    assert!(run.failed() && !run.changed(), "{}", run.stdout);
    assert!(run.msg().contains("/copy/pushed:1.0 is missing"), "{}", run.msg());
}

/// A manifest answer that says it is an HTML page (a captive portal, a
/// login proxy) is refused naming its type, before any parsing.
#[test]
fn a_manifest_answer_of_another_type_is_refused_by_its_type() {
    let src = HostileRegistry::with(|h| h.manifest_content_type = Some("text/html; charset=utf-8".into()));
    let dest = HostileRegistry::start(Hostility::default());
    let run = mirror(&mirror_args(&src, &dest, json!({})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("unsupported manifest media type 'text/html'"), "{}", run.msg());
    assert!(!run.msg().contains("not JSON"), "{}", run.msg());
    assert_eq!(dest.count("PUT", "/manifests/"), 0);
}

/// A referrers answer within the manifest cap made of over a million empty
/// descriptors: refused while it is parsed (at a budget of 100,000 values),
/// so the module's memory stays small.
#[test]
fn a_flood_of_referrers_is_refused_within_bounded_memory() {
    let src = HostileRegistry::with(|h| h.referrers_flood = 4 * 1024 * 1024 - 1024);
    let dest = HostileRegistry::start(Hostility::default());
    let (run, peak_kib) = run_module_measured(
        Path::new(env!("CARGO_BIN_EXE_registry_mirror")),
        &mirror_args(&src, &dest, json!({})),
    );
    assert!(run.failed(), "{}", run.stdout);
    assert!(
        run.msg().contains("not an index: it holds more than 100000 JSON values"),
        "{}",
        run.msg()
    );
    assert!(peak_kib < 48 * 1024, "the module's peak RSS was {} MiB", peak_kib / 1024);
}

/// An index whose platform text carries a newline and a terminal escape:
/// the log line that names the platform shows them as escapes, so no line
/// can be forged in stderr (and the job's log).
#[test]
fn registry_text_reaches_the_log_escaped() {
    let src = HostileRegistry::with(|h| h.index_architecture = Some("amd64\n[registry_mirror] forged line\u{1b}]0;title\u{7}".into()));
    let dest = HostileRegistry::start(Hostility::default());
    let mut args = mirror_args(&src, &dest, json!({}));
    args["images"] = json!([{"src": format!("{}/hostile/app:multi", src.host), "dest": format!("{}/copy/app", dest.host)}]);
    let run = mirror(&args);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("platform linux/amd64\\n[registry_mirror] forged line\\x1b]0;title\\x07"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("[registry_mirror] forged")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'), "{}", run.stderr);
}

#[test]
fn an_upload_location_on_another_origin_is_refused() {
    let elsewhere = Recorder::start();
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::with(|h| {
        h.auth = Auth::Basic;
        h.upload_location = Some(format!("{}/v2/copy/app/blobs/uploads/stolen", elsewhere.url));
    });
    let run = mirror(&mirror_args(&src, &dest, json!({"retries": 0})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("not its own origin"), "{}", run.msg());
    assert!(elsewhere.seen().is_empty(), "the other host was sent: {:?}", elsewhere.seen());
    assert_nothing_secret(&run, &dest);
}

/// A source whose tokens come from a realm on another host (`elsewhere`,
/// a recorder), over TLS with `tls`, and a well-behaved destination.
fn realm_on_another_host(tls: bool) -> (Recorder, HostileRegistry, HostileRegistry) {
    let elsewhere = Recorder::start();
    let hostility = Hostility {
        auth: Auth::Bearer {
            realm: Some(format!("{}/token", elsewhere.url)),
        },
        ..Default::default()
    };
    let src = if tls {
        HostileRegistry::start_tls(hostility)
    } else {
        HostileRegistry::start(hostility)
    };
    (elsewhere, src, HostileRegistry::start(Hostility::default()))
}

#[test]
fn an_https_registry_cannot_send_credentials_to_a_plain_http_realm() {
    let (elsewhere, src, dest) = realm_on_another_host(true);
    let run = mirror(&mirror_args(&src, &dest, json!({})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("refusing the token realm"), "{}", run.msg());
    assert!(run.msg().contains(&elsewhere.url), "the message names the realm: {}", run.msg());
    assert!(elsewhere.seen().is_empty(), "the realm was asked: {:?}", elsewhere.seen());
    assert_nothing_secret(&run, &src);
}

#[test]
fn a_plain_http_realm_on_another_host_is_asked_without_credentials() {
    let (elsewhere, src, dest) = realm_on_another_host(false);
    let run = mirror(&mirror_args(&src, &dest, json!({})));
    run.assert_ok();
    assert!(!elsewhere.seen().is_empty(), "the token was asked for");
    assert!(elsewhere.with_authorization().is_empty(), "{:?}", elsewhere.with_authorization());
    assert_nothing_secret(&run, &src);
}

#[test]
fn the_registrys_own_realm_gets_credentials_and_a_huge_lifetime_is_harmless() {
    let src = HostileRegistry::with(|h| {
        h.auth = Auth::Bearer { realm: None };
        h.token_expires_in = Some(u64::MAX.into());
    });
    let dest = HostileRegistry::start(Hostility::default());
    let run = mirror(&mirror_args(&src, &dest, json!({})));
    run.assert_ok();
    assert!(src.count("GET", "/token") >= 1);
    assert_eq!(dest.count("PUT", "/manifests/v1"), 1);
    assert_nothing_secret(&run, &src);
}

#[test]
fn an_error_body_that_echoes_authorization_is_masked() {
    let dest = HostileRegistry::start(Hostility::default());
    for auth in [Auth::Basic, Auth::Bearer { realm: None }] {
        let src = HostileRegistry::with(|h| {
            h.auth = auth;
            h.echo_authorization = true;
        });
        let run = mirror(&mirror_args(&src, &dest, json!({})));
        assert!(run.failed(), "{}", run.stdout);
        assert!(run.msg().contains("request had Authorization"), "{}", run.msg());
        assert!(run.msg().contains("********"), "{}", run.msg());
        assert_nothing_secret(&run, &src);
    }
}

#[test]
fn a_trickled_manifest_fails_within_the_deadline() {
    let src = HostileRegistry::with(|h| h.trickle_manifests = Some(Duration::from_millis(500)));
    let dest = HostileRegistry::start(Hostility::default());
    let run = mirror(&mirror_args(&src, &dest, json!({"timeout": 1, "retries": 1})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("no answer within 1 seconds"), "{}", run.msg());
    assert!(run.msg().contains("(after 1 retries)"), "{}", run.msg());
    assert_eq!(src.count("GET", "/manifests/v1"), 2, "one attempt and one retry");
}

#[test]
fn a_retry_after_longer_than_the_longest_wait_fails_at_once() {
    let src = HostileRegistry::with(|h| h.retry_after = Some(100_000));
    let dest = HostileRegistry::start(Hostility::default());
    let run = mirror(&mirror_args(&src, &dest, json!({})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("asked to wait 100000 s"), "{}", run.msg());
    // The source is resolved with a HEAD before anything is copied (one
    // destination tag must not receive two images); that is the one request.
    assert_eq!(
        src.count("HEAD", "/manifests/v1") + src.count("GET", "/manifests/v1"),
        1,
        "no retry was waited out"
    );
}

#[test]
fn retries_happen_in_one_loop_and_are_counted_truly() {
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::with(|h| h.upload_status = Some(503));
    let run = mirror(&mirror_args(&src, &dest, json!({"retries": 2, "blob_concurrency": 1})));
    assert!(run.failed(), "{}", run.stdout);
    assert!(run.msg().contains("(after 2 retries)"), "{}", run.msg());
    assert_eq!(dest.count("POST", "/blobs/uploads/"), 3, "attempts must not multiply");
}

#[test]
fn a_scope_named_by_the_challenge_is_asked_for() {
    let reg = HostileRegistry::with(|h| {
        h.auth = Auth::Bearer { realm: None };
        h.delete_needs_scope = true;
    });
    let run = retag(&json!({
        "images": [{"repository": format!("{}/hostile/app", reg.host), "remove_tags": ["v1"]}],
        "method": "oci",
        "registries": {reg.host.clone(): entry(&reg)},
        "retry_delay": 0,
    }));
    run.assert_ok();
    assert!(run.changed());
    assert!(
        reg.seen()
            .iter()
            .any(|s| s.target.starts_with("/token") && s.target.contains("delete")),
        "{:?}",
        reg.seen()
    );
    assert_eq!(
        reg.count("DELETE", "/manifests/v1"),
        2,
        "refused once, then allowed with the delete scope"
    );
    assert_nothing_secret(&run, &reg);
}

fn cleanup_args(reg: &HostileRegistry, entry: Value) -> Value {
    json!({
        "cleanup": [{"repository": format!("{}/hostile/app", reg.host), "regex": "^change_", "age": 0}],
        "registries": {reg.host.clone(): entry},
        "retry_delay": 0,
        "_ansible_check_mode": true,
    })
}

#[test]
fn a_web_api_redirect_to_another_host_carries_no_token() {
    let elsewhere = Recorder::start();
    let reg = HostileRegistry::with(|h| h.api_redirect = Some(format!("{}/api/v1/repository/hostile/app/tag/", elsewhere.url)));
    let token = "quay-api-token-7d1f";
    let run = retag(&cleanup_args(
        &reg,
        json!({"plain_http": true, "type": "quay", "api_token": token, "api_url": format!("http://{}", reg.host)}),
    ));
    run.assert_ok();
    assert!(!elsewhere.seen().is_empty(), "the redirect was followed");
    assert!(elsewhere.with_authorization().is_empty(), "{:?}", elsewhere.with_authorization());
    assert!(!run.all_output().contains(token));
}

#[test]
fn web_api_pages_cannot_loop_or_leave_their_origin() {
    let reg = HostileRegistry::with(|h| h.quay_pages_forever = true);
    let quay = json!({"plain_http": true, "type": "quay", "api_token": "qt-1", "api_url": format!("http://{}", reg.host)});
    let run = retag(&cleanup_args(&reg, quay));
    assert!(run.failed() && run.msg().contains("pagination loop"), "{}", run.stdout);

    let elsewhere = Recorder::start();
    let off_origin = format!("{}/v2/repositories/hostile/app/tags/?page=2", elsewhere.url);
    let itself = "{self}/v2/repositories/hostile/app/tags/?page_size=100".to_string();
    for (next, expect) in [(off_origin, "off its origin"), (itself, "pagination loop")] {
        let reg = HostileRegistry::with(|h| h.hub_next = Some(next));
        let hub = json!({
            "plain_http": true, "type": "docker", "username": "hub-user", "password": "hub-pass-93",
            "api_url": format!("http://{}", reg.host),
        });
        let run = retag(&cleanup_args(&reg, hub));
        assert!(run.failed() && run.msg().contains(expect), "{}", run.stdout);
        let out = run.all_output();
        assert!(!out.contains("hub-pass-93") && !out.contains("hub-session-token"), "{out}");
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

/// Blob bodies have no deadline but must keep moving: a trickle fails, a
/// slow steady transfer does not. Driven through the engine with a short
/// window, which the modules fix at 30 s.
#[test]
fn a_trickled_blob_fails_and_a_slow_one_does_not() {
    use imagegate_registry::{
        copy_image, BlobCache, CopyRequest, Engine, EngineOptions, ErrorKind, Limits, Reference, RegistryConfig, RetryPolicy, Stats,
    };
    use std::sync::Arc;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dest = HostileRegistry::start(Hostility::default());
    let engine = Engine::new(EngineOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        limits: Limits {
            stall_window: Duration::from_secs(1),
            min_progress: 200,
            ..Limits::default()
        },
        ..EngineOptions::default()
    });
    let plain = RegistryConfig {
        plain_http: true,
        ..RegistryConfig::default()
    };
    for (every, should_pass) in [(Duration::from_millis(50), false), (Duration::from_micros(500), true)] {
        let src = HostileRegistry::with(|h| h.trickle_blobs = Some(every));
        let stats = Arc::new(Stats::default());
        let s = engine.client(&src.host, "src", &plain, stats.clone()).unwrap();
        let d = engine.client(&dest.host, "dst", &plain, stats).unwrap();
        let tag = if should_pass { "slow" } else { "trickle" };
        let req = CopyRequest {
            src: Reference::parse(&format!("{}/hostile/app:v1", src.host)).unwrap(),
            dest: Reference::parse(&format!("{}/copy/{tag}", dest.host)).unwrap(),
            dest_tags: vec!["v1".into()],
            platforms: vec![],
        };
        let result = rt.block_on(copy_image(&s, &d, &req, false, 1, &BlobCache::default()));
        if should_pass {
            result.unwrap();
        } else {
            let e = result.unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Stalled { .. }), "{e}");
            assert_eq!(dest.count("PUT", &format!("copy/{tag}/manifests")), 0);
        }
    }
}

#[test]
fn a_layer_two_images_share_is_uploaded_once_per_repository() {
    let src = HostileRegistry::with(|h| h.second_image = true);
    let dest = HostileRegistry::start(Hostility::default());
    let mut args = mirror_args(&src, &dest, json!({"concurrency": 2}));
    args["images"] = json!([
        {"src": format!("{}/hostile/app:v1", src.host), "dest": format!("{}/copy/app", dest.host)},
        {"src": format!("{}/hostile/app:v2", src.host), "dest": format!("{}/copy/app", dest.host)},
    ]);
    let run = mirror(&args);
    run.assert_ok();
    // Two configs and one shared layer.
    assert_eq!(dest.count("POST", "/copy/app/blobs/uploads/"), 3, "{}", run.stdout);
    assert_eq!(run.result["totals"]["blobs_copied"], 3, "{}", run.stdout);
}

#[test]
fn tokens_of_different_scopes_are_fetched_at_once_and_each_only_once() {
    let src = HostileRegistry::start(Hostility::default());
    let dest = HostileRegistry::with(|h| {
        h.auth = Auth::Bearer { realm: None };
        h.token_delay = Some(Duration::from_millis(300));
    });
    let run = mirror_to_four_repositories(&src, &dest);
    run.assert_ok();
    assert!(
        dest.max_tokens_in_flight() >= 2,
        "tokens of different scopes were fetched one at a time"
    );
    assert_each_token_fetched_once(&dest, "");
    assert_nothing_secret(&run, &dest);
}

/// One image mirrored to four repositories of `dest`, four at a time.
fn mirror_to_four_repositories(src: &HostileRegistry, dest: &HostileRegistry) -> ModuleRun {
    let mut args = mirror_args(src, dest, json!({"concurrency": 4}));
    args["images"] = (0..4)
        .map(|n| json!({"src": format!("{}/hostile/app:v1", src.host), "dest": format!("{}/copy/app{n}", dest.host)}))
        .collect();
    mirror(&args)
}

/// No scope's token was asked for twice in the call.
fn assert_each_token_fetched_once(reg: &HostileRegistry, context: &str) {
    let mut scopes: Vec<String> = reg
        .seen()
        .into_iter()
        .filter(|s| s.target.starts_with("/token"))
        .map(|s| s.target)
        .collect();
    let all = scopes.len();
    scopes.sort();
    scopes.dedup();
    assert_eq!(scopes.len(), all, "{context}a scope's token was fetched again: {scopes:?}");
}

/// A registry whose tokens say they expire at once (0) or have already
/// expired (negative): each scope's token is still fetched once and used
/// for the whole call, as the Docker clients keep a token at least 60 s,
/// not fetched again before nearly every request.
#[test]
fn tokens_that_claim_no_lifetime_are_kept_a_minute() {
    // What the same mirror asks of a registry whose tokens last 300 s.
    let baseline = {
        let src = HostileRegistry::start(Hostility::default());
        let dest = HostileRegistry::with(|h| h.auth = Auth::Bearer { realm: None });
        mirror_to_four_repositories(&src, &dest).assert_ok();
        dest.count("GET", "/token")
    };
    for expires_in in [0, -30] {
        let src = HostileRegistry::start(Hostility::default());
        let dest = HostileRegistry::with(|h| {
            h.auth = Auth::Bearer { realm: None };
            h.token_expires_in = Some(expires_in);
        });
        let run = mirror_to_four_repositories(&src, &dest);
        run.assert_ok();
        assert_each_token_fetched_once(&dest, &format!("expires_in {expires_in}: "));
        let all = dest.count("GET", "/token");
        assert_eq!(
            all, baseline,
            "expires_in {expires_in}: token requests, against {baseline} for 300 s tokens"
        );
        assert_nothing_secret(&run, &dest);
    }
}

/// Removes a per-registry CA directory when dropped.
struct CertDir(std::path::PathBuf);

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A registry's CA is trusted where podman and docker users keep it, under
/// /etc/containers/certs.d/<host:port>/ and /etc/docker/certs.d/<host:port>/
/// (these tests write there, so they run as root, as CI does).
#[test]
fn the_cas_of_container_tools_cert_dirs_are_trusted() {
    for base in imagegate_registry::transport::tls::CERT_DIRS {
        let src = HostileRegistry::start_tls(Hostility::default());
        let dest = HostileRegistry::start(Hostility::default());
        let args = json!({
            "images": [{"src": format!("{}/hostile/app:v1", src.host), "dest": format!("{}/copy/app", dest.host)}],
            "registries": {dest.host.clone(): {"plain_http": true}},
            "retries": 0,
        });
        let untrusted = mirror(&args);
        assert!(untrusted.failed() && untrusted.msg().contains("ca_cert"), "{}", untrusted.stdout);
        let dir = CertDir(Path::new(base).join(&src.host));
        std::fs::create_dir_all(&dir.0).expect("create the cert dir (the test runs as root)");
        std::fs::copy(src.ca_cert.as_ref().unwrap(), dir.0.join("ca.crt")).unwrap();
        let trusted = mirror(&args);
        trusted.assert_ok();
        assert_eq!(dest.count("PUT", "/copy/app/manifests/v1"), 1, "{base}");
    }
}
