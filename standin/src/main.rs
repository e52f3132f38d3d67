//! `ecrmirror-standin up DIR`: starts the stand-in world for `make demo`, seeds a demo image,
//! writes `DIR/env.sh` (the variables that point Terraform and the provider at it) and runs
//! until it is interrupted (SIGINT or SIGTERM).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use standin::images::{push_index, Spec};
use standin::World;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some("up"), Some(dir)) = (args.get(1).map(String::as_str), args.get(2)) else {
        bail!("usage: ecrmirror-standin up DIR");
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let world = World::start(&dir).await?;

    // The image the demo mirrors: a two-platform index, as most Docker Hub images are.
    let specs = [
        Spec::small(7),
        Spec::small(7).for_platform("arm64", Some("v8")),
    ];
    push_index(
        &world.source_client(None),
        "library/wordpress",
        "php7.4-apache",
        &specs,
    )
    .await
    .context("seeding the demo image")?;
    world.ecr.state.create_repository("php_wordpress");

    let mut env = world.write_aws_profile("default")?;
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env.push(("STANDIN_SOURCE".into(), world.source_host()));
    env.push(("STANDIN_ECR".into(), world.ecr_host()));
    let script: String = env
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .collect();
    std::fs::write(dir.join("env.sh.tmp"), script)?;
    std::fs::rename(dir.join("env.sh.tmp"), dir.join("env.sh"))?;
    eprintln!(
        "stand-in world up: source registry {}, ECR emulator {}",
        world.source_host(),
        world.ecr_host()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    // Dropping the world stops its registry processes.
    drop(world);
    Ok(())
}
