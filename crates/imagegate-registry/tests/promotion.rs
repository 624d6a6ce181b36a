//! The engine's promotion and restore workflows, driven directly (no module
//! binary) against the test kit's registries: the Debian distribution
//! registry, zuul-registry, and the hostile one. A change to the engine
//! fails here, where it lives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagegate_registry::journal::Record;
use imagegate_registry::promote::RetagRequest;
use imagegate_registry::promotion::{self, Endpoints, Image, Promotion, PromotionError, RemovedTag, StaleTags};
use imagegate_registry::restore::{self, RestoreError};
use imagegate_registry::tags::{RemoveMethod, WebApi};
use imagegate_registry::{Credential, Engine, EngineOptions, Error, Reference, RegistryClient, RegistryConfig, Stats, TransportOptions};
use imagegate_testkit::{Fixtures, HostileRegistry, Hostility, Kind, TestRegistry};

/// Every registry reached with one configuration.
struct At {
    engine: Engine,
    config: RegistryConfig,
    stats: Arc<Stats>,
}

impl At {
    fn plain() -> Self {
        Self::with(RegistryConfig {
            plain_http: true,
            ..Default::default()
        })
    }

    fn with(config: RegistryConfig) -> Self {
        Self {
            engine: Engine::new(EngineOptions::default()),
            config,
            stats: Arc::default(),
        }
    }

    /// zuul-registry: TLS with the test CA, the read-write user.
    fn zuul(reg: &TestRegistry) -> Self {
        let rw = reg.rw.as_ref().expect("zuul-registry has a read-write user");
        Self::with(RegistryConfig {
            ca_cert: reg.ca_cert.clone(),
            credential: Some(Credential::new(&rw.name, &rw.password)),
            ..Default::default()
        })
    }

    fn client_for(&self, registry: &str) -> RegistryClient {
        self.engine
            .client(registry, "test", &self.config, self.stats.clone())
            .expect("client")
    }
}

impl Endpoints for At {
    fn client(&self, r: &Reference, _key: Option<&str>) -> Result<RegistryClient, Error> {
        self.engine.client(&r.registry, "test", &self.config, self.stats.clone())
    }

    fn web_api(&self, _registry: &str, _key: Option<&str>) -> WebApi {
        WebApi::default()
    }

    fn transport_options(&self) -> TransportOptions {
        self.engine.transport_options()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// Tags `targets` of `repo` to its `src_tag`, removing `remove`.
fn image(host: &str, repo: &str, src_tag: &str, targets: &[&str], remove: &[&str]) -> Image {
    let source = Reference::parse(&format!("{host}/{repo}:{src_tag}")).expect("reference");
    let dest = Reference::parse_repository(&format!("{host}/{repo}")).expect("repository");
    Image {
        request: RetagRequest {
            source,
            dest,
            targets: targets.iter().map(ToString::to_string).collect(),
            expected: None,
            keep_previous: false,
            label: repo.to_string(),
        },
        remove: remove.iter().map(ToString::to_string).collect(),
        registry: None,
    }
}

fn promotion(images: Vec<Image>, record_file: Option<PathBuf>, check: bool, stats: &Arc<Stats>) -> Promotion {
    Promotion {
        images,
        cleanups: Vec::new(),
        method: RemoveMethod::Auto,
        atomic: true,
        check,
        record_file,
        require_signature: false,
        criteria: None,
        concurrency: 4,
        stats: stats.clone(),
    }
}

fn restore_record(at: &At, record: &Path, check: bool) -> Result<restore::RestoreReport, RestoreError> {
    let record = Record::read(record).expect("record");
    let clients: Vec<RegistryClient> = record.entries.iter().map(|e| at.client_for(&e.registry)).collect();
    let webs = vec![WebApi::default(); clients.len()];
    runtime().block_on(restore::run(&record, &clients, &webs, RemoveMethod::Auto, check, &at.stats))
}

#[test]
fn a_promotion_moves_removes_records_and_restores_on_distribution() {
    let reg = TestRegistry::seeded(
        Kind::Distribution,
        &[
            (0, "stage/img0:candidate"),
            (1, "stage/img1:candidate"),
            (5, "stage/img0:current"),
            (6, "stage/img0:change_1"),
        ],
    );
    let old = reg.digest("stage/img0:current");
    let change = reg.digest("stage/img0:change_1");
    let at = At::plain();
    let record = reg.dir.path().join("record.json");
    let images = || {
        vec![
            image(&reg.host, "stage/img0", "candidate", &["current"], &["change_1"]),
            image(&reg.host, "stage/img1", "candidate", &["current"], &[]),
        ]
    };

    // Check mode: the plan and the diff, nothing written.
    let report = runtime()
        .block_on(promotion::run(&promotion(images(), Some(record.clone()), true, &at.stats), &at))
        .expect("check mode");
    assert!(report.changed);
    assert_eq!(report.tags_moved(), 2);
    assert!(
        report.diff.before.contains(&format!("{}/stage/img1:current (absent)", reg.host)),
        "{:?}",
        report.diff
    );
    assert_eq!(reg.digest("stage/img0:current"), old, "check mode moved a tag");
    assert_eq!(reg.digest("stage/img1:current"), None);
    assert_eq!(reg.digest("stage/img0:change_1"), change, "check mode removed a tag");
    assert!(!record.exists(), "check mode wrote the record");

    // For real: moved, removed, recorded; the report says so.
    let report = runtime()
        .block_on(promotion::run(&promotion(images(), Some(record.clone()), false, &at.stats), &at))
        .expect("promotion");
    assert_eq!((report.tags_moved(), report.tags_removed()), (2, 1));
    assert!(report.plan.signatures_stay_valid);
    for n in 0..2 {
        assert_eq!(
            reg.digest(&format!("stage/img{n}:current")),
            reg.digest(&format!("stage/img{n}:candidate"))
        );
    }
    assert_eq!(reg.digest("stage/img0:change_1"), None);
    assert!(
        matches!(&report.removed[..], [RemovedTag::Removed { method: Some(_), .. }]),
        "{:?}",
        report.removed
    );
    let keys: Vec<String> = match serde_json::to_value(&report).expect("report") {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("{other}"),
    };
    assert_eq!(keys, ["signatures_stay_valid", "moves", "record", "removed", "cleaned", "retries"]);

    // Again: every tag is already where it should be.
    let again = runtime()
        .block_on(promotion::run(&promotion(images(), Some(record.clone()), false, &at.stats), &at))
        .expect("again");
    assert!(!again.changed && again.tags_moved() == 0, "{again:?}");

    // The record puts every tag back, the removed one included; in check
    // mode only the plan.
    let planned = restore_record(&at, &record, true).expect("restore plan");
    assert_eq!(planned.tags_moved(), 3, "{:?}", planned.moves);
    assert!(planned.restored.is_none());
    assert_eq!(reg.digest("stage/img0:current"), reg.digest("stage/img0:candidate"));
    let done = restore_record(&at, &record, false).expect("restore");
    assert_eq!(done.restored.as_ref().map(Vec::len), Some(3));
    assert_eq!(reg.digest("stage/img0:current"), old);
    assert_eq!(reg.digest("stage/img1:current"), None);
    assert_eq!(reg.digest("stage/img0:change_1"), change);
}

#[test]
fn on_zuul_registry_a_tag_it_cannot_remove_is_reported_and_stale_tags_are_judged_by_age() {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Zuul);
    let at = At::zuul(&reg);
    reg.seed_singles(&[(0, "z/app:candidate"), (1, "z/app:change_7")]);
    reg.seed(&fx.fresh(), "z/app:change_8"); // made with the fixtures: young
    reg.seed(&fx.single(2), "z/app:change_9"); // created 1970: stale
    let mut p = promotion(
        vec![image(&reg.host, "z/app", "candidate", &["current"], &["change_7"])],
        None,
        false,
        &at.stats,
    );
    // change_8 matches but is younger than a day; change_9 is older.
    p.cleanups.push(StaleTags {
        repo: Reference::parse_repository(&format!("{}/z/app", reg.host)).expect("repository"),
        pattern: regex::Regex::new("^change_").expect("regex"),
        age: 86_400,
    });
    // zuul-registry's tag list takes no page size: asked whole instead.
    let report = runtime().block_on(promotion::run(&p, &at)).expect("promotion");
    assert_eq!(reg.digest("z/app:current"), reg.digest("z/app:candidate"));
    // It cannot remove tags at all: each named, none a failure. change_7,
    // still there, is stale too.
    assert_eq!(report.not_removed.len(), 3, "{:?}", report.removed);
    assert!(report.not_removed[0].contains("z/app:change_7"), "{:?}", report.not_removed);
    assert!(
        report.removed.iter().all(|r| matches!(r, RemovedTag::Failed { failed: true, .. })),
        "{:?}",
        report.removed
    );
    let mut cleaned: Vec<&str> = report.cleaned.iter().map(|c| c.tag.as_str()).collect();
    cleaned.sort();
    let stale = [format!("{}/z/app:change_7", reg.host), format!("{}/z/app:change_9", reg.host)];
    assert_eq!(cleaned, stale, "change_8 is young");
    assert!(reg.digest("z/app:change_8").is_some());
}

#[test]
fn a_failed_move_puts_back_every_tag_already_moved() {
    let reg = TestRegistry::start(Kind::Distribution);
    for n in 0..3 {
        reg.seed_singles(&[(n, &format!("s/img{n}:candidate")), (n + 5, &format!("s/img{n}:current"))]);
    }
    let before: Vec<Option<String>> = (0..3).map(|n| reg.digest(&format!("s/img{n}:current"))).collect();
    // The third manifest write is refused (403, not retried).
    let proxy = imagegate_testkit::FaultProxy::start(
        &format!("http://{}", reg.host),
        imagegate_testkit::FaultConfig {
            deny_manifest_put: Some(2),
            ..Default::default()
        },
    );
    let at = At::plain();
    let images = (0..3)
        .map(|n| image(&proxy.host, &format!("s/img{n}"), "candidate", &["current"], &[]))
        .collect();
    let mut p = promotion(images, None, false, &at.stats);
    p.concurrency = 1;
    let err = runtime().block_on(promotion::run(&p, &at)).expect_err("a write is refused");
    let PromotionError::Apply { plan, failure } = err else {
        panic!("not an apply failure: {err:?}");
    };
    assert_eq!(plan.moves.len(), 3);
    assert_eq!(failure.moved.len(), 2, "{failure:?}");
    assert_eq!(failure.restored.len(), 2, "{failure:?}");
    assert!(failure.not_restored.is_empty(), "{failure:?}");
    for (n, want) in before.iter().enumerate() {
        assert_eq!(&reg.digest(&format!("s/img{n}:current")), want, "img{n} put back");
    }
}

#[test]
fn an_unsigned_image_stops_the_promotion_before_any_write() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(2, "u/app:candidate")]);
    let at = At::plain();
    let mut p = promotion(
        vec![image(&reg.host, "u/app", "candidate", &["current"], &[])],
        None,
        false,
        &at.stats,
    );
    p.require_signature = true;
    let err = runtime().block_on(promotion::run(&p, &at)).expect_err("unsigned");
    match err {
        PromotionError::Unsigned(missing) => assert!(missing[0].starts_with("u/app ("), "{missing:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(reg.digest("u/app:current"), None);
}

/// A registry that answers 201 to a tag write but never serves the tag:
/// the read after every move finds it missing, and the run fails naming
/// it; nothing is put back over what it cannot see.
#[test]
fn a_tag_the_registry_does_not_keep_fails_the_promotion() {
    let hostile = HostileRegistry::start(Hostility {
        forget_tag_puts: true,
        ..Default::default()
    });
    let at = At::plain();
    let p = promotion(
        vec![image(&hostile.host, hostile.repository, "v1", &["stable"], &[])],
        None,
        false,
        &at.stats,
    );
    let err = runtime().block_on(promotion::run(&p, &at)).expect_err("the tag is not kept");
    let PromotionError::Apply { failure, .. } = err else {
        panic!("not an apply failure: {err:?}");
    };
    let said = failure.error.to_string();
    assert!(said.contains(&format!("{}:stable", hostile.repository)), "{said}");
    assert_eq!(failure.moved.len(), 1, "{failure:?}");
    assert!(failure.restored.is_empty(), "{failure:?}");
    assert_eq!(hostile.count("PUT", "/manifests/stable"), 1);
}
