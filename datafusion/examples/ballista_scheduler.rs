//! A Ballista scheduler with meridian in it: it plans queries with meridian's functions and
//! spatial join, and sends the stages to executors through meridian's codec.
//!
//! ```text
//! cargo run --release -p meridian-datafusion --features ballista --example ballista_scheduler -- [port]
//! ```
//! (port 50050 by default; executors: the `ballista_executor` example). See `docs/ballista.md`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use meridian_datafusion::codec::MeridianCodec;
use meridian_runtime::Engine;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballista_scheduler: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(|_| format!("the port {p:?} is not a number"))?,
        None => 50050,
    };
    // The scheduler plans; it runs no joins itself, but the functions and the rule it plans
    // with hold an engine, as an executor's do.
    let engine = Arc::new(Engine::builder().build().map_err(|e| e.to_string())?);
    let planning = engine.clone();
    let config = SchedulerConfig {
        bind_host: "0.0.0.0".into(),
        bind_port: port,
        override_physical_codec: Some(Arc::new(MeridianCodec::new(engine))),
        // Every client session is planned with meridian in it.
        override_session_builder: Some(Arc::new(move |config| {
            Ok(meridian_datafusion::ballista::session_state_from(config, planning.clone()))
        })),
        ..Default::default()
    };
    let address = SocketAddr::from(([0, 0, 0, 0], port));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| e.to_string())?;
    start_server(cluster, address, Arc::new(config)).await.map_err(|e| e.to_string())
}
