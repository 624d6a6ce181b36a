use super::*;

const BS: &str = "zuul-jobs.buildset-registry:5000";

fn file(name: &str, text: &str) -> SiteFile {
    SiteFile {
        path: PathBuf::from(name),
        table: text.parse().unwrap_or_else(|e| panic!("{name}: {e}")),
        after_ours: false,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The drop-in for docker.io and quay.io with docker.io searched, parsed
/// back, and the warnings.
fn merged(files: &[SiteFile]) -> (Table, Vec<String>) {
    merged_with(files, &["docker.io", "quay.io"], &["docker.io"])
}

/// [`merged`] with the site's main file alone.
fn merged_main(text: &str) -> (Table, Vec<String>) {
    merged(&[file("main.conf", text)])
}

fn merged_with(files: &[SiteFile], namespaces: &[&str], unqualified: &[&str]) -> (Table, Vec<String>) {
    let (namespaces, unqualified) = (names(namespaces), names(unqualified));
    let out = merge(
        files,
        &Request {
            buildset: BS,
            namespaces: &namespaces,
            unqualified: &unqualified,
        },
    )
    .unwrap();
    assert!(out.text.starts_with(HEADER));
    (out.text.parse().expect("the drop-in is TOML"), out.warnings)
}

fn entry<'a>(t: &'a Table, prefix: &str) -> &'a Table {
    t["registry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_table().unwrap())
        .find(|e| e["prefix"].as_str() == Some(prefix))
        .unwrap_or_else(|| panic!("no {prefix} entry in {t}"))
}

fn mirrors(e: &Table) -> Vec<Table> {
    e["mirror"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_table().unwrap().clone())
        .collect()
}

fn locations(e: &Table) -> Vec<String> {
    mirrors(e).iter().map(|m| m["location"].as_str().unwrap().to_string()).collect()
}

/// The drop-in's `unqualified-search-registries`.
fn search_list(t: &Table) -> Vec<&str> {
    t["unqualified-search-registries"]
        .as_array()
        .unwrap_or_else(|| panic!("no search list in {t}"))
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[test]
fn no_site_file_gives_the_buildset_registry_alone() {
    let (t, warnings) = merged(&[]);
    assert!(warnings.is_empty());
    assert_eq!(search_list(&t), ["docker.io"]);
    let docker = entry(&t, "docker.io");
    assert_eq!(docker["location"].as_str(), Some("docker.io"));
    assert_eq!(locations(docker), vec![BS.to_string()]);
    assert_eq!(locations(entry(&t, "quay.io")), vec![format!("{BS}/quay.io")]);
}

#[test]
fn site_mirrors_follow_the_buildset_registry_with_their_flags() {
    let site = file(
        "/etc/containers/registries.conf",
        r#"
unqualified-search-registries = ["registry.example.org", "docker.io"]
short-name-mode = "permissive"

[[registry]]
prefix = "docker.io"
location = "docker.io"
insecure = false

[[registry.mirror]]
location = "mirror.site.example:5000/docker"
insecure = true
pull-from-mirror = "tag-only"

[[registry.mirror]]
location = "mirror2.site.example"

[[registry]]
location = "registry.example.org"
blocked = true
"#,
    );
    let (t, warnings) = merged(&[site]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let docker = entry(&t, "docker.io");
    assert_eq!(
        locations(docker),
        vec![
            BS.to_string(),
            "mirror.site.example:5000/docker".into(),
            "mirror2.site.example".into()
        ]
    );
    let site_mirror = &mirrors(docker)[1];
    assert_eq!(site_mirror["insecure"].as_bool(), Some(true));
    assert_eq!(site_mirror["pull-from-mirror"].as_str(), Some("tag-only"));
    assert_eq!(docker["insecure"].as_bool(), Some(false));
    // Searched: ours first, then the site's, each once.
    assert_eq!(search_list(&t), ["docker.io", "registry.example.org"]);
    // An entry for a registry that is not a namespace is not repeated: the
    // site's own file still holds it.
    assert!(t["registry"].as_array().unwrap().len() == 2);
}

#[test]
fn every_key_of_the_site_entry_is_kept() {
    let (t, _) = merged_main(
        r#"
[[registry]]
prefix = "quay.io"
location = "quay-cache.site.example"
insecure = true
blocked = true
some-future-key = "kept"
"#,
    );
    let quay = entry(&t, "quay.io");
    assert_eq!(quay["location"].as_str(), Some("quay-cache.site.example"));
    assert_eq!(quay["insecure"].as_bool(), Some(true));
    assert_eq!(quay["blocked"].as_bool(), Some(true));
    assert_eq!(quay["some-future-key"].as_str(), Some("kept"));
    assert_eq!(locations(quay), vec![format!("{BS}/quay.io")]);
}

#[test]
fn later_files_replace_earlier_entries_and_lists() {
    let main = file(
        "main.conf",
        "unqualified-search-registries = [\"a.example\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"old.mirror\"\n",
    );
    let drop_in = file(
        "10-site.conf",
        "unqualified-search-registries = [\"b.example\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"new.mirror\"\n",
    );
    let (t, _) = merged(&[main, drop_in]);
    assert_eq!(locations(entry(&t, "docker.io")), vec![BS.to_string(), "new.mirror".into()]);
    assert_eq!(search_list(&t), ["docker.io", "b.example"]);
}

#[test]
fn a_stale_buildset_mirror_is_not_repeated() {
    let (t, _) = merged_main(
        &format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{BS}\"\n[[registry.mirror]]\nlocation = \"site.mirror\"\n"),
    );
    assert_eq!(locations(entry(&t, "docker.io")), vec![BS.to_string(), "site.mirror".into()]);
}

#[test]
fn mirror_by_digest_only_becomes_digest_only_site_mirrors() {
    let (t, _) = merged_main(
        "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"site.mirror\"\n",
    );
    let docker = entry(&t, "docker.io");
    assert!(!docker.contains_key("mirror-by-digest-only"), "{docker}");
    let m = mirrors(docker);
    assert!(!m[0].contains_key("pull-from-mirror"), "the buildset registry serves tag pulls");
    assert_eq!(m[1]["pull-from-mirror"].as_str(), Some("digest-only"));
}

#[test]
fn version_1_insecure_and_blocked_lists_are_kept() {
    let (t, _) = merged_main(
        r#"
[registries.search]
registries = ["registry.example.org", "docker.io"]

[registries.insecure]
registries = ["docker.io"]

[registries.block]
registries = ["quay.io", "docker.io"]
"#,
    );
    let docker = entry(&t, "docker.io");
    assert_eq!(docker["insecure"].as_bool(), Some(true));
    assert_eq!(docker["blocked"].as_bool(), Some(true));
    assert_eq!(entry(&t, "quay.io")["blocked"].as_bool(), Some(true));
    assert!(!entry(&t, "quay.io").contains_key("insecure"));
    assert_eq!(search_list(&t), ["docker.io", "registry.example.org"]);
}

#[test]
fn enforcing_short_names_keep_the_search_list_unambiguous() {
    let (t, warnings) =
        merged_main("short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"registry.fedoraproject.org\", \"docker.io\"]\n");
    assert_eq!(search_list(&t), ["docker.io"]);
    assert!(warnings[0].contains("short-name-mode is enforcing"), "{warnings:?}");
    assert!(warnings[0].contains("registry.fedoraproject.org"), "{warnings:?}");
}

#[test]
fn no_search_list_anywhere_writes_none() {
    let (t, _) = merged_with(&[], &["quay.io"], &[]);
    assert!(!t.contains_key("unqualified-search-registries"));
    let (t, _) = merged_with(&[], &[], &[]);
    assert!(t.is_empty(), "{t}");
}

#[test]
fn a_drop_in_read_after_ours_is_named_in_a_warning() {
    let mut later = file(
        "/etc/containers/registries.conf.d/99-site.conf",
        "unqualified-search-registries = [\"x.example\"]\n[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n",
    );
    later.after_ours = true;
    let (_, warnings) = merged(&[later]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .all(|w| w.starts_with("/etc/containers/registries.conf.d/99-site.conf is read after")));
    assert!(warnings.iter().any(|w| w.contains("its quay.io entry")));
}

fn merge_error(text: &str) -> String {
    let namespaces = names(&["docker.io"]);
    merge(
        &[file("/etc/containers/registries.conf", text)],
        &Request {
            buildset: BS,
            namespaces: &namespaces,
            unqualified: &[],
        },
    )
    .unwrap_err()
}

#[test]
fn malformed_site_settings_fail_naming_the_file_and_the_key() {
    for (text, says) in [
        ("registry = 3\n", "registry is not an array"),
        ("[[registry]]\ninsecure = true\n", "neither prefix nor location"),
        ("[[registry]]\nprefix = 1\n", "[[registry]] 1: prefix is not a string"),
        ("[[registry]]\nprefix = \"docker.io\"\nmirror = \"x\"\n", "mirror is not an array"),
        ("[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\ninsecure = true\n", "has no location"),
        ("[[registry]]\nprefix = \"docker.io\"\nmirror-by-digest-only = \"yes\"\n", "mirror-by-digest-only is not true or false"),
        ("unqualified-search-registries = \"docker.io\"\n", "unqualified-search-registries is not a list"),
        ("short-name-mode = 1\n", "short-name-mode is not a string"),
        ("[registries.search]\nregistries = \"a\"\n", "[registries.search] registries is not a list"),
        (
            "unqualified-search-registries = []\n[registries.search]\nregistries = []\n",
            "mixes the version 1",
        ),
        (
            "[[registry]]\nprefix = \"docker.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"all\"\n",
            "sets mirror-by-digest-only and a mirror's pull-from-mirror",
        ),
    ] {
        let error = merge_error(text);
        assert!(error.starts_with("/etc/containers/registries.conf: "), "{text}: {error}");
        assert!(error.contains(says), "{text}: {error}");
    }
}
