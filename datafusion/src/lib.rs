//! meridian inside Apache DataFusion.
//!
//! [`register`] adds to a `SessionContext`:
//! - the scalar functions `ST_Area`, `ST_Length`, `ST_Centroid`, `ST_Contains`, `ST_Within`,
//!   `ST_Intersects`, `ST_DWithin` and `ST_Distance` over Arrow geometry columns (WKB or
//!   GeoArrow), each evaluated batch by batch by meridian's engine ([`udf`]);
//! - the conversions `ST_GeomFromWKB`, `ST_GeomFromText`, `ST_X`, `ST_Y` and `ST_MakeLine`
//!   ([`convert`]);
//! - `ST_ConvexHull` and `ST_Intersection`, computed on the host with `geo` ([`construct`]), and
//!   the aggregate `ST_Collect` ([`collect`]);
//! - a physical optimizer rule that runs an inner, left or right join on one of the spatial
//!   predicates as a [`MeridianSpatialJoinExec`]: the build side indexed once, each probe batch
//!   one bytecode program through the engine, on the CPU or the GPU ([`join`]); and a join on
//!   `ST_KNN(q, o, k, false)` the same way, its k nearest found in an R-tree ([`knn`]);
//! - the table function `meridian_run('program.masm', 'input=table', …)`: any program over
//!   registered tables ([`run`]).
//!
//! With the `ballista` feature, [`codec`] carries meridian's join and functions to a Ballista
//! cluster's executors and [`ballista`] makes the sessions for one.
//!
//! [`sql::run`] is `meridian sql`: a query over Parquet and CSV files on such a context, whose
//! full sorts on fixed-width keys are [`KeySortExec`]s ([`sort`], added by [`KeySortRule`]),
//! and whose top-k scans of Parquet read every row group's head first ([`scan_head`]).
//!
//! It lives in its own crate so that meridian's default build does not compile DataFusion.

#[cfg(feature = "ballista")]
pub mod ballista;
#[cfg(feature = "ballista")]
pub mod codec;
pub mod collect;
pub mod construct;
pub mod convert;
pub mod geometry;
pub mod join;
pub mod knn;
pub mod run;
pub mod scan_head;
pub mod sort;
pub mod sql;
pub mod udf;

use std::sync::Arc;

pub use datafusion;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use meridian_runtime::Engine;

pub use collect::CollectFunction;
pub use construct::{ConstructFunction, Construction};
pub use convert::{Conversion, ConvertFunction};
pub use join::{MeridianSpatialJoinExec, Predicate, SpatialJoinRule};
pub use knn::KnnFunction;
pub use sort::{KeySortExec, KeySortRule};
pub use udf::{Function, SpatialFunction};

/// Registers meridian's functions and spatial join with `ctx`, run by `engine`.
pub fn register(ctx: &SessionContext, engine: Arc<Engine>) {
    for f in Function::ALL {
        ctx.register_udf(SpatialFunction::udf(f, engine.clone()));
    }
    for c in Conversion::ALL {
        ctx.register_udf(ConvertFunction::udf(c));
    }
    for c in Construction::ALL {
        ctx.register_udf(ConstructFunction::udf(c));
    }
    ctx.register_udf(KnnFunction::udf());
    ctx.register_udaf(CollectFunction::udaf());
    ctx.register_udtf(run::RunFunction::NAME, Arc::new(run::RunFunction::new(engine.clone())));
    // A context's physical optimizer rules are fixed in its state: the rule joins them by
    // rebuilding the state around it.
    let state = ctx.state_ref();
    let mut state = state.write();
    let rule = Arc::new(SpatialJoinRule::new(engine));
    let mut planners = state.expr_planners().to_vec();
    planners.push(Arc::new(collect::ArrayAggPlanner));
    *state = SessionStateBuilder::new_from_existing(state.clone())
        .with_physical_optimizer_rule(rule)
        .with_expr_planners(planners)
        .build();
}

/// What meridian's nodes' `with_new_children` (still required by DataFusion's trait) asks of
/// `replace_children`: the plan's properties recomputed for the new children.
pub(crate) fn recompute() -> datafusion::physical_plan::execution_plan::ReplaceChildrenOptions {
    use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)
}
