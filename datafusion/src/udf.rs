//! The scalar functions: `ST_Area`, `ST_Length`, `ST_Centroid`, `ST_Contains`, `ST_Within`,
//! `ST_Intersects`, `ST_DWithin`, `ST_Distance`, each a small bytecode program run by the
//! engine over each batch (the engine runs small batches inline on the calling thread and
//! large ones on its workers or GPU), so their semantics — nulls, empties, exact predicates —
//! are meridian's own, the same as `meridian run`'s.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array};
use arrow_schema::DataType;
use datafusion::arrow::array::BooleanBufferBuilder;
use datafusion::arrow::buffer::NullBuffer;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use meridian_kernels::algo::PointsAgainst;
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_kernels::io::geoarrow::{self, Encoding};
use meridian_runtime::{Engine, JobResult, Prepared};

use crate::convert::{Conversion, ConvertFunction};
use crate::geometry;
use crate::join::Predicate;

/// Which function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// `ST_Area(g)`: f64.
    Area,
    /// `ST_Length(g)`: f64.
    Length,
    /// `ST_Centroid(g)`: a point, as WKB.
    Centroid,
    /// `ST_Contains(a, b)`: bool.
    Contains,
    /// `ST_Within(a, b)`: bool.
    Within,
    /// `ST_Intersects(a, b)`: bool.
    Intersects,
    /// `ST_DWithin(a, b, d)`: bool.
    DWithin,
    /// `ST_Distance(a, b)`: f64.
    Distance,
}

impl Function {
    /// Every function.
    pub const ALL: [Function; 8] = [
        Function::Area,
        Function::Length,
        Function::Centroid,
        Function::Contains,
        Function::Within,
        Function::Intersects,
        Function::DWithin,
        Function::Distance,
    ];

    /// Its SQL name (lower case, as unquoted identifiers are).
    pub fn name(self) -> &'static str {
        match self {
            Function::Area => "st_area",
            Function::Length => "st_length",
            Function::Centroid => "st_centroid",
            Function::Contains => "st_contains",
            Function::Within => "st_within",
            Function::Intersects => "st_intersects",
            Function::DWithin => "st_dwithin",
            Function::Distance => "st_distance",
        }
    }

    /// Geometry arguments, and whether a distance follows them.
    fn arity(self) -> (usize, bool) {
        match self {
            Function::Area | Function::Length | Function::Centroid => (1, false),
            Function::Contains | Function::Within | Function::Intersects | Function::Distance => (2, false),
            Function::DWithin => (2, true),
        }
    }

    /// The bytecode op of a predicate or measure.
    fn op(self) -> &'static str {
        match self {
            Function::Area => "area",
            Function::Length => "length",
            Function::Centroid => "centroid",
            Function::Contains => "contains",
            Function::Within => "within",
            Function::Intersects => "intersects",
            Function::DWithin => "dwithin",
            Function::Distance => "distance",
        }
    }

    /// The program computing it row by row over inputs `a` (and `b`); `distance` is
    /// `ST_DWithin`'s constant.
    fn program(self, distance: Option<f64>) -> String {
        let mut p = format!(".program {}\n.input a geometry\n", self.name());
        let (args, _) = self.arity();
        if args == 2 {
            p.push_str(".input b geometry\n");
        }
        let body = match self {
            Function::Area | Function::Length => {
                format!(".output v f64\n    load g0, a\n    {} f0, g0\n    store v, f0\n", self.op())
            }
            Function::Centroid => ".output x f64\n.output y f64\n    load g0, a\n    centroid f0, g0\n    \
                                  store x, f0\n    store y, f1\n"
                .to_owned(),
            Function::Distance => {
                ".output v f64\n    load g0, a\n    load g1, b\n    distance f0, g0, g1\n    store v, f0\n"
                    .to_owned()
            }
            Function::DWithin => format!(
                ".output v bool\n    load g0, a\n    load g1, b\n    const f0, {:?}\n    dwithin b0, g0, g1, f0\n    store v, b0\n",
                distance.unwrap_or(0.0)
            ),
            Function::Contains | Function::Within | Function::Intersects => format!(
                ".output v bool\n    load g0, a\n    load g1, b\n    {} b0, g0, g1\n    store v, b0\n",
                self.op()
            ),
        };
        p.push_str(&body);
        p.push_str("    halt\n");
        p
    }

    /// The predicate's program when one argument is a constant (a literal, a scalar subquery's
    /// geometry): the spatial join's program ([`Predicate::program`]) of the rows (`probe`)
    /// against the constant indexed as a one-row build side, so a row whose box misses the
    /// constant's is answered by the index, the constant is decoded once, and the interpreter
    /// runs each row as one join step. A row is true where it pairs with the constant.
    /// `constant_first`: the constant is the predicate's first argument.
    fn program_against_constant(self, distance: Option<f64>, constant_first: bool) -> Option<String> {
        let predicate = match self {
            Function::Contains => Predicate::Contains,
            Function::Within => Predicate::Within,
            Function::Intersects => Predicate::Intersects,
            Function::DWithin => Predicate::DWithin(distance.unwrap_or(0.0)),
            Function::Area | Function::Length | Function::Centroid | Function::Distance => return None,
        };
        predicate.program(constant_first)
    }
}

/// Which argument of a two-geometry predicate is a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Constant {
    /// Neither (or both: evaluated row by row).
    None,
    /// The first.
    First,
    /// The second.
    Second,
}

/// One function, run by `engine`.
pub struct SpatialFunction {
    function: Function,
    signature: Signature,
    engine: Arc<Engine>,
    /// Prepared programs, by function, `ST_DWithin`'s distance (bits; 0 for the others) and
    /// which argument is a constant (see [`Function::program_against_constant`]).
    programs: Mutex<HashMap<(Function, u64, Constant), Prepared>>,
}

impl std::fmt::Debug for SpatialFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpatialFunction").field("function", &self.function).finish()
    }
}

impl PartialEq for SpatialFunction {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function && Arc::ptr_eq(&self.engine, &other.engine)
    }
}

impl Eq for SpatialFunction {}

impl Hash for SpatialFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.function.hash(state);
        Arc::as_ptr(&self.engine).hash(state);
    }
}

impl SpatialFunction {
    /// `function` as a DataFusion scalar function run by `engine`.
    pub fn udf(function: Function, engine: Arc<Engine>) -> ScalarUDF {
        ScalarUDF::new_from_impl(SpatialFunction {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
            engine,
            programs: Mutex::new(HashMap::new()),
        })
    }

    fn prepared(&self, function: Function, distance: Option<f64>, constant: Constant) -> Result<Prepared> {
        let key = (function, distance.map_or(0, f64::to_bits), constant);
        let mut programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = programs.get(&key) {
            return Ok(p.clone());
        }
        let text = match constant {
            Constant::None => function.program(distance),
            Constant::First | Constant::Second => {
                function.program_against_constant(distance, constant == Constant::First).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "{} has no program against a constant",
                        function.name()
                    ))
                })?
            }
        };
        let program = meridian_bytecode::assemble(function.name(), &text)
            .map_err(|d| DataFusionError::Internal(format!("{}: {d}", function.name())))?;
        let prepared = self.engine.prepare_verified(&program);
        programs.insert(key, prepared.clone());
        Ok(prepared)
    }

    /// Runs `function`'s program over the geometry columns `a` (and `b`), or over `rows` and
    /// `constant` where one argument is.
    fn run(
        &self,
        function: Function,
        distance: Option<f64>,
        constant: Constant,
        columns: Vec<Input>,
    ) -> Result<JobResult> {
        let prepared = self.prepared(function, distance, constant)?;
        let names = match constant {
            Constant::None => ["a", "b"],
            _ => ["probe", "build"],
        };
        let bound = self
            .engine
            .bind(&prepared, names.into_iter().zip(columns))
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.function.name())))?;
        self.engine
            .run(prepared.job(&bound))
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.function.name())))
    }
}

fn f64_output(r: &JobResult, name: &str) -> Result<Vec<Option<f64>>> {
    match r.get(name) {
        Some(OutputColumn::F64(c)) => Ok(c.iter().collect()),
        _ => exec_err!("the program has no f64 output {name}"),
    }
}

impl ScalarUDFImpl for SpatialFunction {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (geoms, distance) = self.function.arity();
        let want = geoms + usize::from(distance);
        if arg_types.len() != want {
            return plan_err!(
                "{} takes {want} arguments ({geoms} geometries{}), not {}",
                self.function.name(),
                if distance { " and a distance" } else { "" },
                arg_types.len()
            );
        }
        let mut out = Vec::with_capacity(want);
        for (i, t) in arg_types.iter().enumerate() {
            if i < geoms {
                geometry::encoding_of_type(&format!("{} argument {}", self.function.name(), i + 1), t)?;
                out.push(t.clone());
            } else if t.is_numeric() || t.is_null() {
                out.push(DataType::Float64);
            } else {
                return plan_err!("{}: the distance is {t}, not a number", self.function.name());
            }
        }
        Ok(out)
    }

    /// `ST_Length(ST_MakeLine(a, b))` becomes `st_makeline_length(a, b)`: the same value
    /// without a line written as WKB and decoded again.
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let makeline = |f: &ScalarFunction| {
            let c = f.func.inner().downcast_ref::<ConvertFunction>();
            f.args.len() == 2 && c.is_some_and(|c| c.conversion() == Conversion::MakeLine)
        };
        match args.as_slice() {
            [Expr::ScalarFunction(line)] if self.function == Function::Length && makeline(line) => {
                let fused = Arc::new(ConvertFunction::udf(Conversion::MakeLineLength));
                let call = ScalarFunction::new_udf(fused, line.args.clone());
                Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(call)))
            }
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            Function::Area | Function::Length | Function::Distance => DataType::Float64,
            Function::Centroid => DataType::Binary,
            Function::Contains | Function::Within | Function::Intersects | Function::DWithin => {
                DataType::Boolean
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let (geoms, _) = self.function.arity();
        let distance = match (self.function, args.args.get(2)) {
            (Function::DWithin, Some(ColumnarValue::Scalar(ScalarValue::Float64(Some(d)))))
                if d.is_finite() =>
            {
                Some(*d)
            }
            _ => None,
        };
        // A predicate of a column and a constant: the constant decoded and indexed once.
        let scalar = |i: usize| matches!(args.args.get(i), Some(ColumnarValue::Scalar(_)));
        let predicate = matches!(self.function, Function::Contains | Function::Within | Function::Intersects)
            || distance.is_some();
        let constant = match (scalar(0), scalar(1)) {
            (true, false) if predicate => Constant::First,
            (false, true) if predicate => Constant::Second,
            _ => Constant::None,
        };
        if constant != Constant::None {
            if let Some(answers) = points_against(self.function, &args, constant, distance)? {
                return Ok(ColumnarValue::Array(answers));
            }
        }
        let mut columns = Vec::with_capacity(geoms);
        // Against a constant: the rows' nulls, null in the result.
        let mut row_nulls = None;
        // The column first, then the constant (its program's inputs, in order).
        let (in_order, swapped) = ([0, 1], [1, 0]);
        let order = match constant {
            Constant::First => &swapped[..],
            Constant::Second => &in_order[..],
            Constant::None => &in_order[..geoms],
        };
        for &i in order {
            let (Some(value), Some(field)) = (args.args.get(i), args.arg_fields.get(i)) else {
                return exec_err!("{}: missing argument {}", self.function.name(), i + 1);
            };
            let what = format!("{} argument {}", self.function.name(), i + 1);
            let encoding = geometry::encoding(field)?;
            if constant != Constant::None && scalar(i) {
                let array = value.to_array_of_size(1)?;
                if array.is_null(0) {
                    // Null in, null out, for every row.
                    return Ok(ColumnarValue::Array(Arc::new(BooleanArray::new_null(n))));
                }
                columns.push(Input::indexed(geometry::to_column(&what, array.as_ref(), encoding)?));
            } else {
                let array = value.to_array_of_size(n)?;
                row_nulls = array.logical_nulls();
                columns.push(Input::rows(geometry::to_column(&what, array.as_ref(), encoding)?));
            }
        }
        if constant != Constant::None {
            let r = self.run(self.function, distance, constant, columns)?;
            return Ok(ColumnarValue::Array(paired_rows(&r, n, row_nulls)?));
        }
        let out: ArrayRef = match self.function {
            Function::DWithin => {
                let d = args
                    .args
                    .get(2)
                    .ok_or_else(|| DataFusionError::Execution("st_dwithin: no distance".into()))?;
                match d {
                    // A constant distance: the `dwithin` op, with its exact predicate.
                    ColumnarValue::Scalar(ScalarValue::Float64(Some(d))) if d.is_finite() => {
                        let r = self.run(Function::DWithin, Some(*d), Constant::None, columns)?;
                        bool_output(&r)?
                    }
                    // A distance a row: within is distance ≤ d (null where either is).
                    other => {
                        let d = other.to_array_of_size(n)?;
                        let d = d.as_any().downcast_ref::<Float64Array>().ok_or_else(|| {
                            DataFusionError::Execution("st_dwithin: the distance is not f64".into())
                        })?;
                        let r = self.run(Function::Distance, None, Constant::None, columns)?;
                        let within: BooleanArray = f64_output(&r, "v")?
                            .into_iter()
                            .zip(d.iter())
                            .map(|(dist, d)| match (dist, d) {
                                (Some(dist), Some(d)) => Some(dist <= d),
                                _ => None,
                            })
                            .collect();
                        Arc::new(within)
                    }
                }
            }
            Function::Area | Function::Length | Function::Distance => {
                let r = self.run(self.function, None, Constant::None, columns)?;
                Arc::new(Float64Array::from(f64_output(&r, "v")?))
            }
            Function::Centroid => {
                let r = self.run(self.function, None, Constant::None, columns)?;
                geometry::points_wkb(&f64_output(&r, "x")?, &f64_output(&r, "y")?)?
            }
            Function::Contains | Function::Within | Function::Intersects => {
                let r = self.run(self.function, None, Constant::None, columns)?;
                bool_output(&r)?
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// A predicate of a column of WKB points and a constant WKB geometry, the points read in
/// place: [`PointsAgainst`]'s test a row — the engine's own tests of a point and the constant,
/// with the arguments in the query's order — for `ST_DWithin` at a constant distance,
/// `ST_Intersects`, and `ST_Contains`/`ST_Within` of the constant around the points
/// (SpatialBench's Q1 filters 6M trips against a point, Q2 and Q3 against a polygon: a job a
/// batch, each row probing a one-row index, cost more than the decoding). `None` where the
/// rows are not all such points (a row that is another geometry, or WKB that does not
/// decode), or for a point containing the constant: the engine's program then runs, with its
/// errors.
fn points_against(
    function: Function,
    args: &ScalarFunctionArgs,
    constant: Constant,
    distance: Option<f64>,
) -> Result<Option<ArrayRef>> {
    let geom_first = constant == Constant::First;
    let test: &dyn Fn(&PointsAgainst<'_>, (f64, f64)) -> bool = match (function, distance) {
        (Function::DWithin, Some(d)) => &move |a, p| a.dwithin(p, d, geom_first),
        (Function::Intersects, _) => &|a, p| a.intersects(p),
        (Function::Contains, _) if geom_first => &|a, p| a.contains(p),
        (Function::Within, _) if !geom_first => &|a, p| a.contains(p),
        _ => return Ok(None),
    };
    let (c, r) = if geom_first { (0, 1) } else { (1, 0) };
    let wkb =
        |i: usize| args.arg_fields.get(i).is_some_and(|f| geometry::encoding(f).ok() == Some(Encoding::Wkb));
    let (Some(ColumnarValue::Scalar(value)), Some(rows)) = (args.args.get(c), args.args.get(r)) else {
        return Ok(None);
    };
    if !wkb(c) || !wkb(r) || value.is_null() {
        return Ok(None);
    }
    let rows = rows.to_array_of_size(args.number_rows)?;
    let Some(points) = geoarrow::wkb_points(rows.as_ref()) else { return Ok(None) };
    let what = format!("{} argument {}", function.name(), c + 1);
    let column = geometry::to_column(&what, value.to_array_of_size(1)?.as_ref(), Encoding::Wkb)?;
    let Some(geom) = column.get(0) else { return Ok(None) };
    let against = PointsAgainst::new(geom);
    let answers: BooleanArray = points.into_iter().map(|p| p.map(|p| test(&against, p))).collect();
    Ok(Some(Arc::new(answers)))
}

/// True for the `n` rows that paired with the constant, false for the others, null where
/// `nulls` says.
fn paired_rows(r: &JobResult, n: usize, nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let Some(pairs) = r.hits("pairs") else { return exec_err!("the program has no hits output pairs") };
    let mut paired = BooleanBufferBuilder::new(n);
    paired.append_n(n, false);
    for &(row, _) in pairs {
        if row as usize >= n {
            return exec_err!("the program paired row {row} of {n}");
        }
        paired.set_bit(row as usize, true);
    }
    Ok(Arc::new(BooleanArray::new(paired.finish(), nulls)))
}

fn bool_output(r: &JobResult) -> Result<ArrayRef> {
    match r.get("v") {
        Some(OutputColumn::Bool(c)) => Ok(Arc::new(c.iter().collect::<BooleanArray>())),
        _ => exec_err!("the program has no bool output v"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn every_functions_program_assembles_and_verifies() {
        for f in Function::ALL {
            let text = f.program(Some(0.25));
            meridian_bytecode::assemble(f.name(), &text)
                .unwrap_or_else(|d| panic!("{}: {d}\n{text}", f.name()));
        }
        assert!(Function::DWithin.program(Some(1e-7)).contains("const f0, 1e-7"));
        for f in [Function::Contains, Function::Within, Function::Intersects, Function::DWithin] {
            for first in [true, false] {
                let text = f.program_against_constant(Some(0.5), first).unwrap();
                meridian_bytecode::assemble(f.name(), &text)
                    .unwrap_or_else(|d| panic!("{} against a constant: {d}\n{text}", f.name()));
            }
        }
        assert!(Function::Contains
            .program_against_constant(None, true)
            .unwrap()
            .contains("contains b0, g1, g0"));
    }
}
