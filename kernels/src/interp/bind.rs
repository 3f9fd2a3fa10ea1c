//! Inputs bound to a program: columns checked against the program's signature once, so that
//! every chunk of every job can read them without checks.

use std::sync::Arc;

use meridian_bytecode::{InputDecl, InputKind, Program};

use crate::column::{Family, GeometryColumn};
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
        let index = Arc::new(SpatialIndex::build(column.view()));
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
