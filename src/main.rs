//! The provider binary: process set-up, then the plugin protocol server.

/// The static Linux release is linked against musl, whose allocator takes one lock for all
/// threads; mimalloc keeps the SDK's, TLS's and hashing's many small allocations parallel.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // tf-provider attaches a backtrace to every diagnostic when backtraces are enabled; users
    // must see what failed, not a stack trace. Set before any other thread exists.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    ecrmirror::logging::init();
    // One rustls crypto backend for the gRPC server and the AWS SDK alike.
    ecrmirror::install_crypto_provider();
    #[cfg(target_os = "linux")]
    ecrmirror::nodelay::start();
    tokio::runtime::Runtime::new()?.block_on(async {
        ecrmirror::provider::ignore_interrupts();
        tf_provider::serve(
            "ecrmirror",
            ecrmirror::provider::EcrMirrorProvider::default(),
        )
        .await
    })
}
