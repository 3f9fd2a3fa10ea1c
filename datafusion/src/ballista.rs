//! meridian on a Ballista cluster (feature `ballista`).
//!
//! Every process of the cluster needs meridian: the scheduler plans the query (the functions
//! and the join rule must be in its session), and the executors run the stages it sends
//! them (the codec decodes meridian's nodes and functions onto their own engine). One
//! session state serves all three roles — the client's `SessionContext::remote_with_state`,
//! a scheduler's session builder, an executor's — each process with its own engine:
//!
//! ```no_run
//! # async fn client() -> datafusion::error::Result<()> {
//! use std::sync::Arc;
//! use meridian_datafusion::ballista::{connect, session_state};
//!
//! let engine = Arc::new(meridian_runtime::Engine::builder().build().expect("an engine"));
//! let ctx = connect("df://scheduler:50050", session_state(engine)).await?;
//! ctx.register_parquet("points", "/data/points/", Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! `docs/ballista.md` gives the recipe for a cluster: the scheduler and executor processes
//! built with meridian in them.

use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::common::Result;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use meridian_runtime::Engine;

use crate::codec::MeridianCodec;
use crate::{CollectFunction, ConstructFunction, ConvertFunction, KnnFunction, SpatialFunction};

/// A session for Ballista with meridian's functions, its join rule and its codec, run by
/// `engine`.
pub fn session_state(engine: Arc<Engine>) -> SessionState {
    session_state_from(SessionConfig::new_with_ballista(), engine)
}

/// Like [`session_state`] with the settings of `config` (a scheduler's session builder gets
/// each client's).
pub fn session_state_from(config: SessionConfig, engine: Arc<Engine>) -> SessionState {
    let codec = Arc::new(MeridianCodec::new(engine.clone()));
    // Ballista's adaptive planner plans stages with its own fixed list of physical rules,
    // leaving out the session's, so meridian's join rule would never run: the static planner
    // (the session's rules, DataFusion's join selection) plans instead.
    let config = config
        .upgrade_for_ballista()
        .with_ballista_physical_extension_codec(codec)
        .with_ballista_adaptive_query_planner(false);
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    let ctx = SessionContext::new_with_state(state);
    crate::register(&ctx, engine);
    ctx.state()
}

/// A client's context on the cluster whose scheduler is at `url` (`df://host:port`), with
/// `state` (from [`session_state`]). Ballista's client session replaces the scalar functions
/// with its own list, so meridian's — the predicates and measures, the conversions
/// (`ST_GeomFromWKB`, `ST_X`, ...), the constructors and `ST_KNN` — are registered again on
/// it, and `ST_Collect` when it is missing.
pub async fn connect(url: &str, state: SessionState) -> Result<SessionContext> {
    let ours: Vec<Arc<ScalarUDF>> =
        state.scalar_functions().values().filter(|f| is_meridians(f)).cloned().collect();
    let collect = state.aggregate_functions().get(CollectFunction::NAME).cloned();
    let ctx = SessionContext::remote_with_state(url, state).await?;
    for f in ours {
        ctx.register_udf(f.as_ref().clone());
    }
    if let Some(c) =
        collect.filter(|_| !ctx.state().aggregate_functions().contains_key(CollectFunction::NAME))
    {
        ctx.register_udaf(c.as_ref().clone());
    }
    Ok(ctx)
}

/// Whether `f` is one of meridian's scalar functions.
fn is_meridians(f: &ScalarUDF) -> bool {
    let inner = f.inner();
    inner.downcast_ref::<SpatialFunction>().is_some()
        || inner.downcast_ref::<ConvertFunction>().is_some()
        || inner.downcast_ref::<ConstructFunction>().is_some()
        || inner.downcast_ref::<KnnFunction>().is_some()
}
