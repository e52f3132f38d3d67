//! `ecrmirror_source_tags`: a family of tags chosen from a source repository's tag list by
//! pattern, version range and newest N, fed to `for_each`. The stand-in source registry
//! pages its tag list with `Link` headers, in lexical order (the registry's order that ties
//! and tags without a version keep); reading the family asks for no manifest.

mod support;

use standin::images::{push_image, Spec};
use support::Harness;

/// Forty tags of one image: three majors (and a 0.x), variants, release candidates,
/// two-part versions, a leading `v`, and tags without a version.
const TAGS: [&str; 40] = [
    "1.25.0",
    "1.25.1",
    "1.26.0",
    "1.26.1",
    "1.27.0",
    "1.27.1",
    "1.27.2",
    "1.27.3",
    "1.25.0-alpine",
    "1.26.1-alpine",
    "1.27.0-alpine",
    "1.27.1-alpine",
    "1.27.2-alpine",
    "1.27.3-alpine",
    "1.27.4-rc1",
    "1.27.4-rc1-alpine",
    "2.0.0-rc1",
    "2.0.0-rc2",
    "2.0.0",
    "2.0.1",
    "2.1.0",
    "2.1.0-alpine",
    "v2.2",
    "3.0.0",
    "3.0.0-alpine",
    "3.1",
    "0.9.0",
    "0.9.1",
    "1.24.9",
    "1.24.9-bookworm",
    "latest",
    "alpine",
    "stable",
    "mainline",
    "stable-alpine",
    "edge",
    "nightly",
    "beta",
    "1.23",
    "1.23-perl",
];

/// Each filter alone and combined, with the tags it must choose.
const CASES: [(&str, &str, &[&str]); 7] = [
    (
        "alpine_127",
        r#"match = "^1\\.27\\.\\d+-alpine$""#,
        &[
            "1.27.3-alpine",
            "1.27.2-alpine",
            "1.27.1-alpine",
            "1.27.0-alpine",
        ],
    ),
    (
        "no_rc_2x",
        "match = \"^v?2.*\"\n  exclude = \"-rc\\\\d*$\"",
        &["v2.2", "2.1.0", "2.1.0-alpine", "2.0.1", "2.0.0"],
    ),
    (
        "range",
        r#"versions = ">= 2.1, < 3.1""#,
        &["3.0.0", "3.0.0-alpine", "v2.2", "2.1.0", "2.1.0-alpine"],
    ),
    ("newest", "latest = 3", &["3.1", "3.0.0", "3.0.0-alpine"]),
    (
        "versionless",
        r#"match = "[a-z][a-z-]*""#,
        &[
            "alpine",
            "beta",
            "edge",
            "latest",
            "mainline",
            "nightly",
            "stable",
            "stable-alpine",
        ],
    ),
    (
        "combined",
        "match = \".*-alpine\"\n  exclude = \"-rc\"\n  versions = \">= 1.25, < 2\"\n  latest = 2",
        &["1.27.3-alpine", "1.27.2-alpine"],
    ),
    ("two_part", r#"versions = "~1.23""#, &["1.23", "1.23-perl"]),
];

fn configuration() -> String {
    let mut hcl = String::from("provider \"ecrmirror\" {\n  copy_method = \"registry\"\n}\n");
    for (name, filters, _) in CASES {
        hcl.push_str(&format!(
            "\ndata \"ecrmirror_source_tags\" \"{name}\" {{\n  repository = \"{{source}}/upstream/family\"\n  {filters}\n}}\n\noutput \"{name}\" {{\n  value = data.ecrmirror_source_tags.{name}.tags\n}}\n"
        ));
    }
    hcl.push_str(
        r#"
resource "ecrmirror_image" "family" {
  for_each      = toset(data.ecrmirror_source_tags.alpine_127.tags)
  docker_source = "{source}/upstream/family:${each.key}"
  repository    = "mirror/family"
  tag           = each.key
}
"#,
    );
    hcl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_of_tags_is_chosen_from_every_page_and_mirrored_with_for_each() {
    let h = Harness::start().await;
    let client = h.source_client();
    for tag in TAGS {
        push_image(&client, "upstream/family", Some(tag), &Spec::small(700))
            .await
            .expect("seeding a tag");
    }
    // 16 a page: the forty tags come in three pages, each named by the last one's `Link`.
    h.world.source.page_tags(16);
    h.create_repository("mirror/family");
    h.config(&configuration());

    h.clear_logs();
    let (plan, changes) = h.plan().await;
    assert!(changes);
    plan.stdout_has("Plan: 4 to add");
    let requests = h.source_requests();
    let manifests = requests
        .iter()
        .filter(|r| r.contains("/manifests/"))
        .count();
    assert_eq!(
        manifests, 0,
        "reading tags asks for no manifest: {requests:#?}"
    );
    let pages = requests.iter().filter(|r| r.contains("/tags/list")).count();
    assert_eq!(
        pages,
        3 * CASES.len(),
        "three pages per data source: {requests:#?}"
    );
    eprintln!("requests of one plan: {requests:#?}");

    h.apply().await;
    let outputs = h.outputs().await;
    for (name, _, expected) in CASES {
        let got: Vec<&str> = outputs[name]
            .as_array()
            .unwrap_or_else(|| panic!("output {name}"))
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert_eq!(got, expected, "{name}");
        eprintln!("| `{name}` | {} |", got.join(", "));
    }
    for tag in [
        "1.27.0-alpine",
        "1.27.1-alpine",
        "1.27.2-alpine",
        "1.27.3-alpine",
    ] {
        assert!(h.ecr_tag("mirror/family", tag).is_some(), "{tag} mirrored");
    }
    let (again, changes) = h.plan().await;
    assert!(!changes, "the second plan is empty:\n{}", again.output());

    // A new matching tag upstream is one new mirror at the next plan.
    push_image(
        &client,
        "upstream/family",
        Some("1.27.4-alpine"),
        &Spec::small(701),
    )
    .await
    .expect("a new upstream tag");
    let (next, changes) = h.plan().await;
    assert!(changes);
    next.stdout_has("Plan: 1 to add, 0 to change, 0 to destroy");
    next.stdout_has("ecrmirror_image.family[\"1.27.4-alpine\"] will be created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_fail_at_plan_on_their_attribute_and_a_missing_repository_says_so() {
    let h = Harness::start().await;
    h.config(
        r#"
data "ecrmirror_source_tags" "bad" {
  repository = "{source}/upstream/app:1"
  match      = "("
  versions   = ">= banana"
  latest     = 2.5
}
"#,
    );
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success);
    run.stderr_has("names a tag or digest; give the repository alone");
    run.stderr_has("it must be a whole number of at least 1, not 2.5");
    // Each error points at its own line: the diagnostic carries the attribute.
    for line in [
        r#"repository = "127.0.0.1"#,
        r#"match = "(""#,
        r#"versions = ">= banana""#,
        "latest = 2.5",
    ] {
        run.stderr_has(line);
    }
    h.config(
        r#"
data "ecrmirror_source_tags" "missing" {
  repository = "{source}/upstream/nothing-here"
}
"#,
    );
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success);
    run.stderr_has("upstream/nothing-here");
    run.stderr_has("Check `repository`");
    assert!(!run.stderr.contains("docker_source"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_whose_pages_lead_in_a_circle_is_an_error_not_a_hang() {
    let h = Harness::start().await;
    for tag in ["1.0", "1.1", "1.2"] {
        h.seed_image("upstream/looped", tag, 702).await;
    }
    h.world.source.page_tags(1);
    // Every page names the second as the next: page 2 leads back to itself.
    h.world
        .source
        .link_tag_pages_to(Some("/v2/upstream/looped/tags/list?n=1&last=1.0".into()));
    h.config(
        r#"
data "ecrmirror_source_tags" "looped" {
  repository = "{source}/upstream/looped"
}
"#,
    );
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success);
    run.stderr_has("Cannot read the tag list of");
    run.stderr_has("its Link names a page already read next");
    let pages = h
        .source_requests()
        .iter()
        .filter(|r| r.contains("/tags/list"))
        .count();
    assert!(pages <= 3, "{pages} pages read");
}
