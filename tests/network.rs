//! Corporate networks: every connection the provider opens goes through the proxy that
//! `HTTPS_PROXY`/`HTTP_PROXY` name (but not to `NO_PROXY` hosts) and trusts a private CA
//! (`SSL_CERT_FILE`, `AWS_CA_BUNDLE`). The endpoints are names only the proxy resolves
//! (`*.proxied.test`), served over TLS with a throwaway CA; the proxy's log shows what went
//! through it. A failure to connect reads as a network failure, naming endpoint and fix.

mod support;

use standin::proxy::{ForwardProxy, Passed};
use standin::tls::ThrowawayCa;
use support::{image, Harness};

const REPO: &str = "mirror/app";

/// A world whose source registry and ECR (API and registry) also listen over TLS, signed by
/// a throwaway CA whose certificate is written to `ca.pem` next to the working directory;
/// and a forwarding proxy. Returns the TLS ports (source, ECR) and the CA file.
async fn behind_proxy(h: &Harness) -> (u16, u16, String, ForwardProxy) {
    let ca = ThrowawayCa::new().unwrap();
    let tls = ca.server_config(&["*.proxied.test"]).unwrap();
    let source_port = h.world.serve_source_tls(tls.clone()).await.unwrap();
    let ecr_port = h.world.ecr.serve_tls(tls).await.unwrap();
    let ca_file = h.work().parent().unwrap().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let proxy = ForwardProxy::start().await.unwrap();
    (source_port, ecr_port, ca_file.display().to_string(), proxy)
}

fn shown(passed: &[Passed]) -> Vec<String> {
    passed.iter().map(Passed::to_string).collect()
}

fn tunnels_to(passed: &[Passed], authority: &str) -> usize {
    passed
        .iter()
        .filter(|p| p.method == "CONNECT" && p.authority == authority)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_copy_reaches_every_endpoint_through_the_proxy_with_a_private_ca() {
    let mut h = Harness::start().await;
    let (source_port, ecr_port, ca_file, proxy) = behind_proxy(&h).await;
    let api = format!("ecr-api.proxied.test:{ecr_port}");
    let registry = format!("ecr-registry.proxied.test:{ecr_port}");
    let source = format!("source.proxied.test:{source_port}");
    h.world.ecr.advertise_https(&registry);
    let pushed = h.seed_image("upstream/app", "1.0", 91).await;

    h.config(&image(&format!(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#
    )));
    h.set_env("AWS_ENDPOINT_URL_ECR", &format!("https://{api}"));
    h.set_env("HTTPS_PROXY", &proxy.url());

    // Without the CA, the TLS failure says so, with the endpoint and the variables to set.
    let failed = h.apply_fails().await;
    let text = failed.stderr.replace('\n', " ");
    assert!(
        text.contains(&format!("Cannot reach the ECR API at https://{api}")),
        "{}",
        failed.stderr
    );
    assert!(
        text.contains("not trust") && text.contains("SSL_CERT_FILE"),
        "{}",
        failed.stderr
    );
    assert!(!text.contains("DispatchFailure"), "{}", failed.stderr);

    // SSL_CERT_FILE alone makes every connection trust the CA.
    h.set_env("SSL_CERT_FILE", &ca_file);
    proxy.clear();
    h.apply().await;
    let manifest = h.ecr_manifest(REPO, "1.0").await.expect("mirrored");
    assert_eq!(manifest.digest, pushed.manifest_digest);
    assert_eq!(
        h.attr("test", "image_uri").await,
        format!("{registry}/{REPO}:1.0")
    );
    let passed = proxy.passed();
    for authority in [&api, &registry, &source] {
        assert!(
            tunnels_to(&passed, authority) > 0,
            "nothing went through the proxy to {authority}: {:?}",
            shown(&passed)
        );
    }
    assert!(
        passed.iter().all(|p| p.method == "CONNECT"),
        "HTTPS went through the proxy unencrypted: {:?}",
        shown(&passed)
    );

    let (plan, changed) = h.plan().await;
    assert!(!changed, "{}", plan.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_copy_sends_the_providers_own_requests_through_the_proxy() {
    let mut h = Harness::start().await;
    let (_, ecr_port, ca_file, proxy) = behind_proxy(&h).await;
    let api = format!("ecr-api.proxied.test:{ecr_port}");
    // The Docker engine pulls and pushes itself (with its own proxy settings), so the
    // registries stay where it reaches them; the provider's own requests use the proxy.
    let source = h.world.source_host();
    let ecr_registry = h.world.ecr_host();
    h.seed_image("upstream/app", "1.0", 92).await;

    // Tracking the source, the provider asks the source itself which digest its tag names.
    let tagged = |tag: &str| {
        image(&format!(
            r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "{tag}"
  copy_method   = "docker"
  track_source  = true
"#
        ))
    };
    h.config(&tagged("1.0"));
    h.set_env("AWS_ENDPOINT_URL_ECR", &format!("https://{api}"));
    // Lower-case names, as many tools write them; AWS_CA_BUNDLE trusts the CA for the API.
    h.set_env("https_proxy", &proxy.url());
    h.set_env("http_proxy", &proxy.url());
    h.set_env("AWS_CA_BUNDLE", &ca_file);

    h.apply().await;
    assert!(h.ecr_manifest(REPO, "1.0").await.is_some());
    let (plan, changed) = h.plan().await;
    assert!(!changed, "{}", plan.output());
    let passed = proxy.passed();
    assert!(
        tunnels_to(&passed, &api) > 0,
        "the ECR API was not reached through the proxy: {:?}",
        shown(&passed)
    );
    for authority in [&ecr_registry, &source] {
        assert!(
            passed
                .iter()
                .any(|p| p.method != "CONNECT" && &p.authority == authority),
            "no request to {authority} went through the proxy: {:?}",
            shown(&passed)
        );
    }

    // NO_PROXY sends the listed hosts direct; the API still goes through the proxy.
    h.set_env("no_proxy", "127.0.0.1,localhost");
    h.config(&tagged("direct"));
    proxy.clear();
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "direct").await.is_some());
    let passed = proxy.passed();
    assert!(tunnels_to(&passed, &api) > 0, "{:?}", shown(&passed));
    assert!(
        passed.iter().all(|p| p.authority == api),
        "NO_PROXY hosts went through the proxy: {:?}",
        shown(&passed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_read_as_network_failures() {
    let mut h = Harness::start().await;
    let proxy = ForwardProxy::start().await.unwrap();
    h.seed_image("upstream/app", "1.0", 93).await;
    let from = |source: &str| {
        image(&format!(
            r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#
        ))
    };
    h.config(&from(&h.world.source_host()));

    // A name no DNS knows, without a proxy: the diagnostic says DNS, not credentials.
    h.set_env("AWS_ENDPOINT_URL_ECR", "https://ecr-api.proxied.test:443");
    let failed = h.apply_fails().await;
    let text = failed.stderr.replace('\n', " ");
    assert!(
        text.contains("Cannot reach the ECR API at https://ecr-api.proxied.test:443"),
        "{}",
        failed.stderr
    );
    assert!(text.contains("does not resolve"), "{}", failed.stderr);
    assert!(!text.contains("credentials"), "{}", failed.stderr);

    // Through a proxy that will not tunnel to the host: the proxy is named.
    h.set_env("AWS_ENDPOINT_URL_ECR", "https://blocked.example.com:443");
    h.set_env("HTTPS_PROXY", &proxy.url());
    let failed = h.apply_fails().await;
    let text = failed.stderr.replace('\n', " ");
    assert!(
        text.contains(&format!("The proxy {} would not open", proxy.url())),
        "{}",
        failed.stderr
    );
    assert_eq!(
        tunnels_to(&proxy.passed(), "blocked.example.com:443"),
        proxy.passed().len()
    );

    // A proxy that is not running: said so, with NO_PROXY as the way around it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    h.set_env("HTTPS_PROXY", &dead);
    let failed = h.apply_fails().await;
    let text = failed.stderr.replace('\n', " ");
    assert!(
        text.contains(&format!("The proxy {dead}")) && text.contains("refused"),
        "{}",
        failed.stderr
    );

    // The source registry down: on the attribute, naming the registry.
    h.unset_env("HTTPS_PROXY");
    h.set_env("AWS_ENDPOINT_URL_ECR", &h.world.ecr.endpoint());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    h.config(&from(&gone.to_string()));
    let failed = h.apply_fails().await;
    let text = failed.stderr.replace('\n', " ");
    assert!(
        text.contains(&format!(
            "Cannot reach the source registry at http://{gone}"
        )),
        "{}",
        failed.stderr
    );
    assert!(
        text.contains("Nothing accepts connections"),
        "{}",
        failed.stderr
    );
    assert!(text.contains("docker_source"), "{}", failed.stderr);
}
