//! Scenarios: each runs the blocks it names (file, first line) and
//! asserts their effect.

use super::*;

pub(crate) const README: &str = "README.md";
pub(crate) const MODULES_RST: &str = "docs/modules.rst";
pub(crate) const MIRROR: &str = "plugins/modules/registry_mirror.yml";
pub(crate) const BUILD: &str = "plugins/modules/container_build.yml";
pub(crate) const PUSH: &str = "plugins/modules/container_push.yml";
pub(crate) const RETAG: &str = "plugins/modules/container_retag.yml";
pub(crate) const PIPELINES: &str = "docs/promotion-pipelines.rst";
pub(crate) const OPERATOR: &str = "docs/operator-guide.rst";

pub(crate) fn mirror(env: &Env, blocks: &Blocks) -> Vec<Outcome> {
    let fx = Fixtures::get();
    let (public, private, plain) = (&env.public, &env.private, &env.plain);
    public.seed(&fx.single(1), "example/app:1.0");
    public.seed(&fx.single(2), "zuul-ci/zuul-executor:latest");
    public.seed(&fx.multi(), "library/busybox:1.36");
    public.seed(&fx.single(3), "example/app:v1.2.3");
    public.seed(&fx.single(4), "example/app:v2.0.0");
    public.seed(&fx.single(5), "example/app:nightly");
    let app = public.digest("example/app:1.0");
    let vars = json!({
        "mirror_password": env.password(Stand::Private),
        "container_registry_credentials": env.credentials(),
        "mirror_container_images_images": [{
            "src_repository": format!("{}/example/app", public.host), "src_tag": "1.0",
            "dest_repository": format!("{}/items/app", private.host), "dest_tag": "1.0",
        }],
    });
    let same = |what: &str, dest: &str, src: &str| match public.digest(src) {
        None => Err(format!("{what}: the source {src} is gone")),
        want => expect_eq(what, private.digest(dest), want),
    };
    let checks: Vec<Check> = vec![
        (
            README,
            "- name: Mirror images",
            Box::new(|| same("the mirrored tag", "example/app:1.0", "example/app:1.0")),
        ),
        (
            MODULES_RST,
            "- hosts: all",
            Box::new(|| same("the mirrored tag", "mirror/app:1.0", "example/app:1.0")),
        ),
        (
            MIRROR,
            "- name: Mirror two images to a private registry",
            Box::new(|| {
                same("zuul-executor", "zuul/zuul-executor:latest", "zuul-ci/zuul-executor:latest")?;
                // With `platforms` the destination gets a new index of those children.
                let index: Value = serde_json::from_slice(&private.raw_manifest("base/busybox:1.36")).map_err(|e| e.to_string())?;
                expect_eq("busybox's platforms", Some(architectures(&index)), Some(vec!["amd64", "arm64"]))
            }),
        ),
        (
            MIRROR,
            "- name: Copy every release tag",
            Box::new(|| {
                same("v1.2.3", "example/app:v1.2.3", "example/app:v1.2.3")?;
                same("v2.0.0", "example/app:v2.0.0", "example/app:v2.0.0")?;
                expect_eq("a tag the regex leaves out", private.digest("example/app:nightly"), None)
            }),
        ),
        (
            MIRROR,
            "- name: The zuul-jobs item shape, with container_registry_credentials",
            Box::new(|| expect_eq("the item's destination", private.digest("items/app:1.0"), app.clone())),
        ),
        (
            MIRROR,
            "- name: What would change?",
            Box::new(|| expect_eq("check mode wrote nothing", plain.digest("example/app:1.0"), None)),
        ),
    ];
    env.run_plays(blocks, checks, &vars, None)
}

pub(crate) fn build_and_push(env: &Env, blocks: &Blocks) -> Vec<Outcome> {
    let context = env.scratch.join("src/example/app");
    let cwd = env.scratch.join("project");
    for dir in [context.clone(), cwd.join("images/base")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello"), format!("docs test {}\n", imagegate_testkit::random_hex(8))).unwrap();
        std::fs::write(dir.join("Containerfile"), "FROM scratch\nARG VERSION=0\nCOPY hello /hello\n").unwrap();
    }
    let public = env.public.host.clone();
    let vars = json!({
        "zuul_work_dir": context,
        "zuul": {"change": "1234", "change_url": "https://review.example.org/1234", "project": {"src_dir": context}},
        "container_registry_credentials": env.credentials(),
        "push_password": env.password(Stand::Private),
    });
    let _cleanup = LocalImages(vec![
        format!("{public}/example/app:latest"),
        format!("{public}/example/app:1.0"),
        format!("{public}/example/app:change_1234_latest"),
        format!("{public}/example/base:latest"),
    ]);
    let home = env.home.clone();
    let (pub_reg, priv_reg) = (&env.public, &env.private);
    let checks: Vec<Check> = vec![
        (
            BUILD,
            "- name: Build an image",
            Box::new(move || {
                let image = local_json("podman", &["image", "inspect", &format!("{public}/example/app:latest")])?;
                let change = image[0]["Labels"]["org.zuul-ci.change"].as_str().map(String::from);
                expect_eq("the image's change label", change, Some("1234".into()))
            }),
        ),
        (
            BUILD,
            "- name: Build for two platforms",
            Box::new(move || {
                let list = local_json(
                    "buildah",
                    &["manifest", "inspect", &format!("{}/example/base:latest", pub_reg.host)],
                )?;
                expect_eq(
                    "the manifest list's platforms",
                    Some(architectures(&list)),
                    Some(vec!["amd64", "arm64"]),
                )
            }),
        ),
        (
            PUSH,
            "- name: Build the image and keep it as an OCI layout",
            Box::new(move || expect(home.join("layouts/app/index.json").is_file(), "the layout in $HOME/layouts/app")),
        ),
        (
            PUSH,
            "- name: Push the built image under its tags",
            Box::new(|| {
                expect(pub_reg.digest("example/app:latest").is_some(), "latest pushed")?;
                expect_eq(
                    "1.0 and latest",
                    pub_reg.digest("example/app:1.0"),
                    pub_reg.digest("example/app:latest"),
                )
            }),
        ),
        (
            PUSH,
            "- name: Push an image from podman's storage",
            Box::new(|| expect(priv_reg.digest("example/app:latest").is_some(), "pushed to the private registry")),
        ),
    ];
    env.run_plays(blocks, checks, &vars, Some(&cwd))
}

pub(crate) fn promotion(env: &Env, blocks: &Blocks) -> Vec<Outcome> {
    let fx = Fixtures::get();
    let (public, private) = (&env.public, &env.private);
    public.seed(&fx.single(6), "example/app:change_1234_latest");
    let gate = public.digest("example/app:change_1234_latest");
    let images = ["tripleo/nova-api", "tripleo/keystone"];
    for (n, image) in images.iter().enumerate() {
        private.seed(&fx.single(7 + n), &format!("{image}:tripleo-ci-testing"));
        private.seed(&fx.single(9), &format!("{image}:current-tripleo"));
    }
    private.seed(&fx.single(0), "example/app:change_1_latest");
    private.seed(&fx.single(0), "example/app:keep");
    let keep = private.digest("example/app:keep");
    let testing: BTreeMap<String, Value> = images
        .iter()
        .map(|i| {
            (
                format!("{}/{i}", private.host),
                json!(private.digest(&format!("{i}:tripleo-ci-testing")).unwrap()),
            )
        })
        .collect();
    let stage = |job: &str| {
        json!({"uuid": format!("{job}-1"), "job_name": job, "result": "SUCCESS", "pipeline": "periodic",
               "ref": {"project": "rdo/tripleo-ci", "ref": "refs/heads/master", "change": null},
               "artifacts": [{"name": "tested stage", "url": "https://logs.example.org/",
                              "metadata": {"type": "imagegate_stage", "images": testing}}]})
    };
    let api = ZuulBuildsApi::start_tls("rdo", json!([stage("tripleo-ci-standalone"), stage("tripleo-ci-ovb")]));
    env.extra_cas
        .borrow_mut()
        .push(std::fs::read_to_string(api.ca_cert.as_ref().unwrap()).unwrap());
    *env.zuul_api.borrow_mut() = api.base.split('/').nth(2).unwrap().to_string();
    // The declared file the example reads from the project's checkout: the
    // tested digests, under a tag of their own (the restore example after it
    // puts back the promotion before it, which a moved tag would stop).
    let work_root = env.scratch.join("work");
    let src_dir = "src/opendev.org/rdo/tripleo-ci";
    let declared: Vec<Value> = testing
        .iter()
        .map(|(name, digest)| json!({"name": name, "digest": digest, "tags": ["declared-stage"]}))
        .collect();
    std::fs::create_dir_all(work_root.join(src_dir).join("stages")).unwrap();
    std::fs::write(
        work_root.join(src_dir).join("stages/current-tripleo.yaml"),
        json!({ "images": declared }).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(env.scratch.join("var/log")).unwrap();
    std::fs::create_dir_all(env.scratch.join("etc/containers/registries.conf.d")).unwrap();
    let vars = json!({
        "gate_digest": gate,
        "quay_password": env.password(Stand::Public),
        "quay_api_token": "docs-test-token",
        "zuul": {"build": "docs-test-build", "executor": {"work_root": work_root}, "project": {"src_dir": src_dir}},
    });
    let record = env.scratch.join("var/log/promotion.json");
    let old = private.digest("tripleo/nova-api:current-tripleo");
    let coll = env.coll.path().to_path_buf();
    let conf = env
        .scratch
        .join("etc/containers/registries.conf.d/50-imagegate-buildset-registry.conf");
    let queries = api.queries.clone();
    let checks: Vec<Check> = vec![
        (
            RETAG,
            "- name: Promote the gated image and drop the change tag",
            Box::new(|| {
                expect_eq("latest", public.digest("example/app:latest"), gate.clone())?;
                expect_eq("1.2", public.digest("example/app:1.2"), gate.clone())?;
                expect_eq("the change tag", public.digest("example/app:change_1234_latest"), None)
            }),
        ),
        (
            RETAG,
            "- name: Promote a whole set from one stage to the next, never half-way",
            Box::new(|| {
                let text = std::fs::read_to_string(&record).map_err(|e| format!("the record file: {e}"))?;
                expect(
                    text.contains("current-tripleo") && text.contains(old.as_deref().unwrap_or("-")),
                    "the record",
                )
            }),
        ),
        (
            RETAG,
            "- name: Promote a stage only if the jobs that test it succeeded for exactly these digests",
            Box::new(move || {
                let q = queries.lock().unwrap().join(" ");
                expect(
                    q.contains("job_name=tripleo-ci-standalone") && q.contains("job_name=tripleo-ci-ovb"),
                    "both jobs asked",
                )
            }),
        ),
        (
            RETAG,
            "- name: Promote exactly the digests a reviewed file declares",
            Box::new(|| {
                for image in images {
                    let want = private.digest(&format!("{image}:tripleo-ci-testing"));
                    expect_eq(image, private.digest(&format!("{image}:declared-stage")), want)?;
                }
                Ok(())
            }),
        ),
        (
            RETAG,
            "- name: Put a promotion back",
            Box::new(|| {
                for image in images {
                    expect_eq(image, private.digest(&format!("{image}:current-tripleo")), old.clone())?;
                }
                Ok(())
            }),
        ),
        (
            RETAG,
            "- name: Remove change tags older than a day",
            Box::new(|| {
                expect_eq("the change tag", private.digest("example/app:change_1_latest"), None)?;
                expect_eq("the other tag of its image", private.digest("example/app:keep"), keep.clone())
            }),
        ),
        (
            PIPELINES,
            "- name: Record the images this job tested",
            Box::new(move || {
                let returned = zuul_returned(&coll);
                let meta = &returned
                    .last()
                    .map(|r| r["data"]["zuul"]["artifacts"][0]["metadata"].clone())
                    .unwrap_or_default();
                expect_eq(
                    "the artifact's type",
                    meta["type"].as_str().map(String::from),
                    Some("imagegate_stage".into()),
                )
            }),
        ),
        (
            "plugins/modules/modules_version.py",
            "- name: Check the installed modules",
            // The task itself fails unless every executable is the version named.
            Box::new(|| Ok(())),
        ),
        (
            "plugins/modules/registries_conf.yml",
            "- name: Pull docker.io and quay.io images through the buildset registry first",
            Box::new(move || {
                let text = std::fs::read_to_string(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
                expect(
                    text.contains("zuul-jobs.buildset-registry:5000"),
                    "the drop-in names the buildset registry",
                )
            }),
        ),
    ];
    let mut out = env.run_plays(blocks, checks, &vars, None);
    out.push(record_format(blocks, &record));
    out.push(declared_file(env, blocks));
    out
}

/// The promotion record's format as docs/architecture.md shows it, against
/// the record the promotion example above wrote.
pub(crate) fn record_format(blocks: &Blocks, record: &Path) -> Outcome {
    blocks.run("docs/architecture.md", "{", |b| {
        let shown: Value = serde_json::from_str(&b.text).map_err(|e| format!("not JSON: {e}"))?;
        let text = std::fs::read_to_string(record).map_err(|e| format!("no record to compare with: {e}"))?;
        let real: Value = serde_json::from_str(&text).map_err(|e| format!("the record: {e}"))?;
        let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        expect_eq("the record's keys", Some(keys(&shown)), Some(keys(&real)))?;
        expect_eq("format", Some(shown["format"].clone()), Some(real["format"].clone()))?;
        expect_eq("version", Some(shown["version"].clone()), Some(real["version"].clone()))?;
        let real_entry = keys(&real["entries"][0]);
        for entry in shown["entries"].as_array().into_iter().flatten() {
            expect_eq("an entry's keys", Some(keys(entry)), Some(real_entry.clone()))?;
        }
        Ok(())
    })
}

/// The declared-by-digest file of docs/promotion-pipelines.rst, given to
/// container_retag's `declared` option as promote-set.yaml gives it.
pub(crate) fn declared_file(env: &Env, blocks: &Blocks) -> Outcome {
    blocks.run(PIPELINES, "images:", |b| {
        let private = &env.private;
        let target = private.digest("tripleo/nova-api:tripleo-ci-testing").ok_or("nothing seeded")?;
        let text = env.substitute(&b.data.to_string()).replace(PLACEHOLDERS[1].0, &target);
        let content: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let run = run_module(
            Path::new(env!("CARGO_BIN_EXE_container_retag")),
            &json!({"declared": {"file": "stages/current-tripleo.yaml", "content": content},
                    "registries": {private.host.clone(): private.module_entry()}}),
        );
        expect(!run.failed(), &format!("container_retag failed: {}", run.stdout))?;
        expect_eq("current-tripleo", private.digest("tripleo/nova-api:current-tripleo"), Some(target))
    })
}

pub(crate) fn shell(env: &Env, blocks: &Blocks) -> Vec<Outcome> {
    let version = galaxy_version();
    let tarball = format!("imagegate-containers-{version}.tar.gz");
    let installed = |path: &Path| {
        let binary = path
            .join("ansible_collections/imagegate/containers/binaries")
            .join(std::env::consts::ARCH)
            .join("registry_mirror");
        expect(binary.is_file(), &format!("{} installed", binary.display()))
    };
    let readme = blocks.run(README, "bash tools/build-modules.sh", |b| {
        let copy = env.repo_copy("readme")?;
        let target = env.scratch.join("collections-readme");
        let out = env.run_shell(b, &copy, &[("ANSIBLE_COLLECTIONS_PATH", target.as_path())])?;
        installed(&target)?;
        expect(
            out.contains("imagegate.containers.registry_mirror"),
            "ansible-doc showed the module",
        )
    });
    let copy = env.scratch.join("copy-operator");
    let build = blocks.run(OPERATOR, "bash tools/build-modules.sh", |b| {
        let copy = env.repo_copy("operator")?;
        env.run_shell(b, &copy, &[])?;
        expect(copy.join(&tarball).is_file(), &format!("{tarball} built"))
    });
    let install = blocks.run(OPERATOR, "ansible-galaxy collection install --force", |b| {
        env.run_shell(b, &copy, &[])?;
        installed(&env.scratch.join("usr/share/ansible/collections"))
    });
    let restore = blocks.run(
        PIPELINES,
        "ansible-playbook -i localhost, -c local playbooks/promote-set.yaml",
        |b| {
            let fx = Fixtures::get();
            let private = &env.private;
            let dir = env.scratch.join("restore");
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink(repo_root().join("playbooks"), dir.join("playbooks")).unwrap();
            private.seed(&fx.single(1), "restore/app:tripleo-ci-testing");
            private.seed(&fx.single(2), "restore/app:current-tripleo");
            let before = private.digest("restore/app:current-tripleo");
            let registries = json!({private.host.clone(): private.module_entry()});
            let run = run_module(
                Path::new(env!("CARGO_BIN_EXE_container_retag")),
                &json!({"images": [{"repository": format!("{}/restore/app", private.host), "src_tag": "tripleo-ci-testing",
                                "tags": ["current-tripleo"], "keep_previous": true}],
                    "registries": registries, "record_file": dir.join("promotion-record.json")}),
            );
            expect(run.changed(), &format!("the promotion to put back: {}", run.stdout))?;
            std::fs::write(
                dir.join("registries.yaml"),
                json!({ "promote_set_registries": registries }).to_string(),
            )
            .unwrap();
            env.run_shell(b, &dir, &[])?;
            expect_eq("current-tripleo put back", private.digest("restore/app:current-tripleo"), before)
        },
    );
    vec![readme, build, install, restore]
}

/// Zuul configuration snippets, checked with Zuul's own schemas
/// (tests/docs/extract.py zuul, as tools/check-zuul-config.py checks zuul.d).
pub(crate) fn zuul_config(_env: &Env, blocks: &Blocks) -> Vec<Outcome> {
    let check = |b: &Block| {
        let mut child = Command::new(venv_tool("python3"))
            .arg(repo_root().join("tests/docs/extract.py"))
            .args(["zuul".as_ref(), repo_root().as_os_str()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b.text.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        expect(out.status.success(), &format!("Zuul's schemas refuse it: {text}"))
    };
    vec![
        blocks.run("docs/migration-guide.rst", "- tenant:", check),
        blocks.run(PIPELINES, "- job:", check),
        blocks.run(OPERATOR, "- job:", check),
    ]
}

/// The architectures an index lists, sorted.
fn architectures(index: &Value) -> Vec<&str> {
    let mut archs: Vec<&str> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    archs.sort();
    archs
}
