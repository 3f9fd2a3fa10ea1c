//! meridian's plans across processes: a [`PhysicalExtensionCodec`] for Ballista (feature
//! `ballista`).
//!
//! A Ballista scheduler plans a query, cuts the plan into stages and sends each stage to the
//! executors as protobuf; nodes DataFusion does not know go through the session's physical
//! extension codec. [`MeridianCodec`] carries:
//! - a [`MeridianSpatialJoinExec`]: its predicate, geometry columns, join type, projection and the
//!   program it was planned with (the `.mbc` bytes, whose content hash is checked and whose
//!   code is verified again on the executor); its two inputs — the build side's plan and the
//!   probe side's — travel as DataFusion's own nodes, so each executor runs the join over its
//!   probe partitions and builds its index from the build side's;
//! - meridian's `ST_` functions, by name, so an executor needs only the codec to run them;
//! - everything else through the codec it wraps (Ballista's own, for its shuffle nodes).
//!
//! Frames: one tag byte (ours or the wrapped codec's), then for a join `MRJN`, a version and
//! the fields, little-endian, and the first 8 bytes of the BLAKE3 hash of everything before.
//! A frame that does not decode is an error naming the field and its offset.

use std::fmt;
use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::common::{project_schema, JoinType, Result};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use meridian_bytecode::{InputKind, OutputKind, Program};
use meridian_runtime::Engine;

use crate::join::{MeridianSpatialJoinExec, Predicate};
use crate::udf::{Function, SpatialFunction};

/// The frame is the wrapped codec's.
const TAG_INNER: u8 = 0;
/// The frame is a meridian join.
const TAG_JOIN: u8 = 1;
/// A function frame: meridian's (its name follows) or the wrapped codec's.
const TAG_FUNCTION: u8 = 2;
const JOIN_MAGIC: &[u8; 4] = b"MRJN";
const JOIN_VERSION: u8 = 3;
const CHECK_LEN: usize = 8;

/// The physical extension codec for plans with meridian's nodes and functions, run on the
/// decoding side by `engine` (see the module's documentation).
pub struct MeridianCodec {
    engine: Arc<Engine>,
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl fmt::Debug for MeridianCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeridianCodec").field("inner", &self.inner).finish()
    }
}

impl MeridianCodec {
    /// The codec for a Ballista cluster: meridian's nodes decoded to run on `engine`, the
    /// rest by Ballista's codec.
    pub fn new(engine: Arc<Engine>) -> MeridianCodec {
        MeridianCodec::wrapping(engine, Arc::new(BallistaPhysicalExtensionCodec::default()))
    }

    /// The codec with nodes that are not meridian's encoded by `inner`.
    pub fn wrapping(engine: Arc<Engine>, inner: Arc<dyn PhysicalExtensionCodec>) -> MeridianCodec {
        MeridianCodec { engine, inner }
    }
}

fn corrupt(at: usize, what: &str) -> DataFusionError {
    DataFusionError::Plan(format!("a meridian join in the plan does not decode: {what} at byte {at}"))
}

/// Reads a join frame's fields in order, each error naming the field and its offset.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &str, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else { return Err(corrupt(self.pos, &format!("{what} runs past the end"))) };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(what, 1)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(what, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes8(&mut self, what: &str) -> Result<[u8; 8]> {
        let b = self.take(what, 8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn flag(&mut self, what: &str) -> Result<bool> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(corrupt(at, &format!("{what} is {b}, not 0 or 1"))),
        }
    }
}

fn check_of(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let mut c = [0; CHECK_LEN];
    c.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CHECK_LEN]);
    c
}

fn put_u32(out: &mut Vec<u8>, what: &str, v: usize) -> Result<()> {
    let v = u32::try_from(v).map_err(|_| {
        DataFusionError::Plan(format!("a meridian join's {what} ({v}) does not fit its frame"))
    })?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

/// The join's frame, after the tag.
fn encode_join(join: &MeridianSpatialJoinExec, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(JOIN_MAGIC);
    out.push(JOIN_VERSION);
    // The predicate's parameter: DWithin's distance (f64), KNN's k (u64).
    let (tag, parameter) = match join.predicate {
        Predicate::Contains => (0, [0; 8]),
        Predicate::Within => (1, [0; 8]),
        Predicate::Intersects => (2, [0; 8]),
        Predicate::DWithin(d) => (3, d.to_le_bytes()),
        Predicate::Knn(k) => (4, u64::from(k).to_le_bytes()),
    };
    out.push(tag);
    out.extend_from_slice(&parameter);
    put_u32(out, "left geometry column", join.left_geometry)?;
    put_u32(out, "right geometry column", join.right_geometry)?;
    out.push(u8::from(join.left_first));
    out.push(match join.join_type {
        JoinType::Left => 1,
        JoinType::Right => 2,
        _ => 0,
    });
    out.push(u8::from(join.knn_distance));
    match &join.projection {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_u32(out, "projection's length", p.len())?;
            for &i in p {
                put_u32(out, "projected column", i)?;
            }
        }
    }
    // A KNN join has no program: length 0.
    let program = join.program.as_ref().map(|p| p.program().program().to_bytes()).unwrap_or_default();
    put_u32(out, "program's length", program.len())?;
    out.extend_from_slice(&program);
    let check = check_of(&out[start..]);
    out.extend_from_slice(&check);
    Ok(())
}

/// Checks that `program` is a join program: a geometry row per probe row, the build side
/// indexed, the pairs as hits.
fn check_join_program(program: &Program) -> std::result::Result<(), String> {
    let inputs: Vec<_> = program.inputs().iter().map(|d| (d.name.as_str(), d.kind, d.indexed)).collect();
    let outputs: Vec<_> = program.outputs().iter().map(|d| (d.name.as_str(), d.kind)).collect();
    let want_in = [("probe", InputKind::Geometry, false), ("build", InputKind::Geometry, true)];
    if inputs != want_in || outputs != [("pairs", OutputKind::Hits)] {
        return Err(format!(
            "its program {} is not a join's (inputs probe, build indexed; output pairs hits)",
            program.name()
        ));
    }
    Ok(())
}

impl MeridianCodec {
    fn decode_join(&self, frame: &[u8], inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(body_len) = frame.len().checked_sub(CHECK_LEN) else {
            return Err(corrupt(0, "the frame is shorter than its check"));
        };
        if check_of(&frame[..body_len]) != frame[body_len..] {
            return Err(corrupt(body_len, "the check does not match the frame (damaged in transit)"));
        }
        let mut r = Reader { bytes: &frame[..body_len], pos: 0 };
        if r.take("magic", 4)? != JOIN_MAGIC {
            return Err(corrupt(0, "the magic is not MRJN"));
        }
        let at = r.pos;
        let version = r.u8("version")?;
        if version != JOIN_VERSION {
            return Err(corrupt(at, &format!("version {version} (this build reads {JOIN_VERSION})")));
        }
        let at = r.pos;
        let tag = r.u8("predicate")?;
        let parameter = r.bytes8("the predicate's parameter")?;
        let distance = f64::from_le_bytes(parameter);
        let k = u64::from_le_bytes(parameter);
        let predicate = match tag {
            0 => Predicate::Contains,
            1 => Predicate::Within,
            2 => Predicate::Intersects,
            3 if distance.is_finite() => Predicate::DWithin(distance),
            3 => return Err(corrupt(at + 1, &format!("ST_DWithin's distance is {distance}"))),
            4 => match u32::try_from(k) {
                Ok(k) if k > 0 => Predicate::Knn(k),
                _ => return Err(corrupt(at + 1, &format!("ST_KNN's k is {k}"))),
            },
            t => return Err(corrupt(at, &format!("predicate {t} is none of meridian's"))),
        };
        let left_geometry = r.u32("left geometry column")? as usize;
        let right_geometry = r.u32("right geometry column")? as usize;
        let left_first = r.flag("argument order")?;
        let at = r.pos;
        let join_type = match r.u8("join type")? {
            0 => JoinType::Inner,
            1 => JoinType::Left,
            2 => JoinType::Right,
            t => {
                return Err(corrupt(at, &format!("join type {t} is none of inner (0), left (1), right (2)")))
            }
        };
        let knn_at = r.pos;
        let knn_distance = r.flag("the KNN distance column's presence")?;
        let projection = if r.flag("projection's presence")? {
            let at = r.pos;
            let n = r.u32("projection's length")? as usize;
            // Each entry is 4 bytes: a length past the frame fails before allocating.
            if n > (r.bytes.len() - r.pos) / 4 {
                return Err(corrupt(at, &format!("the projection's {n} columns run past the end")));
            }
            Some((0..n).map(|_| r.u32("projected column").map(|i| i as usize)).collect::<Result<Vec<_>>>()?)
        } else {
            None
        };
        let n = r.u32("program's length")? as usize;
        let at = r.pos;
        let bytes = r.take("program", n)?;
        if r.pos != body_len {
            return Err(corrupt(r.pos, "bytes follow the program"));
        }
        let prepared = match predicate {
            Predicate::Knn(_) if bytes.is_empty() => None,
            Predicate::Knn(_) => return Err(corrupt(at, "a KNN join carries a program")),
            _ => {
                let program =
                    Program::from_bytes(bytes).map_err(|e| corrupt(at, &format!("its program: {e}")))?;
                check_join_program(&program).map_err(|e| corrupt(at, &e))?;
                Some(self.engine.prepare(&program).map_err(|e| {
                    DataFusionError::Plan(format!("a meridian join's program does not run here: {e}"))
                })?)
            }
        };

        let [left, right] = inputs else {
            return Err(DataFusionError::Plan(format!(
                "a meridian join has two inputs, the plan gave it {}",
                inputs.len()
            )));
        };
        let (ls, rs) = (left.schema(), right.schema());
        for (side, column, schema) in [("left", left_geometry, &ls), ("right", right_geometry, &rs)] {
            if column >= schema.fields().len() {
                return Err(DataFusionError::Plan(format!(
                    "a meridian join's {side} geometry column {column} is past its input's {} columns",
                    schema.fields().len()
                )));
            }
        }
        let (joined, _) = build_join_schema(&ls, &rs, &join_type);
        let schema = project_schema(&Arc::new(joined), projection.as_ref())?;
        let join = MeridianSpatialJoinExec::with_program(
            left.clone(),
            right.clone(),
            predicate,
            (left_geometry, right_geometry, left_first),
            join_type,
            projection,
            schema,
            self.engine.clone(),
            prepared,
        );
        if knn_distance {
            let join = join.with_knn_distance().map_err(|e| corrupt(knn_at, &e.to_string()))?;
            return Ok(Arc::new(join));
        }
        Ok(Arc::new(join))
    }
}

impl PhysicalExtensionCodec for MeridianCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&TAG_JOIN, frame)) => self.decode_join(frame, inputs),
            Some((&TAG_INNER, rest)) => self.inner.try_decode(rest, inputs, ctx, proto_converter),
            Some((t, _)) => {
                Err(corrupt(0, &format!("tag {t} is neither meridian's node nor the wrapped codec's")))
            }
            None => Err(corrupt(0, "the frame is empty")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(join) = node.downcast_ref::<MeridianSpatialJoinExec>() {
            buf.push(TAG_JOIN);
            return encode_join(join, buf);
        }
        buf.push(TAG_INNER);
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match buf.split_first() {
            Some((&TAG_FUNCTION, ours)) => {
                let f = Function::ALL.into_iter().find(|f| f.name().as_bytes() == ours).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "function {name}: {:?} is none of meridian's functions",
                        String::from_utf8_lossy(ours)
                    ))
                })?;
                Ok(Arc::new(SpatialFunction::udf(f, self.engine.clone())))
            }
            Some((&TAG_INNER, rest)) => self.inner.try_decode_udf(name, rest),
            Some((t, _)) => Err(DataFusionError::Plan(format!(
                "function {name}: definition tag {t} is neither meridian's nor the wrapped codec's"
            ))),
            // An empty definition: a function the encoding side's codec wrote nothing for.
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if node.inner().downcast_ref::<SpatialFunction>().is_some() {
            buf.push(TAG_FUNCTION);
            buf.extend_from_slice(node.name().as_bytes());
            return Ok(());
        }
        let mut theirs = Vec::new();
        self.inner.try_encode_udf(node, &mut theirs)?;
        // Nothing written stays nothing: the decoding side then looks the function up by name.
        if !theirs.is_empty() {
            buf.push(TAG_INNER);
            buf.extend_from_slice(&theirs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use arrow_schema::{DataType, Field, Schema};
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion_proto::physical_plan::DefaultPhysicalProtoConverter;
    use meridian_runtime::Mode;
    use proptest::prelude::*;

    fn engine() -> Arc<Engine> {
        Arc::new(Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap())
    }

    fn inputs() -> [Arc<dyn ExecutionPlan>; 2] {
        let side = |name: &str| {
            Arc::new(Schema::new(vec![
                Field::new(format!("{name}_id"), DataType::Int64, false),
                Field::new(format!("{name}_geom"), DataType::Binary, true),
            ]))
        };
        [Arc::new(EmptyExec::new(side("l"))), Arc::new(EmptyExec::new(side("r")))]
    }

    fn join(
        engine: &Arc<Engine>,
        predicate: Predicate,
        left_first: bool,
        join_type: JoinType,
        projection: Option<Vec<usize>>,
    ) -> MeridianSpatialJoinExec {
        let [l, r] = inputs();
        let (joined, _) = build_join_schema(&l.schema(), &r.schema(), &join_type);
        let schema = project_schema(&Arc::new(joined), projection.as_ref()).unwrap();
        MeridianSpatialJoinExec::try_new(
            l,
            r,
            predicate,
            (1, 1, left_first),
            join_type,
            projection,
            schema,
            engine.clone(),
        )
        .unwrap()
    }

    fn encode(codec: &MeridianCodec, join: MeridianSpatialJoinExec) -> Vec<u8> {
        let mut buf = Vec::new();
        codec.try_encode(Arc::new(join), &mut buf, &DefaultPhysicalProtoConverter {}).unwrap();
        buf
    }

    fn decode(codec: &MeridianCodec, buf: &[u8]) -> Result<Arc<dyn ExecutionPlan>> {
        codec.try_decode(buf, &inputs(), &TaskContext::default(), &DefaultPhysicalProtoConverter {})
    }

    #[test]
    fn every_join_round_trips_with_its_program() {
        let (planner, executor) = (engine(), engine());
        let codec = MeridianCodec::new(planner.clone());
        let on_executor = MeridianCodec::new(executor);
        for predicate in [
            Predicate::Contains,
            Predicate::Within,
            Predicate::Intersects,
            Predicate::DWithin(0.25),
            Predicate::Knn(5),
        ] {
            for (left_first, join_type) in [
                (true, JoinType::Inner),
                (false, JoinType::Inner),
                (true, JoinType::Left),
                (false, JoinType::Right),
            ] {
                for projection in [None, Some(vec![]), Some(vec![3, 0])] {
                    let original = join(&planner, predicate, left_first, join_type, projection.clone());
                    let schema = original.schema();
                    let hash = original.program.as_ref().map(|p| p.hash());
                    let plan = decode(&on_executor, &encode(&codec, original)).unwrap();
                    let back = plan.downcast_ref::<MeridianSpatialJoinExec>().unwrap();
                    assert_eq!(back.predicate, predicate);
                    assert_eq!(
                        (back.left_geometry, back.right_geometry, back.left_first),
                        (1, 1, left_first)
                    );
                    assert_eq!(back.join_type, join_type);
                    assert_eq!(back.projection, projection);
                    assert_eq!(back.program.as_ref().map(|p| p.hash()), hash);
                    assert_eq!(back.schema(), schema);
                    assert!(!back.knn_distance);
                }
            }
        }
        // An inner KNN join giving its distances, with and without a projection.
        for projection in [None, Some(vec![3, 0])] {
            let original = join(&planner, Predicate::Knn(3), false, JoinType::Inner, projection)
                .with_knn_distance()
                .unwrap();
            let schema = original.schema();
            assert_eq!(schema.fields().last().unwrap().name(), crate::join::KNN_DISTANCE);
            let plan = decode(&on_executor, &encode(&codec, original)).unwrap();
            let back = plan.downcast_ref::<MeridianSpatialJoinExec>().unwrap();
            assert!(back.knn_distance);
            assert_eq!(back.schema(), schema);
        }
        // Only an inner KNN join gives distances.
        let contains = join(&planner, Predicate::Contains, false, JoinType::Inner, None);
        assert!(contains.with_knn_distance().is_err());
    }

    #[test]
    fn meridians_functions_travel_by_name_and_others_are_left_to_the_wrapped_codec() {
        let codec = MeridianCodec::new(engine());
        for f in Function::ALL {
            let udf = SpatialFunction::udf(f, engine());
            let mut buf = Vec::new();
            codec.try_encode_udf(&udf, &mut buf).unwrap();
            assert_eq!(codec.try_decode_udf(f.name(), &buf).unwrap().name(), f.name());
        }
        let abs = datafusion::functions::math::abs();
        let mut buf = Vec::new();
        codec.try_encode_udf(&abs, &mut buf).unwrap();
        assert!(buf.is_empty(), "DataFusion's functions are found by name on the other side");
        let err = codec.try_decode_udf("st_area", &[TAG_FUNCTION, b'x']).unwrap_err().to_string();
        assert!(err.contains("none of meridian's functions"), "{err}");
        let err = codec.try_decode_udf("st_area", &[7, b'x']).unwrap_err().to_string();
        assert!(err.contains("definition tag 7"), "{err}");
    }

    #[test]
    fn damaged_frames_say_what_and_where() {
        let codec = MeridianCodec::new(engine());
        let good =
            encode(&codec, join(&engine(), Predicate::DWithin(1.5), true, JoinType::Inner, Some(vec![0, 2])));
        let mut flipped = good.clone();
        flipped[10] ^= 0x40;
        let cases: [(Vec<u8>, &str); 5] = [
            (vec![], "empty"),
            (vec![9, 1, 2], "tag 9"),
            (good[..good.len() - 3].to_vec(), "check does not match"),
            (flipped, "check does not match"),
            (good[..4].to_vec(), "shorter than its check"),
        ];
        for (bytes, want) in cases {
            let e = decode(&codec, &bytes).unwrap_err().to_string();
            assert!(e.contains("does not decode") && e.contains(want), "{want}: {e}");
        }
        // Frames whose check holds: a program that is another's, refused by its signature; a
        // join type that is none of the three.
        let forge = |join_type: u8, knn_distance: u8| {
            let mut forged = vec![TAG_JOIN];
            let body_start = forged.len();
            forged.extend_from_slice(JOIN_MAGIC);
            forged.extend_from_slice(&[JOIN_VERSION, 0]);
            forged.extend_from_slice(&0f64.to_le_bytes());
            forged.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, 1, join_type, knn_distance, 0]);
            let other =
                meridian_bytecode::assemble("m", include_str!("../../examples/measure.masm")).unwrap();
            let bytes = other.program().to_bytes();
            forged.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            forged.extend_from_slice(&bytes);
            let check = check_of(&forged[body_start..]);
            forged.extend_from_slice(&check);
            forged
        };
        let e = decode(&codec, &forge(0, 0)).unwrap_err().to_string();
        assert!(e.contains("is not a join's"), "{e}");
        let e = decode(&codec, &forge(7, 0)).unwrap_err().to_string();
        assert!(e.contains("join type 7 is none of") && e.contains("at byte 23"), "{e}");
        let e = decode(&codec, &forge(0, 2)).unwrap_err().to_string();
        assert!(e.contains("the KNN distance column's presence is 2") && e.contains("at byte 24"), "{e}");
        // Inputs that are not the join's: too few, or without its columns.
        let bad = encode(&codec, join(&engine(), Predicate::Contains, true, JoinType::Inner, None));
        let one = Arc::new(Schema::new(vec![Field::new("g", DataType::Binary, true)]));
        let narrow: [Arc<dyn ExecutionPlan>; 2] =
            [Arc::new(EmptyExec::new(one.clone())), Arc::new(EmptyExec::new(one))];
        let (ctx, proto) = (TaskContext::default(), DefaultPhysicalProtoConverter {});
        let e = codec.try_decode(&bad, &narrow, &ctx, &proto).unwrap_err().to_string();
        assert!(e.contains("left geometry column 1 is past its input's 1 columns"), "{e}");
        let e = codec.try_decode(&bad, &narrow[..1], &ctx, &proto).unwrap_err().to_string();
        assert!(e.contains("two inputs, the plan gave it 1"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any damage to a frame — a byte changed, the frame cut — is an error or (where the
        /// check still holds, as when only the wrapped tag changed) a clean decode; never a
        /// panic.
        #[test]
        fn damaged_frames_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let codec = MeridianCodec::new(engine());
            let good = encode(&codec, join(&engine(), Predicate::Within, false, JoinType::Left, Some(vec![1, 2])));
            let mut bytes = good.clone();
            bytes[at.index(good.len())] = byte;
            let _ = decode(&codec, &bytes);
            let _ = decode(&codec, &good[..cut.index(good.len())]);
        }
    }
}
