//! The engine's mirror workflow, its copy and referrers, and the client's
//! tag lists, driven directly (no module binary) against the test kit's
//! registries: the Debian distribution registry, zuul-registry, a fault
//! proxy and the hostile registry.

use std::sync::Arc;
use std::time::Instant;

use imagegate_registry::mirror::{self, Entry, ImageEntry, Mirror, Selection, Sides};
use imagegate_registry::{
    BlobCache, Credential, Engine, EngineOptions, Error, ErrorKind, Reference, RegistryClient, RegistryConfig, Stats,
};
use imagegate_testkit::{FaultProxy, Fixtures, HostileRegistry, Hostility, Kind, TestRegistry};

/// Each side with its own configuration.
struct Both {
    engine: Engine,
    source: RegistryConfig,
    destination: RegistryConfig,
}

fn plain() -> RegistryConfig {
    RegistryConfig {
        plain_http: true,
        ..Default::default()
    }
}

/// zuul-registry: TLS with the test CA, the read-write user.
fn zuul(reg: &TestRegistry) -> RegistryConfig {
    let rw = reg.rw.as_ref().expect("zuul-registry has a read-write user");
    RegistryConfig {
        ca_cert: reg.ca_cert.clone(),
        credential: Some(Credential::new(&rw.name, &rw.password)),
        ..Default::default()
    }
}

impl Both {
    fn new(source: RegistryConfig, destination: RegistryConfig) -> Self {
        Self {
            engine: Engine::new(EngineOptions::default()),
            source,
            destination,
        }
    }
}

impl Sides for Both {
    fn source(&self, src: &Reference, stats: Arc<Stats>) -> Result<RegistryClient, Error> {
        self.engine.client(&src.registry, "source", &self.source, stats)
    }

    fn destination(&self, dest: &Reference, _key: Option<&str>, stats: Arc<Stats>) -> Result<RegistryClient, Error> {
        self.engine.client(&dest.registry, "destination", &self.destination, stats)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

fn entry(index: usize, src: &str, dest: &str, selection: Selection) -> Entry {
    Entry {
        index,
        src: Reference::parse(src).expect("source"),
        dest: Reference::parse(dest).expect("destination"),
        dest_registry: None,
        selection,
        platforms: Vec::new(),
    }
}

fn mirror_of(entries: Vec<Entry>, check: bool) -> Mirror {
    Mirror {
        entries,
        check,
        concurrency: 4,
        blob_concurrency: 4,
        referrers: true,
    }
}

/// Runs a mirror and sums it up; the entries of the result as JSON.
fn run(m: &Mirror, at: &Both) -> Result<(mirror::Summary, Vec<serde_json::Value>), Error> {
    let results = runtime().block_on(mirror::run(m, at, &BlobCache::default()))?;
    let mut entries = Vec::new();
    let summary = mirror::summarize(results, m.check, true, Instant::now(), |e: ImageEntry<'_>| {
        entries.push(serde_json::to_value(e).expect("entry"))
    });
    Ok((summary, entries))
}

#[test]
fn tags_chosen_by_pattern_copy_from_zuul_registry_to_distribution() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Zuul);
    let dest = TestRegistry::start(Kind::Distribution);
    for (n, tag) in ["1.0", "1.1", "change_5"].iter().enumerate() {
        src.seed(&fx.single(n), &format!("app/web:{tag}"));
    }
    let at = Both::new(zuul(&src), plain());
    let pattern = || Selection::Regex(regex::Regex::new(r"^1\.").expect("regex"));
    let m = |check| {
        mirror_of(
            vec![entry(
                0,
                &format!("{}/app/web", src.host),
                &format!("{}/copy/web", dest.host),
                pattern(),
            )],
            check,
        )
    };
    // Check mode: the plan, nothing written.
    let (planned, _) = run(&m(true), &at).expect("check mode");
    assert_eq!((planned.totals.images, planned.totals.tags_changed), (2, 2));
    assert!(dest.tags("copy/web").is_empty(), "check mode wrote {:?}", dest.tags("copy/web"));
    // For real: both tags, at the source's digests, and the diff says so.
    let (done, entries) = run(&m(false), &at).expect("mirror");
    assert!(done.failures.is_empty(), "{:?}", done.failures);
    assert_eq!((done.totals.images, done.totals.tags_changed), (2, 2));
    for tag in ["1.0", "1.1"] {
        assert_eq!(
            dest.digest(&format!("copy/web:{tag}")),
            src.digest(&format!("app/web:{tag}")),
            "{tag}"
        );
        assert!(done.diff.after.contains(&format!("copy/web:{tag} sha256:")), "{:?}", done.diff);
    }
    assert_eq!(dest.digest("copy/web:change_5"), None, "not matched, not copied");
    assert_eq!(entries.len(), 2);
    assert!(
        entries.iter().all(|e| e["changed"] == true && e["tags"][0]["before"].is_null()),
        "{entries:?}"
    );
    // Again: nothing to do.
    let (again, _) = run(&m(false), &at).expect("again");
    assert!(!again.changed(), "{:?}", again.totals);
}

#[test]
fn two_entries_sending_two_images_to_one_tag_are_refused_before_any_write() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(0, "src/a:v1"), (1, "src/b:v1")]);
    let at = Both::new(plain(), plain());
    let m = mirror_within(&reg, &[("src/a:v1", "dst/one:v1"), ("src/b:v1", "dst/one:v1")]);
    let Err(err) = run(&m, &at) else {
        panic!("two images for one tag were accepted");
    };
    let said = err.to_string();
    assert!(said.contains("images[0]") && said.contains("images[1]"), "{said}");
    assert!(reg.tags("dst/one").is_empty(), "something was written: {:?}", reg.tags("dst/one"));
}

fn one(tag: &str) -> Selection {
    Selection::One { dest_tag: tag.into() }
}

/// Entry `index`: the tag `v1` of `src` to `dest` (both `host/repo:v1`).
fn copy_v1(index: usize, src: &str, dest: &str) -> Entry {
    entry(index, src, dest, one("v1"))
}

/// A mirror (not in check mode) inside `reg`: entry `i` copies the tag v1
/// of the `i`th `(src, dest)` of `pairs` (`repo:v1` each).
fn mirror_within(reg: &TestRegistry, pairs: &[(&str, &str)]) -> Mirror {
    let at = |repo_tag: &str| format!("{}/{repo_tag}", reg.host);
    let entries = pairs.iter().enumerate().map(|(i, (src, dest))| copy_v1(i, &at(src), &at(dest)));
    mirror_of(entries.collect(), false)
}

/// A mirror (not in check mode) of the one entry `copy_v1(0, src, dest)`.
fn mirror_v1(src: &str, dest: &str) -> Mirror {
    mirror_of(vec![copy_v1(0, src, dest)], false)
}

/// A cosign-style signature tag (`sha256-<hex>.sig`) of the image travels
/// with it, to the same digest.
#[test]
fn a_signature_tag_travels_with_the_image() {
    let fx = Fixtures::get();
    let src = TestRegistry::seeded(Kind::Distribution, &[(3, "signed/app:v1")]);
    let dest = TestRegistry::start(Kind::Distribution);
    let digest = src.digest("signed/app:v1").expect("seeded");
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    // Any manifest will do as the signature: what matters is its tag.
    src.seed(&fx.single(4), &format!("signed/app:{sig_tag}"));
    let at = Both::new(plain(), plain());
    let m = mirror_v1(&format!("{}/signed/app:v1", src.host), &format!("{}/signed/app:v1", dest.host));
    let (done, entries) = run(&m, &at).expect("mirror");
    assert_eq!(done.totals.signature_tags, 1, "{entries:?}");
    assert_eq!(entries[0]["signature_tags"][0], sig_tag.as_str(), "{entries:?}");
    assert_eq!(
        dest.digest(&format!("signed/app:{sig_tag}")),
        src.digest(&format!("signed/app:{sig_tag}"))
    );
    assert!(done.diff.after.contains("(signature)"), "{:?}", done.diff);
}

/// A failed entry is reported as such, with what the others copied; the
/// others are not held back by it.
#[test]
fn a_missing_source_fails_its_entry_only() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(5, "have/app:v1")]);
    let at = Both::new(plain(), plain());
    let m = mirror_within(&reg, &[("have/app:v1", "out/app:v1"), ("gone/app:v1", "out/gone:v1")]);
    let (done, entries) = run(&m, &at).expect("mirror");
    assert_eq!(done.failures.len(), 1, "{:?}", done.failures);
    assert!(done.failures[0].starts_with("images[1] "), "{:?}", done.failures);
    assert_eq!(done.moved, [format!("{}/out/app:v1", reg.host)], "the copy that landed is named");
    assert_eq!(reg.digest("out/app:v1"), reg.digest("have/app:v1"));
    assert_eq!(entries[1]["failed"], true, "{entries:?}");
}

/// Tag lists: distribution's pages followed (two tags a page), zuul-registry
/// asked whole (it refuses a page size), a repository that is not there
/// named so, and a flood of names refused at the bound.
#[test]
fn tag_lists_are_read_whole_and_bounded() {
    let fx = Fixtures::get();
    let dist = TestRegistry::start(Kind::Distribution);
    let zuul_reg = TestRegistry::start(Kind::Zuul);
    let tags = ["a", "b", "c", "d", "e"];
    for t in tags {
        dist.seed(&fx.single(0), &format!("many/app:{t}"));
        zuul_reg.seed(&fx.single(0), &format!("many/app:{t}"));
    }
    let engine = Engine::new(EngineOptions::default());
    let stats = Arc::new(Stats::default());
    let d = engine.client(&dist.host, "t", &plain(), stats.clone()).expect("client");
    let z = engine.client(&zuul_reg.host, "t", &zuul(&zuul_reg), stats.clone()).expect("client");
    let rt = runtime();
    for (name, client) in [("distribution", &d), ("zuul-registry", &z)] {
        let mut listed = rt.block_on(client.list_tags_paged("many/app", 2)).expect(name).tags;
        // zuul-registry lists digest references too (see docs/architecture.md).
        listed.retain(|t| !t.starts_with("sha256"));
        listed.sort();
        assert_eq!(listed, tags, "{name}");
    }
    let missing = rt.block_on(d.list_tags("no/such")).expect_err("no repository");
    assert!(matches!(missing.kind(), ErrorKind::NotFound { .. }), "{missing}");

    let flood = HostileRegistry::start(Hostility {
        tag_flood: 2_000_000,
        ..Default::default()
    });
    let h = engine.client(&flood.host, "t", &plain(), stats).expect("client");
    let refused = rt.block_on(h.list_tags(flood.repository)).expect_err("a flood");
    assert!(refused.to_string().contains("more than 1000000 tags"), "{refused}");
}

/// A registry that asks the writer to come back later (429 with
/// `Retry-After` to the first manifest writes) still gets the whole copy,
/// and the retries are counted.
#[test]
fn a_copy_to_a_rate_limited_registry_completes_and_counts_its_retries() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(6, "flaky/app:v1")]);
    let proxy = FaultProxy::before(&reg, |f| {
        f.limit_manifest_puts = 2;
        f.retry_after_secs = 1;
    });
    let at = Both::new(plain(), plain());
    let m = mirror_v1(&format!("{}/flaky/app:v1", reg.host), &format!("{}/steady/app:v1", proxy.host));
    let (done, _) = run(&m, &at).expect("mirror");
    assert!(done.failures.is_empty(), "{:?}", done.failures);
    assert_eq!(reg.digest("steady/app:v1"), reg.digest("flaky/app:v1"));
    assert_eq!(done.totals.stats.retries, 2, "{:?}", done.totals);
}
