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
        ignore_interrupts();
        tf_provider::serve(
            "ecrmirror",
            ecrmirror::provider::EcrMirrorProvider::default(),
        )
        .await
    })
}

/// Keeps the provider alive through Ctrl-C: Terraform sends SIGINT to its whole process group
/// and then asks the provider to stop over the protocol, after saving what exists.
fn ignore_interrupts() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut interrupts) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::info!("interrupt received; finishing the operation in flight");
                }
            });
        }
    }
    #[cfg(windows)]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("interrupt received; finishing the operation in flight");
        }
    });
}
