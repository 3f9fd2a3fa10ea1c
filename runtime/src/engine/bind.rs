//! Binding columns to a prepared program's inputs: all at once ([`Engine::bind`]), or a
//! service's long-lived inputs once and each job's own later ([`Partial`]), so that a request
//! checks only the columns it brings.

use meridian_kernels::interp::{BoundInputs, Input};

use super::{Engine, EngineError};
use crate::job::{Bound, Prepared};

/// Some of a prepared program's inputs, bound and checked once
/// ([`Engine::bind_partial`]); each job binds the rest ([`Partial::bind`]), checked alone.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Partial {
    pub(super) program: Prepared,
    /// The inputs bound so far, in `.input` order, each checked.
    pub(super) slots: Vec<Option<Input>>,
    pub(super) engine: u64,
}

impl Partial {
    /// Binds the inputs left by name — each checked alone, then every length against the row
    /// source — into a job's [`Bound`].
    pub fn bind<N, I>(&self, inputs: impl IntoIterator<Item = (N, I)>) -> Result<Bound, EngineError>
    where
        N: AsRef<str>,
        I: Into<Input>,
    {
        let mut slots = self.slots.clone();
        for (name, input) in inputs {
            let (i, input) = slot(&self.program, &slots, name.as_ref(), input.into())?;
            slots[i] = Some(input);
        }
        let checked = |i: usize| self.slots[i].is_some();
        bound(&self.program, slots, checked, self.engine)
    }

    /// The prepared program it binds.
    pub fn program(&self) -> &Prepared {
        &self.program
    }
}

impl Engine {
    /// Binds columns to `program`'s inputs by name. A value is a column (`Arc<GeometryColumn>`
    /// or `GeometryColumn`) or an [`Input`] with its index; `indexed` inputs given without
    /// one get an index built here. Checks kinds, lengths and names.
    pub fn bind<N, I>(
        &self,
        program: &Prepared,
        inputs: impl IntoIterator<Item = (N, I)>,
    ) -> Result<Bound, EngineError>
    where
        N: AsRef<str>,
        I: Into<Input>,
    {
        self.own(program)?;
        let mut slots = vec![None; program.inner.program.program().inputs().len()];
        for (name, input) in inputs {
            let (i, input) = slot(program, &slots, name.as_ref(), input.into())?;
            slots[i] = Some(input);
        }
        bound(program, slots, |_| false, self.id)
    }

    /// Binds some of `program`'s inputs once — a service's long-lived ones, such as an indexed
    /// polygon set — checked here, for many jobs whose own inputs come later
    /// ([`Partial::bind`] checks only those). Names, kinds and indexes as [`Engine::bind`].
    pub fn bind_partial<N, I>(
        &self,
        program: &Prepared,
        inputs: impl IntoIterator<Item = (N, I)>,
    ) -> Result<Partial, EngineError>
    where
        N: AsRef<str>,
        I: Into<Input>,
    {
        self.own(program)?;
        let decls = program.inner.program.program().inputs();
        let mut slots = vec![None; decls.len()];
        for (name, input) in inputs {
            let (i, input) = slot(program, &slots, name.as_ref(), input.into())?;
            BoundInputs::check_input(program.inner.program.program(), i, &input)?;
            slots[i] = Some(input);
        }
        Ok(Partial { program: program.clone(), slots, engine: self.id })
    }
}

impl Engine {
    /// `program`, when this engine prepared it.
    fn own(&self, program: &Prepared) -> Result<(), EngineError> {
        if program.inner.engine != self.id {
            return Err(EngineError::InputName("the program was prepared by another engine".into()));
        }
        Ok(())
    }
}

/// The slot of `program`'s input `name` for `input`, not bound yet in `slots`; an `indexed`
/// input given without its index gets one built here.
fn slot(
    program: &Prepared,
    slots: &[Option<Input>],
    name: &str,
    mut input: Input,
) -> Result<(usize, Input), EngineError> {
    let decls = program.inner.program.program().inputs();
    let i = decls
        .iter()
        .position(|d| d.name == name)
        .ok_or_else(|| EngineError::InputName(format!("the program has no input `{name}`")))?;
    if slots[i].is_some() {
        return Err(EngineError::InputName(format!("input `{name}` is bound twice")));
    }
    if decls[i].indexed && input.index.is_none() {
        input = Input::indexed(input.column);
    }
    Ok((i, input))
}

/// `slots`, every one bound, as a job's [`Bound`]: the inputs `checked` says were checked
/// alone are not checked again; every length is, against the row source.
fn bound(
    program: &Prepared,
    slots: Vec<Option<Input>>,
    checked: impl Fn(usize) -> bool,
    engine: u64,
) -> Result<Bound, EngineError> {
    let verified = &program.inner.program;
    let mut inputs = Vec::with_capacity(slots.len());
    for (slot, decl) in slots.into_iter().zip(verified.program().inputs()) {
        inputs
            .push(slot.ok_or_else(|| EngineError::InputName(format!("input `{}` is not bound", decl.name)))?);
    }
    let inner = BoundInputs::bind_checked(verified.program(), inputs, checked)?;
    Ok(Bound { inner: std::sync::Arc::new(inner), program: verified.hash(), engine })
}
