//! The records the device reads (`kernels/cuda/abi.cuh`), and how a column, an index and a
//! program become them.
//!
//! Each record holds device addresses of the host's own flat arrays, uploaded unchanged. The
//! upload itself is the caller's: every `place` function takes a closure that puts bytes
//! where the device can read them and returns their address (a device allocation on a GPU;
//! the bytes themselves in tests that run the device code on the host).
//!
//! This module is the one source of the device ABI: these records and those of [`job`] (the
//! job, slot and control records the runtime's executor uses), the error codes, statuses,
//! limits and offsets. `kernels/cuda/abi_gen.cuh` is generated from it by [`abi_header`]
//! (a test fails while the committed file differs), and the hand-written C++ records are
//! checked against the generated sizes and offsets when they compile (`MR_CHECK_ABI`).

use bytemuck::{Pod, Zeroable};
use meridian_bytecode::{Instr, OutputKind, VerifiedProgram};

pub use super::support::{MAX_GPU_GEOMETRY_OUTPUTS, MAX_GPU_REDUCTIONS};
use crate::column::{GeometryColumn, Layout};
use crate::index::SpatialIndex;
use crate::interp::fuse::{self, Pred};

mod header;
pub mod job;

pub use header::{abi_header, RecordLayout, RECORDS};
pub use job::*;
/// Deepest R-tree stack the device keeps (`MR_TREE_STACK`).
pub const TREE_STACK: usize = 128;

/// A geometry column as the device reads it (`MrColumn`): addresses of the RawColumn arrays.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DeviceColumn {
    /// Family id per row.
    pub kinds: u64,
    /// Row → part offsets.
    pub geom_offsets: u64,
    /// Part → ring offsets.
    pub part_offsets: u64,
    /// Ring → coordinate offsets.
    pub ring_offsets: u64,
    /// x coordinates.
    pub x: u64,
    /// y coordinates.
    pub y: u64,
    /// Validity bitmap.
    pub validity: u64,
    /// Rows.
    pub rows: u64,
    /// Parts.
    pub parts: u64,
}

/// A spatial index as the device reads it (`MrIndex`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DeviceIndex {
    /// R-tree node boxes.
    pub tree_boxes: u64,
    /// R-tree starts (item id for leaves, first child otherwise).
    pub tree_start: u64,
    /// R-tree ends.
    pub tree_end: u64,
    /// R-tree nodes.
    pub tree_nodes: u32,
    /// R-tree leaves.
    pub tree_leaves: u32,
    /// Slab parts `[min_y, scale, first, count]`.
    pub slab_parts: u64,
    /// Slab edge offsets.
    pub slab_offsets: u64,
    /// Slab largest x.
    pub slab_max_x: u64,
    /// Slab edges `[ax, ay, bx, by]`.
    pub slab_edges: u64,
    /// Parts covered by the slabs.
    pub slab_part_count: u64,
    /// Grid extent.
    pub grid_min_x: f64,
    /// Grid extent.
    pub grid_min_y: f64,
    /// Grid extent.
    pub grid_max_x: f64,
    /// Grid extent.
    pub grid_max_y: f64,
    /// Cells per unit of x.
    pub grid_sx: f64,
    /// Cells per unit of y.
    pub grid_sy: f64,
    /// Cells along x.
    pub grid_nx: u64,
    /// Cells along y.
    pub grid_ny: u64,
    /// Per cell: first entry.
    pub grid_offsets: u64,
    /// `part << 2 | class`.
    pub grid_entries: u64,
    /// Every part's box.
    pub grid_boxes: u64,
    /// The row of every part.
    pub part_rows: u64,
    /// Parts.
    pub part_count: u64,
    /// 1 when the grid fields are set.
    pub has_grid: u32,
    /// 1 when every non-null row is a polygon or multipolygon.
    pub areal: u32,
}

/// One bound input (`MrInput`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DeviceInput {
    /// The column.
    pub col: DeviceColumn,
    /// Its index (set when `indexed` is 1).
    pub idx: DeviceIndex,
    /// 1 for an `indexed` input.
    pub indexed: u32,
    /// Zero.
    pub pad: u32,
}

/// The whole-program point join, when the program is one (`MrJoin`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DeviceJoin {
    /// 1 when the program is a point join.
    pub present: u32,
    /// The input `load` reads.
    pub load: u32,
    /// The input probed.
    pub probe: u32,
    /// The hits output.
    pub output: u32,
    /// The register loaded and probed with.
    pub geom: u8,
    /// The register `cnext` writes.
    pub cand: u8,
    /// The predicate (`MR_PRED_*`).
    pub pred: u8,
    /// 1 when the predicate's operands are the candidate and the probe point.
    pub operands_fit: u8,
    /// 1 when the candidate is the predicate's first operand.
    pub cand_first: u8,
    /// 1 when a passing candidate is counted (`count`), 0 when it is emitted as a hit.
    pub count: u8,
    /// Zero.
    pub pad: [u8; 2],
}

/// A program as the device runs it (`MrProgram`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct DeviceProgram {
    /// Instruction words.
    pub code: u64,
    /// Constant pool.
    pub consts: u64,
    /// Instructions.
    pub ncode: u32,
    /// Constants.
    pub nconsts: u32,
    /// Inputs.
    pub ninputs: u32,
    /// Outputs.
    pub noutputs: u32,
    /// The point join, if the program is one.
    pub join: DeviceJoin,
    /// `OutputKind` per output.
    pub out_kinds: [u8; MAX_OUTPUTS],
    /// Per output: its reduction slot (count, sum) or pending-geometry slot (geometry), `0xff`
    /// for none.
    pub red_of: [u8; MAX_OUTPUTS],
    /// Per reduction slot: its output.
    pub red_outputs: [u8; MAX_GPU_REDUCTIONS],
    /// Reduction slots used.
    pub nred: u32,
    /// Geometry outputs.
    pub ngeom: u32,
}

/// The capacities of a constructed geometry's slot (`MrBuiltCaps`): the most parts, rings and
/// coordinates one row has. `affine` keeps a geometry's sizes and `simplify` only drops, so the
/// largest row of a program's inputs bounds every geometry the program constructs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BuiltCaps {
    /// Parts.
    pub parts: u32,
    /// Rings.
    pub rings: u32,
    /// Coordinates.
    pub coords: u32,
    /// Zero.
    pub pad: u32,
}

/// `(n + 7) & !7`, as `mr_round8`.
const fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

/// The head of a constructed geometry's slot (`MrBuilt`): a one-row column's record, its
/// validity word, two row offsets and a kind; its parts, rings and coordinates follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BuiltHeader {
    /// The one-row column, pointing into the slot.
    pub col: DeviceColumn,
    /// Its validity word.
    pub validity: u64,
    /// Its row offsets.
    pub geom_offsets: [u32; 2],
    /// Its family.
    pub kind: u8,
    /// Zero.
    pub pad: [u8; 7],
}

/// `sizeof(MrBuilt)`.
const BUILT_HEADER: u64 = std::mem::size_of::<BuiltHeader>() as u64;

impl BuiltCaps {
    /// The largest row of `col`.
    pub fn of(col: &GeometryColumn) -> BuiltCaps {
        if col.layout() == Layout::Points {
            return BuiltCaps { parts: 1, rings: 1, coords: 1, pad: 0 };
        }
        let (g, p, r) = (&col.geom_offsets, &col.part_offsets, &col.ring_offsets);
        let mut caps = BuiltCaps::default();
        for w in g.windows(2) {
            let (p0, p1) = (w[0] as usize, w[1] as usize);
            let (Some(&r0), Some(&r1)) = (p.get(p0), p.get(p1)) else { continue };
            let (Some(&k0), Some(&k1)) = (r.get(r0 as usize), r.get(r1 as usize)) else { continue };
            caps = caps.max(BuiltCaps {
                parts: w[1].saturating_sub(w[0]),
                rings: r1.saturating_sub(r0),
                coords: k1.saturating_sub(k0),
                pad: 0,
            });
        }
        caps
    }

    /// The larger of each capacity.
    pub fn max(self, o: BuiltCaps) -> BuiltCaps {
        BuiltCaps {
            parts: self.parts.max(o.parts),
            rings: self.rings.max(o.rings),
            coords: self.coords.max(o.coords),
            pad: 0,
        }
    }

    /// Bytes of one slot (`mr_built_bytes`).
    pub fn slot_bytes(&self) -> u64 {
        round8(BUILT_HEADER)
            + round8(4 * (u64::from(self.parts) + 1))
            + round8(4 * (u64::from(self.rings) + 1))
            + 16 * u64::from(self.coords)
    }

    /// Bytes of simplify's work area (`mr_simplify_work_bytes`): a flag and a stack entry per
    /// coordinate.
    pub fn work_bytes(&self) -> u64 {
        round8(u64::from(self.coords)) + 8 * u64::from(self.coords)
    }
}

/// The record after a job's input table (`MrScratchTable`): every resident-kernel thread's
/// scratch for constructed geometry, `thread_bytes` apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ScratchTable {
    /// The scratch; 0 when the program constructs nothing.
    pub base: u64,
    /// Threads with scratch (global thread ids below this).
    pub threads: u64,
    /// Bytes a thread.
    pub thread_bytes: u64,
    /// Bytes of simplify's work area at the start of each thread's.
    pub work_bytes: u64,
    /// Bytes a slot.
    pub slot_bytes: u64,
    /// Every slot's capacities.
    pub caps: BuiltCaps,
    /// Slots a thread.
    pub slots: u32,
    /// Zero.
    pub pad: u32,
}

impl ScratchTable {
    /// The slots a thread needs for `program`: one more than the g registers that can hold a
    /// constructed geometry (written by `affine`, `simplify`, `mov` or `select`) and its
    /// geometry outputs (a stored value is kept until the row ends), so a construction always
    /// finds a slot nothing refers to; 0 when nothing is constructed.
    pub fn slots(program: &VerifiedProgram) -> u32 {
        let constructs = program.instrs().any(|i| matches!(i, Instr::Affine { .. } | Instr::Simplify { .. }));
        if !constructs {
            return 0;
        }
        let mut written = 0u32;
        for instr in program.instrs() {
            let dst = match instr {
                Instr::Affine { dst, .. }
                | Instr::Simplify { dst, .. }
                | Instr::MovG { dst, .. }
                | Instr::SelectG { dst, .. } => dst.0,
                _ => continue,
            };
            written |= 1 << (dst & 15);
        }
        let stored = program.program().outputs().iter().filter(|o| o.kind == OutputKind::Geometry).count();
        written.count_ones() + stored.min(MAX_GPU_GEOMETRY_OUTPUTS) as u32 + 1
    }

    /// The table for `threads` threads with `slots` slots of `caps` each, at `base`; also the
    /// bytes `base` must hold.
    pub fn new(base: u64, threads: u64, slots: u32, caps: BuiltCaps) -> (ScratchTable, u64) {
        let (work_bytes, slot_bytes) = (caps.work_bytes(), caps.slot_bytes());
        let thread_bytes = round8(work_bytes + u64::from(slots) * slot_bytes);
        let t = ScratchTable { base, threads, thread_bytes, work_bytes, slot_bytes, caps, slots, pad: 0 };
        (t, thread_bytes.saturating_mul(threads))
    }
}

/// The bytes of a slice of plain old data.
fn bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
    bytemuck::cast_slice(v)
}

impl DeviceColumn {
    /// Places `col`'s arrays with `place` and describes them. A column in the point layout
    /// places only its coordinates and validity; its kinds and offsets stay null, which is how
    /// the device tells the layouts apart (`mr_points_native`).
    pub fn place<E>(
        col: &GeometryColumn,
        place: &mut impl FnMut(&[u8]) -> Result<u64, E>,
    ) -> Result<Self, E> {
        let native = col.layout() == Layout::Points;
        let mut offsets = |b: &[u8]| if native { Ok(0) } else { place(b) };
        Ok(DeviceColumn {
            kinds: offsets(&col.kinds)?,
            geom_offsets: offsets(bytes(&col.geom_offsets))?,
            part_offsets: offsets(bytes(&col.part_offsets))?,
            ring_offsets: offsets(bytes(&col.ring_offsets))?,
            x: place(bytes(&col.x))?,
            y: place(bytes(&col.y))?,
            validity: place(bytes(&col.validity))?,
            rows: col.len() as u64,
            parts: col.view().part_count() as u64,
        })
    }

    /// Bytes [`DeviceColumn::place`] uploads for `col`: 16 a point in the point layout.
    pub fn bytes(col: &GeometryColumn) -> usize {
        col.kinds.len()
            + 4 * (col.geom_offsets.len() + col.part_offsets.len() + col.ring_offsets.len())
            + 8 * (col.x.len() + col.y.len() + col.validity.len())
    }
}

/// Why the device cannot use `index`, or `Ok`: its tree must fit the device's traversal stack
/// and its counts 32 bits.
pub fn check_index(index: &SpatialIndex) -> Result<(), String> {
    let tree = index.tree();
    if tree.max_stack() > TREE_STACK {
        return Err(format!(
            "its R-tree needs a traversal stack of {} entries; the device keeps {TREE_STACK}",
            tree.max_stack()
        ));
    }
    if tree.boxes().len() >= u32::MAX as usize || index.part_rows().len() >= u32::MAX as usize {
        return Err("it has 2^32 or more parts".into());
    }
    Ok(())
}

impl DeviceIndex {
    /// Places `index`'s arrays with `place` and describes them. Check it with [`check_index`]
    /// first.
    pub fn place<E>(
        index: &SpatialIndex,
        place: &mut impl FnMut(&[u8]) -> Result<u64, E>,
    ) -> Result<Self, E> {
        let tree = index.tree();
        let slabs = index.slabs();
        let mut d = DeviceIndex {
            tree_boxes: place(bytes(tree.boxes()))?,
            tree_start: place(bytes(tree.starts()))?,
            tree_end: place(bytes(tree.ends()))?,
            tree_nodes: tree.boxes().len() as u32,
            tree_leaves: tree.len() as u32,
            slab_parts: place(bytes(&slabs.parts))?,
            slab_offsets: place(bytes(&slabs.slab_offsets))?,
            slab_max_x: place(bytes(&slabs.slab_max_x))?,
            slab_edges: place(bytes(&slabs.edges))?,
            slab_part_count: slabs.parts() as u64,
            part_rows: place(bytes(index.part_rows()))?,
            part_count: index.part_rows().len() as u64,
            areal: u32::from(index.is_areal()),
            ..DeviceIndex::default()
        };
        if let Some(g) = index.grid() {
            d.grid_min_x = g.min_x;
            d.grid_min_y = g.min_y;
            d.grid_max_x = g.max_x;
            d.grid_max_y = g.max_y;
            d.grid_sx = g.sx;
            d.grid_sy = g.sy;
            d.grid_nx = g.nx as u64;
            d.grid_ny = g.ny as u64;
            d.grid_offsets = place(bytes(&g.offsets))?;
            d.grid_entries = place(bytes(&g.entries))?;
            d.grid_boxes = place(bytes(&g.boxes))?;
            d.has_grid = 1;
        }
        Ok(d)
    }

    /// Bytes [`DeviceIndex::place`] uploads for `index`.
    pub fn bytes(index: &SpatialIndex) -> usize {
        let tree = index.tree();
        let slabs = index.slabs();
        let mut n = 32 * tree.boxes().len()
            + 4 * (tree.starts().len() + tree.ends().len())
            + 32 * (slabs.parts.len() + slabs.edges.len())
            + 4 * slabs.slab_offsets.len()
            + 8 * slabs.slab_max_x.len()
            + 4 * index.part_rows().len();
        if let Some(g) = index.grid() {
            n += 4 * (g.offsets.len() + g.entries.len()) + 32 * g.boxes.len();
        }
        n
    }
}

/// The point join's predicate `intersects` (`MR_PRED_INTERSECTS`, [`DeviceJoin::pred`]).
pub const PRED_INTERSECTS: u8 = 0;
/// `contains` (`MR_PRED_CONTAINS`).
pub const PRED_CONTAINS: u8 = 1;
/// `covers` (`MR_PRED_COVERS`).
pub const PRED_COVERS: u8 = 2;
/// `touches` (`MR_PRED_TOUCHES`).
pub const PRED_TOUCHES: u8 = 3;
/// `disjoint` (`MR_PRED_DISJOINT`).
pub const PRED_DISJOINT: u8 = 4;
/// Every predicate with its device name (after `MR_PRED_`).
pub const PREDICATES: [(&str, u8); 5] = [
    ("INTERSECTS", PRED_INTERSECTS),
    ("CONTAINS", PRED_CONTAINS),
    ("COVERS", PRED_COVERS),
    ("TOUCHES", PRED_TOUCHES),
    ("DISJOINT", PRED_DISJOINT),
];

/// The device's code for `p`; `None` for `dwithin`, whose loops the device runs as
/// instructions.
fn pred_code(p: Pred) -> Option<u8> {
    Some(match p {
        Pred::Intersects => PRED_INTERSECTS,
        Pred::Contains => PRED_CONTAINS,
        Pred::Covers => PRED_COVERS,
        Pred::Touches => PRED_TOUCHES,
        Pred::Disjoint => PRED_DISJOINT,
        Pred::DWithin(_) => return None,
    })
}

impl DeviceJoin {
    /// The point join `program` is, as the device reads it (`present` 0 when it is none).
    pub fn of(program: &VerifiedProgram) -> DeviceJoin {
        let code: Vec<Instr> = program.instrs().collect();
        let loops = fuse::find(&code);
        let Some(j) = fuse::point_join(&code, &loops).filter(|j| j.dist.is_none()) else {
            return DeviceJoin::default();
        };
        let l = j.filter;
        let Some(pred) = pred_code(l.pred) else { return DeviceJoin::default() };
        let g = j.geom;
        let symmetric = matches!(l.pred, Pred::Intersects | Pred::Touches | Pred::Disjoint);
        let fit = l.cand != g && ((l.a == l.cand && l.b == g) || (symmetric && l.a == g && l.b == l.cand));
        DeviceJoin {
            present: 1,
            load: j.load as u32,
            probe: j.probe as u32,
            output: l.output as u32,
            geom: g.0,
            cand: l.cand.0,
            pred,
            operands_fit: u8::from(fit),
            cand_first: u8::from(l.a == l.cand),
            count: u8::from(l.action == fuse::Action::Count),
            pad: [0; 2],
        }
    }
}

impl DeviceProgram {
    /// Places `program`'s code and constants with `place` and describes it.
    pub fn place<E>(
        program: &VerifiedProgram,
        place: &mut impl FnMut(&[u8]) -> Result<u64, E>,
    ) -> Result<Self, E> {
        let p = program.program();
        let mut out_kinds = [0u8; MAX_OUTPUTS];
        let mut red_of = [0xffu8; MAX_OUTPUTS];
        let mut red_outputs = [0u8; MAX_GPU_REDUCTIONS];
        let (mut nred, mut ngeom) = (0usize, 0usize);
        for (i, o) in p.outputs().iter().enumerate().take(MAX_OUTPUTS) {
            out_kinds[i] = o.kind as u8;
            if matches!(o.kind, OutputKind::Count | OutputKind::Sum) && nred < MAX_GPU_REDUCTIONS {
                red_of[i] = nred as u8;
                red_outputs[nred] = i as u8;
                nred += 1;
            }
            if o.kind == OutputKind::Geometry && ngeom < MAX_GPU_GEOMETRY_OUTPUTS {
                red_of[i] = ngeom as u8;
                ngeom += 1;
            }
        }
        Ok(DeviceProgram {
            code: place(bytes(p.code()))?,
            consts: place(bytes(p.consts()))?,
            ncode: p.code().len() as u32,
            nconsts: p.consts().len() as u32,
            ninputs: p.inputs().len() as u32,
            noutputs: p.outputs().len() as u32,
            join: DeviceJoin::of(program),
            out_kinds,
            red_of,
            red_outputs,
            nred: nred as u32,
            ngeom: ngeom as u32,
        })
    }
}
