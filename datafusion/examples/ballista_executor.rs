//! A Ballista executor with meridian in it: it decodes the stages a scheduler sends —
//! meridian's spatial joins and functions included — and runs them on its own engine (the
//! GPU where this machine has one, as `MERIDIAN_MODE` and the engine's placement decide).
//!
//! ```text
//! cargo run --release -p meridian-datafusion --features ballista --example ballista_executor -- \
//!     [scheduler-host:port] [port]
//! ```
//! (`localhost:50050` and 50051 by default; the Flight service takes the next port). See
//! `docs/ballista.md`.

use std::process::ExitCode;
use std::sync::Arc;

use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use meridian_datafusion::codec::MeridianCodec;
use meridian_runtime::Engine;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballista_executor: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let scheduler = args.next().unwrap_or_else(|| "localhost:50050".into());
    let (host, port) = scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("the scheduler {scheduler:?} is not host:port"))?;
    let own: u16 = match args.next() {
        Some(p) => p.parse().map_err(|_| format!("the port {p:?} is not a number"))?,
        None => 50051,
    };
    let engine = Arc::new(Engine::builder().build().map_err(|e| e.to_string())?);
    let config = ExecutorProcessConfig {
        scheduler_host: host,
        scheduler_port: port,
        port: own,
        grpc_port: own.checked_add(1).ok_or("the port is the last one")?,
        override_physical_codec: Some(Arc::new(MeridianCodec::new(engine))),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| e.to_string())
}
