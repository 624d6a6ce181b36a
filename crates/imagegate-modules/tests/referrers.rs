//! Signatures and referrers travel with mirrored images: an OCI referrer
//! (listed in the referrers tag schema, since distribution 2.8 has no
//! referrers API) and a cosign-style `.sig` tag, pushed with the plain
//! registry API, arrive at the destination with the same digests.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use imagegate_registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use imagegate_registry::referrers::fallback_tag;
use imagegate_registry::{Digest, Engine, EngineOptions, RegistryClient, RegistryConfig, Stats};
use imagegate_testkit::{run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn mirror(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registry_mirror")), args)
}

/// A runtime and a client of an engine of its own (kept with it) that
/// pushes to `host` over plain HTTP, for seeding.
fn seeder(host: &str) -> (tokio::runtime::Runtime, Engine, RegistryClient) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = Engine::new(EngineOptions::default());
    let plain = RegistryConfig {
        plain_http: true,
        ..RegistryConfig::default()
    };
    let c = engine.client(host, "seed", &plain, Arc::new(Stats::default())).unwrap();
    (rt, engine, c)
}

/// Pushes an OCI manifest (empty config, one layer of `payload`) under the
/// tag `reference` (by its own digest if `None`), with `extra` fields
/// merged in; returns its digest and size.
async fn push_manifest(c: &RegistryClient, repo: &str, reference: Option<&str>, payload: &[u8], extra: Value) -> (Digest, usize) {
    let config = c.put_blob_bytes(repo, Bytes::from_static(b"{}")).await.unwrap();
    let layer = c.put_blob_bytes(repo, Bytes::copy_from_slice(payload)).await.unwrap();
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.as_str(), "size": payload.len()}],
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut m, extra) {
        m.extend(e);
    }
    let bytes = Bytes::from(m.to_string());
    let size = bytes.len();
    let manifest = imagegate_registry::manifest::Manifest::from_bytes("seed", bytes, Some(OCI_MANIFEST)).unwrap();
    let reference = reference.map(str::to_string).unwrap_or_else(|| manifest.digest.to_string());
    c.put_manifest(repo, &reference, &manifest).await.unwrap();
    (manifest.digest, size)
}

/// Pushes an image tagged `v1` to `repo` and an attestation referring to
/// it, listed in the referrers tag schema (an index under `sha256-<hex>`);
/// returns the image's digest and the attestation's.
async fn push_with_referrer(c: &RegistryClient, repo: &str, layer: &[u8]) -> (Digest, Digest) {
    let (image, image_size) = push_manifest(c, repo, Some("v1"), layer, json!({})).await;
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": image.as_str(), "size": image_size});
    let (artifact, artifact_size) = push_manifest(
        c,
        repo,
        None,
        b"an attestation",
        json!({"artifactType": "application/vnd.example.sbom", "subject": subject}),
    )
    .await;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": artifact.as_str(), "size": artifact_size, "artifactType": "application/vnd.example.sbom"}
    ]});
    let index = imagegate_registry::manifest::Manifest::from_bytes("seed", Bytes::from(index.to_string()), Some(OCI_INDEX)).unwrap();
    c.put_manifest(repo, &fallback_tag(&image), &index).await.unwrap();
    (image, artifact)
}

#[test]
fn a_referrer_and_a_signature_tag_travel_with_the_image() {
    let src = TestRegistry::start(Kind::Distribution);
    let dest = TestRegistry::start(Kind::Distribution);
    let (rt, _engine, c) = seeder(&src.host);
    let (image, artifact) = rt.block_on(async {
        let (image, artifact) = push_with_referrer(&c, "signed/app", b"the image layer").await;
        // cosign's tag scheme.
        push_manifest(
            &c,
            "signed/app",
            Some(&format!("{}.sig", fallback_tag(&image))),
            b"a signature",
            json!({}),
        )
        .await;
        (image, artifact)
    });
    let sig_tag = format!("{}.sig", fallback_tag(&image));
    let args = |check: bool, dest_repo: &str, referrers: bool| {
        json!({
            "images": [{"src": format!("{}/signed/app:v1", src.host), "dest": format!("{}/{dest_repo}", dest.host)}],
            "registries": {src.host.clone(): src.module_entry(), dest.host.clone(): dest.module_entry()},
            "referrers": referrers,
            "_ansible_check_mode": check,
        })
    };
    let check = mirror(&args(true, "mirror/app", true));
    check.assert_ok();
    assert!(check.changed());
    assert_eq!(check.result["totals"]["referrers"], 1, "{}", check.stdout);
    assert_eq!(check.result["totals"]["signature_tags"], 1, "{}", check.stdout);
    assert_eq!(dest.digest(&format!("mirror/app:{sig_tag}")), None, "check mode wrote nothing");

    let real = mirror(&args(false, "mirror/app", true));
    real.assert_ok();
    assert_eq!(dest.digest("mirror/app:v1").as_deref(), Some(image.as_str()));
    dest.assert_holds("mirror/app", artifact.as_str(), "the referrer arrived with its digest");
    assert_eq!(
        dest.digest(&format!("mirror/app:{sig_tag}")),
        src.digest(&format!("signed/app:{sig_tag}"))
    );
    let index: Value = serde_json::from_slice(&dest.raw_manifest(&format!("mirror/app:{}", fallback_tag(&image)))).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        artifact.as_str(),
        "the referrers tag index lists it"
    );

    let again = mirror(&args(false, "mirror/app", true));
    again.assert_ok();
    assert!(!again.changed(), "nothing left to carry: {}", again.stdout);

    let without = mirror(&args(false, "bare/app", false));
    without.assert_ok();
    assert_eq!(dest.digest("bare/app:v1").as_deref(), Some(image.as_str()));
    assert_eq!(
        dest.digest(&format!("bare/app:{sig_tag}")),
        None,
        "referrers: false carries nothing"
    );
}

/// A registry without the referrers API (distribution 2.8 answers 404) is
/// asked for it once per call, not once per image: later images go straight
/// to the referrers tag schema, and their referrers still travel.
#[test]
fn a_registry_without_the_referrers_api_is_asked_once_per_call() {
    let src = TestRegistry::start_logging_requests(Kind::Distribution);
    let dest = TestRegistry::start_logging_requests(Kind::Distribution);
    let (rt, _engine, c) = seeder(&src.host);
    let artifact = rt.block_on(async {
        for n in 0..3 {
            push_manifest(&c, &format!("plain/app{n}"), Some("v1"), format!("layer {n}").as_bytes(), json!({})).await;
        }
        push_with_referrer(&c, "signed/app", b"the signed layer").await.1
    });
    let seeded = src.requests().len();
    // One image at a time, the signed one last: the answers of the first
    // decide what the later ones ask.
    let mut images: Vec<Value> = (0..3)
        .map(|n| json!({"src": format!("{}/plain/app{n}:v1", src.host), "dest": format!("{}/mirror/app{n}", dest.host)}))
        .collect();
    images.push(json!({"src": format!("{}/signed/app:v1", src.host), "dest": format!("{}/mirror/signed", dest.host)}));
    let run = mirror(&json!({
        "images": images,
        "registries": {src.host.clone(): src.module_entry(), dest.host.clone(): dest.module_entry()},
        "concurrency": 1,
    }));
    run.assert_ok();
    assert_eq!(run.result["totals"]["referrers"], 1, "{}", run.stdout);
    dest.assert_holds("mirror/signed", artifact.as_str(), "the last image's referrer travelled");
    let api = |requests: &[(String, String, String)]| requests.iter().filter(|(_, path, _)| path.contains("/referrers/")).count();
    assert_eq!(
        api(&src.requests()[seeded..]),
        1,
        "source asked once: {:?}",
        &src.requests()[seeded..]
    );
    assert_eq!(api(&dest.requests()), 1, "destination asked once: {:?}", dest.requests());
}

fn retag(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_retag")), args)
}

/// require_signature: a set with an unsigned image moves nothing and names
/// it; once each image has a signature (a cosign `.sig` tag for one, a
/// signature referrer in the tag schema for the other) the set moves, and
/// the result says the signatures stay valid (a re-tag moves no bytes).
#[test]
fn require_signature_refuses_an_unsigned_image() {
    let reg = TestRegistry::start(Kind::Distribution);
    let (rt, _engine, c) = seeder(&reg.host);
    let (a, b, b_size) = rt.block_on(async {
        let (a, _) = push_manifest(&c, "set/a", Some("testing"), b"image a", json!({})).await;
        let (b, b_size) = push_manifest(&c, "set/b", Some("testing"), b"image b", json!({})).await;
        // a: cosign's signature tag.
        push_manifest(&c, "set/a", Some(&format!("{}.sig", fallback_tag(&a))), b"a signature", json!({})).await;
        (a, b, b_size)
    });
    let args = json!({
        "images": [
            {"repository": format!("{}/set/a", reg.host), "src_tag": "testing", "tags": ["current"]},
            {"repository": format!("{}/set/b", reg.host), "src_tag": "testing", "tags": ["current"]},
        ],
        "require_signature": true,
        "registries": {reg.host.clone(): {"plain_http": true}},
    });
    let refused = retag(&args);
    assert!(refused.failed(), "{}", refused.stdout);
    assert!(
        refused.msg().contains("images[1]") && refused.msg().contains(b.as_str()),
        "{}",
        refused.msg()
    );
    assert!(!refused.msg().contains("images[0]"), "{}", refused.msg());
    assert_eq!(reg.digest("set/a:current"), None, "nothing moved");

    // b gets a sigstore bundle as a referrer, listed in the tag schema.
    rt.block_on(async {
        let subject = json!({"mediaType": OCI_MANIFEST, "digest": b.as_str(), "size": b_size});
        let (sig, sig_size) = push_manifest(
            &c,
            "set/b",
            None,
            b"a bundle",
            json!({"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json", "subject": subject}),
        )
        .await;
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sig.as_str(), "size": sig_size,
             "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]});
        let m = imagegate_registry::manifest::Manifest::from_bytes("seed", Bytes::from(index.to_string()), Some(OCI_INDEX)).unwrap();
        c.put_manifest("set/b", &fallback_tag(&b), &m).await.unwrap();
    });
    let moved = retag(&args);
    moved.assert_ok();
    assert_eq!(reg.digest("set/a:current").as_deref(), Some(a.as_str()));
    assert_eq!(reg.digest("set/b:current").as_deref(), Some(b.as_str()));
    assert_eq!(moved.result["signatures_stay_valid"], json!(true));
    let found = moved.result["signatures"].to_string();
    assert!(
        found.contains("cosign signature tag") && found.contains("sigstore.bundle"),
        "{found}"
    );
}
