//! Inputs bound to a program: columns checked against the program's signature once, so that
//! every chunk of every job can read them without checks.

use std::sync::Arc;

use meridian_bytecode::{InputDecl, InputKind, Program};

use crate::column::{ColumnError, Family, GeometryColumn};
use crate::index::SpatialIndex;

/// Why columns cannot be bound to a program's inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BindError {
    /// The number of columns is not the number of `.input`s.
    #[error("the program has {expected} inputs but {got} were given")]
    Count {
        /// Inputs the program declares.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// A row's geometry family is not allowed by the input's kind.
    #[error("input `{input}` is declared `{kind}` but row {row} is a {found}")]
    Kind {
        /// The input's name.
        input: String,
        /// The declared kind.
        kind: &'static str,
        /// The first offending row.
        row: usize,
        /// What that row holds.
        found: Family,
    },
    /// A non-indexed input is not as long as the row source.
    #[error("input `{input}` has {got} rows but the row source `{source_name}` has {expected}")]
    Length {
        /// The input's name.
        input: String,
        /// The row source's name.
        source_name: String,
        /// Rows of the row source.
        expected: usize,
        /// Rows of this input.
        got: usize,
    },
    /// A point given for an input's row is not finite, or beyond ±1e150.
    #[error("input `{input}` row {row}: coordinate ({x}, {y}) is not finite or beyond ±1e150")]
    NonFinite {
        /// The input's name.
        input: String,
        /// The row.
        row: usize,
        /// x as given.
        x: f64,
        /// y as given.
        y: f64,
    },
    /// An `indexed` input was given without an index, or with one built from another column.
    #[error("input `{input}` is `indexed` but {why}")]
    Index {
        /// The input's name.
        input: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// One bound input: a column and, for `indexed` inputs, its index.
#[derive(Clone, Debug)]
pub struct Input {
    /// The column.
    pub column: Arc<GeometryColumn>,
    /// Its index (required for `indexed` inputs, ignored otherwise).
    pub index: Option<Arc<SpatialIndex>>,
}

impl Input {
    /// A column without an index.
    pub fn rows(column: Arc<GeometryColumn>) -> Input {
        Input { column, index: None }
    }

    /// A column with the index built from it.
    pub fn indexed(column: Arc<GeometryColumn>) -> Input {
        let index = Arc::new(SpatialIndex::build(column.clone()));
        Input { column, index: Some(index) }
    }
}

/// Columns bound to a program's inputs, checked: every row's family fits its input's kind,
/// non-indexed inputs have the row source's length, and `indexed` inputs carry their index.
///
/// ```
/// use std::sync::Arc;
/// use meridian_bytecode::assemble;
/// use meridian_kernels::column::ColumnBuilder;
/// use meridian_kernels::interp::{BindError, BoundInputs, Input};
///
/// let program = assemble("m.masm", ".program m\n.input s polygons\n.output a f64\n\
///     load g0, s\n area f0, g0\n store a, f0\n halt\n")?;
/// let mut b = ColumnBuilder::new();
/// b.push_point(1.0, 2.0)?;
/// let points = Arc::new(b.finish());
/// let err = BoundInputs::bind(program.program(), vec![Input::rows(points)]).unwrap_err();
/// assert!(matches!(err, BindError::Kind { row: 0, .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct BoundInputs {
    pub(crate) inputs: Vec<Input>,
}

impl BoundInputs {
    /// Checks `inputs` against `program`'s signature (in `.input` order).
    pub fn bind(program: &Program, inputs: Vec<Input>) -> Result<BoundInputs, BindError> {
        BoundInputs::bind_checked(program, inputs, |_| false)
    }

    /// Like [`BoundInputs::bind`], taking the inputs `i` for which `checked(i)` holds as already
    /// checked by [`BoundInputs::check_input`] (a caller that binds the same columns to many
    /// row sources checks them once; a check walks a mixed column's rows). Lengths against the
    /// row source are checked for every input.
    pub fn bind_checked(
        program: &Program,
        inputs: Vec<Input>,
        checked: impl Fn(usize) -> bool,
    ) -> Result<BoundInputs, BindError> {
        let decls = program.inputs();
        if decls.len() != inputs.len() {
            return Err(BindError::Count { expected: decls.len(), got: inputs.len() });
        }
        let source_rows = inputs.first().map_or(0, |i| i.column.len());
        for (i, (decl, input)) in decls.iter().zip(&inputs).enumerate() {
            if !checked(i) {
                check(decl, input)?;
            }
            if !decl.indexed && input.column.len() != source_rows {
                return Err(BindError::Length {
                    input: decl.name.clone(),
                    source_name: decls[0].name.clone(),
                    expected: source_rows,
                    got: input.column.len(),
                });
            }
        }
        Ok(BoundInputs { inputs })
    }

    /// Checks `input` as `program`'s input `i` on its own: every row's family fits the input's
    /// kind, and an `indexed` input carries the index of this column. (Lengths against the
    /// row source are [`BoundInputs::bind_checked`]'s.)
    pub fn check_input(program: &Program, i: usize, input: &Input) -> Result<(), BindError> {
        let decls = program.inputs();
        let decl = decls.get(i).ok_or(BindError::Count { expected: decls.len(), got: i + 1 })?;
        check(decl, input)
    }

    /// Makes input `i` the points `pts`, checked as binding checks it (its kind admits
    /// points; lengths against the row source, which it may be), and writing over its
    /// column's memory when nothing else shares that column
    /// ([`GeometryColumn::refill_points`]): a service's request that brings only its points
    /// allocates nothing once the first request has bound them. `indexed` inputs are refused
    /// (their index is of other rows). On error nothing changes.
    pub fn refill_points(
        &mut self,
        program: &Program,
        i: usize,
        pts: &[(f64, f64)],
    ) -> Result<(), BindError> {
        let decls = program.inputs();
        if decls.len() != self.inputs.len() {
            return Err(BindError::Count { expected: decls.len(), got: self.inputs.len() });
        }
        let decl = decls.get(i).ok_or(BindError::Count { expected: decls.len(), got: i + 1 })?;
        if decl.indexed {
            return Err(BindError::Index {
                input: decl.name.clone(),
                why: "its rows cannot be replaced by points",
            });
        }
        if !matches!(decl.kind, InputKind::Points | InputKind::Geometry) && !pts.is_empty() {
            let found = Family::Point;
            return Err(BindError::Kind {
                input: decl.name.clone(),
                kind: decl.kind.keyword(),
                row: 0,
                found,
            });
        }
        // The row source's length after the change, against every other non-indexed input.
        let source_rows = if i == 0 { pts.len() } else { self.rows() };
        for (j, (d, input)) in decls.iter().zip(&self.inputs).enumerate() {
            let len = if j == i { pts.len() } else { input.column.len() };
            if !d.indexed && len != source_rows {
                return Err(BindError::Length {
                    input: d.name.clone(),
                    source_name: decls[0].name.clone(),
                    expected: source_rows,
                    got: len,
                });
            }
        }
        let input = &mut self.inputs[i];
        // A shared column is copied first (the copy's buffers are then new ones): whoever
        // shares it keeps its rows.
        Arc::make_mut(&mut input.column).refill_points(pts).map_err(|e| {
            let (x, y) = match e {
                ColumnError::NonFinite { x, y } => (x, y),
                _ => (f64::NAN, f64::NAN),
            };
            let row = pts.iter().position(|p| p.0.to_bits() == x.to_bits() && p.1.to_bits() == y.to_bits());
            BindError::NonFinite { input: decl.name.clone(), row: row.unwrap_or(0), x, y }
        })
    }

    /// Rows of the row source (the first input).
    pub fn rows(&self) -> usize {
        self.inputs.first().map_or(0, |i| i.column.len())
    }

    /// The bound inputs, in `.input` order.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }
}

/// `input` against `decl`: its families, and its index when the input is `indexed`.
fn check(decl: &InputDecl, input: &Input) -> Result<(), BindError> {
    let view = input.column.view();
    let fits = |f: Family| match decl.kind {
        InputKind::Points => f.dimension() == 0,
        InputKind::Lines => f.dimension() == 1,
        InputKind::Polygons => f.dimension() == 2,
        InputKind::Geometry => true,
    };
    if !view.family().is_some_and(fits) {
        let bad = (0..view.len())
            .find_map(|row| view.get(row).map(|g| (row, g.family())).filter(|&(_, f)| !fits(f)));
        if let Some((row, found)) = bad {
            return Err(BindError::Kind { input: decl.name.clone(), kind: decl.kind.keyword(), row, found });
        }
    }
    if decl.indexed {
        match &input.index {
            None => return Err(BindError::Index { input: decl.name.clone(), why: "no index was given" }),
            Some(ix) if ix.rows() != view.len() || ix.part_rows().len() != view.part_count() => {
                return Err(BindError::Index {
                    input: decl.name.clone(),
                    why: "its index was built from another column",
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

impl From<Arc<GeometryColumn>> for Input {
    fn from(column: Arc<GeometryColumn>) -> Input {
        Input::rows(column)
    }
}

impl From<GeometryColumn> for Input {
    fn from(column: GeometryColumn) -> Input {
        Input::rows(Arc::new(column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::ColumnBuilder;
    use meridian_bytecode::assemble;

    fn col(pts: &[(f64, f64)]) -> Arc<GeometryColumn> {
        let mut b = ColumnBuilder::new();
        for &(x, y) in pts {
            b.push_point(x, y).unwrap_or_else(|e| panic!("{e}"));
        }
        Arc::new(b.finish())
    }

    #[test]
    fn refilled_points_are_checked_as_binding_checks_them_and_errors_change_nothing() {
        let src = ".program m\n.input p points\n.input q geometry\n.input z polygons indexed\n.output n count\n    count n\n    halt\n";
        let program = assemble("m.masm", src).unwrap_or_else(|e| panic!("{e}"));
        let program = program.program();
        let mut zb = ColumnBuilder::new();
        zb.push_polygon(&[&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]])
            .unwrap_or_else(|e| panic!("{e}"));
        let zones = Input::indexed(Arc::new(zb.finish()));
        let two = [(1.0, 2.0), (3.0, 4.0)];
        let inputs = vec![Input::rows(col(&two)), Input::rows(col(&two)), zones];
        let mut bound = BoundInputs::bind(program, inputs).unwrap_or_else(|e| panic!("{e}"));
        let before = bound.inputs()[0].column.clone();
        // The row source alone cannot change length while `q` keeps two rows.
        let err = bound.refill_points(program, 0, &[(5.0, 6.0)]).unwrap_err();
        assert!(matches!(err, BindError::Length { expected: 1, got: 2, .. }), "{err}");
        let err = bound.refill_points(program, 1, &[(5.0, 6.0), (f64::INFINITY, 0.0)]).unwrap_err();
        assert!(matches!(err, BindError::NonFinite { row: 1, .. }), "{err}");
        let err = bound.refill_points(program, 2, &two).unwrap_err();
        assert!(matches!(err, BindError::Index { .. }), "{err}");
        assert!(matches!(bound.refill_points(program, 3, &two), Err(BindError::Count { .. })));
        assert_eq!(bound.inputs()[0].column, before, "errors change nothing");
        assert_eq!(*bound.inputs()[1].column, *col(&two));
        // Same length: rewritten (the clone `before` still shares the old column: it is copied).
        bound.refill_points(program, 0, &[(7.0, 8.0), (9.0, 10.0)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*bound.inputs()[0].column, *col(&[(7.0, 8.0), (9.0, 10.0)]));
        assert_eq!(*before, *col(&two), "a column shared elsewhere keeps its rows");
        // A polygons input takes no points.
        let src = ".program m\n.input s polygons\n.output n count\n    count n\n    halt\n";
        let program = assemble("m.masm", src).unwrap_or_else(|e| panic!("{e}"));
        let mut bound = BoundInputs::bind(program.program(), vec![Input::rows(col(&[]))])
            .unwrap_or_else(|e| panic!("{e}"));
        let err = bound.refill_points(program.program(), 0, &[(1.0, 1.0)]).unwrap_err();
        assert!(matches!(err, BindError::Kind { row: 0, .. }), "{err}");
    }
}
