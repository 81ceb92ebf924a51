//! The `multinet-webhook` binary: flags, logging, and the server until SIGTERM or SIGINT.

use clap::Parser;
use multinet_webhook::flags::Flags;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&flags.log)?)
        .with_writer(std::io::stderr)
        .init();
    let config = flags.config()?;
    let server = multinet_webhook::start(config).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
    server.shutdown().await;
    Ok(())
}
