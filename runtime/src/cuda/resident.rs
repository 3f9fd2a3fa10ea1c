//! What the device keeps between jobs: programs, columns and indexes uploaded once and
//! referenced by address from job records, and the input table of each bound input set.
//!
//! Entries are keyed by the identity of the host object (`Arc` pointer, checked against a
//! `Weak` so a reused address is not mistaken for the old object) and dropped once the host
//! object is gone; a job holds what it uses, so nothing is freed under a running job.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use meridian_bytecode::{ProgramHash, VerifiedProgram};
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::cuda::{
    check_index, BuiltCaps, DeviceColumn, DeviceIndex, DeviceInput, DeviceProgram, ScratchTable,
};
use meridian_kernels::index::SpatialIndex;
use meridian_kernels::interp::BoundInputs;

use super::device::{DeviceAlloc, DeviceError, Shared};

/// Arrays start on 256-byte boundaries (whole memory transactions).
const ALIGN: usize = 256;

/// The most device memory one binding's scratch for constructed geometry may take (every
/// resident-kernel thread's slots, each the size of the inputs' largest row); a job that would
/// need more is not placed on the device (under `auto` it runs on the CPU, saying why).
pub(crate) const SCRATCH_BUDGET: u64 = 4 << 30;

/// Where `place` puts arrays: measuring first, then writing into one allocation.
struct Placer<'a> {
    alloc: Option<&'a DeviceAlloc>,
    offset: usize,
}

impl Placer<'_> {
    fn place(&mut self, bytes: &[u8]) -> Result<u64, DeviceError> {
        let at = self.offset.div_ceil(ALIGN) * ALIGN;
        self.offset = at + bytes.len();
        match self.alloc {
            None => Ok(at as u64),
            Some(a) => {
                a.write(at, bytes)?;
                Ok(a.ptr() + at as u64)
            }
        }
    }
}

/// Runs `build` twice: once to measure what it places, then into one device allocation of
/// that size, writing each array to its place (no host staging copy).
fn upload_packed<T>(
    dev: &Arc<Shared>,
    build: impl Fn(&mut dyn FnMut(&[u8]) -> Result<u64, DeviceError>) -> Result<T, DeviceError>,
) -> Result<(T, DeviceAlloc), DeviceError> {
    let mut measure = Placer { alloc: None, offset: 0 };
    build(&mut |b| measure.place(b))?;
    let alloc = DeviceAlloc::new(dev, measure.offset.max(1))?;
    let mut write = Placer { alloc: Some(&alloc), offset: 0 };
    let value = build(&mut |b| write.place(b))?;
    Ok((value, alloc))
}

/// A column on the device.
#[derive(Debug)]
pub(crate) struct ResidentColumn {
    pub desc: DeviceColumn,
    _alloc: DeviceAlloc,
}

/// An index on the device.
#[derive(Debug)]
pub(crate) struct ResidentIndex {
    pub desc: DeviceIndex,
    _alloc: DeviceAlloc,
}

/// A program on the device: its code, constants and `MrProgram` record.
#[derive(Debug)]
pub(crate) struct ResidentProgram {
    /// Device address of the `MrProgram` record.
    pub record: u64,
    _alloc: DeviceAlloc,
}

/// A bound input set on the device: the `MrInput` table, and what it refers to.
#[derive(Debug)]
pub(crate) struct ResidentBinding {
    /// Device address of the `MrInput` table (followed by its `MrScratchTable`).
    pub table: u64,
    _alloc: DeviceAlloc,
    _scratch: Option<DeviceAlloc>,
    _columns: Vec<Arc<ResidentColumn>>,
    _indexes: Vec<Arc<ResidentIndex>>,
}

/// The cache of resident objects.
#[derive(Debug, Default)]
pub(crate) struct Residency {
    columns: HashMap<usize, (Weak<GeometryColumn>, Arc<ResidentColumn>)>,
    indexes: HashMap<usize, (Weak<SpatialIndex>, Arc<ResidentIndex>)>,
    bindings: HashMap<usize, (Weak<BoundInputs>, Arc<ResidentBinding>)>,
    programs: HashMap<ProgramHash, Arc<ResidentProgram>>,
    /// Bytes uploaded so far (for reports).
    pub uploaded: u64,
}

/// The cached value for `obj`, if the cache holds this very object.
fn cached<K, V: Clone>(map: &HashMap<usize, (Weak<K>, V)>, obj: &Arc<K>) -> Option<V> {
    let (weak, v) = map.get(&(Arc::as_ptr(obj) as usize))?;
    weak.upgrade().filter(|a| Arc::ptr_eq(a, obj)).map(|_| v.clone())
}

impl Residency {
    /// Forgets entries whose host object is gone (their device memory goes with the last job
    /// holding them).
    fn sweep(&mut self) {
        self.columns.retain(|_, (w, _)| w.strong_count() > 0);
        self.indexes.retain(|_, (w, _)| w.strong_count() > 0);
        self.bindings.retain(|_, (w, _)| w.strong_count() > 0);
    }

    pub fn program(
        &mut self,
        dev: &Arc<Shared>,
        program: &VerifiedProgram,
    ) -> Result<Arc<ResidentProgram>, DeviceError> {
        if let Some(p) = self.programs.get(&program.hash()) {
            return Ok(p.clone());
        }
        let (record, alloc) = upload_packed(dev, |place| {
            let desc = DeviceProgram::place(program, &mut |b: &[u8]| place(b))?;
            place(bytemuck::bytes_of(&desc))
        })?;
        self.uploaded += alloc.len() as u64;
        let p = Arc::new(ResidentProgram { record, _alloc: alloc });
        self.programs.insert(program.hash(), p.clone());
        Ok(p)
    }

    fn column(
        &mut self,
        dev: &Arc<Shared>,
        col: &Arc<GeometryColumn>,
    ) -> Result<Arc<ResidentColumn>, DeviceError> {
        if let Some(c) = cached(&self.columns, col) {
            return Ok(c);
        }
        let (desc, alloc) = upload_packed(dev, |place| DeviceColumn::place(col, &mut |b: &[u8]| place(b)))?;
        self.uploaded += alloc.len() as u64;
        let c = Arc::new(ResidentColumn { desc, _alloc: alloc });
        self.columns.insert(Arc::as_ptr(col) as usize, (Arc::downgrade(col), c.clone()));
        Ok(c)
    }

    fn index(
        &mut self,
        dev: &Arc<Shared>,
        ix: &Arc<SpatialIndex>,
    ) -> Result<Arc<ResidentIndex>, DeviceError> {
        if let Some(i) = cached(&self.indexes, ix) {
            return Ok(i);
        }
        check_index(ix).map_err(|why| DeviceError(format!("the device cannot use this index: {why}")))?;
        let (desc, alloc) = upload_packed(dev, |place| DeviceIndex::place(ix, &mut |b: &[u8]| place(b)))?;
        self.uploaded += alloc.len() as u64;
        let i = Arc::new(ResidentIndex { desc, _alloc: alloc });
        self.indexes.insert(Arc::as_ptr(ix) as usize, (Arc::downgrade(ix), i.clone()));
        Ok(i)
    }

    /// Bytes a job over `inputs` would upload: its columns and indexes not resident yet.
    pub fn upload_bytes(&self, inputs: &Arc<BoundInputs>) -> u64 {
        if cached(&self.bindings, inputs).is_some() {
            return 0;
        }
        inputs
            .inputs()
            .iter()
            .map(|i| {
                let col = match cached(&self.columns, &i.column) {
                    Some(_) => 0,
                    None => DeviceColumn::bytes(&i.column),
                };
                let ix = match &i.index {
                    Some(ix) if cached(&self.indexes, ix).is_none() => DeviceIndex::bytes(ix),
                    _ => 0,
                };
                (col + ix) as u64
            })
            .sum()
    }

    /// The device table of `inputs` (bound to `program`), uploading what is not resident;
    /// when the program constructs geometry, with scratch for `threads` resident-kernel
    /// threads.
    pub fn binding(
        &mut self,
        dev: &Arc<Shared>,
        program: &VerifiedProgram,
        inputs: &Arc<BoundInputs>,
        threads: u64,
    ) -> Result<Arc<ResidentBinding>, DeviceError> {
        if let Some(b) = cached(&self.bindings, inputs) {
            return Ok(b);
        }
        self.sweep();
        let decls = program.program().inputs();
        let mut table = Vec::with_capacity(decls.len());
        let mut columns = Vec::new();
        let mut indexes = Vec::new();
        for (decl, input) in decls.iter().zip(inputs.inputs()) {
            let col = self.column(dev, &input.column)?;
            let mut d = DeviceInput { col: col.desc, ..DeviceInput::default() };
            columns.push(col);
            if decl.indexed {
                let ix = input.index.as_ref().ok_or_else(|| {
                    DeviceError(format!("input `{}` is indexed but was bound without an index", decl.name))
                })?;
                let ix = self.index(dev, ix)?;
                d.idx = ix.desc;
                d.indexed = 1;
                indexes.push(ix);
            }
            table.push(d);
        }
        let (scratch_table, scratch) = scratch(dev, program, inputs, threads)?;
        let table_bytes = std::mem::size_of_val(table.as_slice());
        let alloc = DeviceAlloc::new(dev, table_bytes + std::mem::size_of::<ScratchTable>())?;
        alloc.write(0, bytemuck::cast_slice(&table))?;
        alloc.write(table_bytes, bytemuck::bytes_of(&scratch_table))?;
        let b = Arc::new(ResidentBinding {
            table: alloc.ptr(),
            _alloc: alloc,
            _scratch: scratch,
            _columns: columns,
            _indexes: indexes,
        });
        self.bindings.insert(Arc::as_ptr(inputs) as usize, (Arc::downgrade(inputs), b.clone()));
        Ok(b)
    }
}

/// The scratch for the geometry `program` constructs over `inputs`, for `threads` threads: its
/// table, and its allocation (none when the program constructs nothing).
fn scratch(
    dev: &Arc<Shared>,
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    threads: u64,
) -> Result<(ScratchTable, Option<DeviceAlloc>), DeviceError> {
    let Some((slots, caps, bytes)) = scratch_size(program, inputs, threads)? else {
        return Ok((ScratchTable::default(), None));
    };
    let alloc = DeviceAlloc::new(dev, usize::try_from(bytes).unwrap_or(usize::MAX).max(1))?;
    let (table, _) = ScratchTable::new(alloc.ptr(), threads, slots, caps);
    Ok((table, Some(alloc)))
}

/// The slots a thread, their capacities and the bytes of the scratch `program` needs over
/// `inputs` for `threads` threads (`None`: it constructs nothing); an error past
/// [`SCRATCH_BUDGET`].
fn scratch_size(
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    threads: u64,
) -> Result<Option<(u32, BuiltCaps, u64)>, DeviceError> {
    let slots = ScratchTable::slots(program);
    if slots == 0 {
        return Ok(None);
    }
    let caps = inputs.inputs().iter().fold(BuiltCaps::default(), |c, i| c.max(BuiltCaps::of(&i.column)));
    let (_, bytes) = ScratchTable::new(0, threads, slots, caps);
    if bytes > SCRATCH_BUDGET {
        return Err(DeviceError(format!(
            "constructed geometry needs {bytes} bytes of device scratch ({threads} threads × {slots} slots for rows of \
             up to {} coordinates), more than the {} GiB budget",
            caps.coords,
            SCRATCH_BUDGET >> 30
        )));
    }
    Ok(Some((slots, caps, bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use meridian_kernels::interp::Input;

    fn bound(program: &VerifiedProgram, wkt: &str) -> BoundInputs {
        let col = meridian_kernels::io::read_wkt("t", wkt.as_bytes()).unwrap();
        BoundInputs::bind(program.program(), vec![Input::rows(Arc::new(col))]).unwrap()
    }

    #[test]
    fn scratch_is_sized_by_the_largest_row_and_held_to_its_budget() {
        let moved =
            meridian_bytecode::assemble("m.masm", include_str!("../../../examples/moved.masm")).unwrap();
        let inputs =
            bound(&moved, "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))\nPOINT (1 2)\n");
        // g1 (affine), g2 (simplify) and the geometry output, and one to build into.
        let (slots, caps, bytes) = scratch_size(&moved, &inputs, 1000).unwrap().unwrap();
        assert_eq!((slots, caps.parts, caps.rings, caps.coords), (4, 1, 2, 9));
        assert_eq!(bytes, 1000 * ScratchTable::new(0, 1, slots, caps).1);
        // Threads past what the budget covers: an error that says so, before any allocation.
        let why = scratch_size(&moved, &inputs, 1 << 40).unwrap_err().to_string();
        assert!(
            why.contains("more than the 4 GiB budget") && why.contains("rows of up to 9 coordinates"),
            "{why}"
        );
        // A program that constructs nothing has none, whatever the threads.
        let pip = meridian_bytecode::assemble(
            "p.masm",
            ".program p\n.input s geometry\n.output a f64\n    load g0, s\n    area f0, g0\n    store a, f0\n    halt\n",
        )
        .unwrap();
        assert!(scratch_size(&pip, &bound(&pip, "POINT (1 2)\n"), 1 << 40).unwrap().is_none());
    }
}
