//! The device geometry library (kernels/cuda/*.cuh, built as host C++) against the Rust
//! kernels it mirrors, on random columns of every family with nulls, empties, shared vertices,
//! collinear and overlapping edges: measures, point location, the DE-9IM matrix, the named
//! predicates, distance, slab location, orientation and hypot. Everything is compared exactly
//! (to the bit for numbers, NaN equal to NaN): both sides run the same IEEE operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_bytecode::InputKind;
use meridian_cuda_host::data::{self, Rng};
use meridian_cuda_host::geometry::{self, HostColumn, HostIndex};
use meridian_kernels::algo;
use meridian_kernels::index::SpatialIndex;
use proptest::prelude::*;

/// Equal bits, any NaN equal to any NaN.
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

const KINDS: [InputKind; 4] = [InputKind::Points, InputKind::Lines, InputKind::Polygons, InputKind::Geometry];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn measures_match(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        for kind in KINDS {
            let col = data::column(&mut rng, kind, 40);
            let host = HostColumn::new(&col);
            for row in 0..col.len() {
                let got = host.measures(row);
                let Some(g) = col.get(row) else {
                    prop_assert!(got.is_none(), "row {row} is null");
                    continue;
                };
                let m = got.unwrap();
                let bbox = algo::bbox(&g);
                let centroid = algo::centroid(&g).unwrap_or((f64::NAN, f64::NAN));
                let what = format!("{kind:?} row {row}: {}", meridian_kernels::io::to_wkt(Some(&g)));
                prop_assert!(same(m.area, algo::area(&g)), "area {what}: {} vs {}", m.area, algo::area(&g));
                prop_assert!(same(m.length, algo::length(&g)), "length {what}: {} vs {}", m.length, algo::length(&g));
                for (d, c) in m.bbox.iter().zip([bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y]) {
                    prop_assert!(same(*d, c), "bbox {what}: {:?} vs {bbox:?}", m.bbox);
                }
                prop_assert!(same(m.centroid.0, centroid.0) && same(m.centroid.1, centroid.1),
                    "centroid {what}: {:?} vs {centroid:?}", m.centroid);
                prop_assert_eq!(m.npoints, g.num_points() as f64);
            }
        }
    }

    #[test]
    fn point_location_matches(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let col = data::column(&mut rng, InputKind::Geometry, 40);
        let host = HostColumn::new(&col);
        for row in 0..col.len() {
            for _ in 0..24 {
                let p = (rng.below(19) as f64 / 2.0 - 0.5, rng.below(19) as f64 / 2.0 - 0.5);
                let got = host.locate(row, p);
                let want = col.get(row).map(|g| algo::locate_point(&g, p));
                prop_assert_eq!(got, want, "row {} at {:?}", row, p);
            }
        }
    }

    #[test]
    fn relate_predicates_and_distance_match(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let (ka, kb) = (KINDS[rng.below(4) as usize], KINDS[rng.below(4) as usize]);
        let a = data::column(&mut rng, ka, 16);
        let b = data::column(&mut rng, kb, 16);
        let (ha, hb) = (HostColumn::new(&a), HostColumn::new(&b));
        for i in 0..a.len() {
            for j in 0..b.len() {
                let dist = [0.0, 0.5, 1.0, 2.5][rng.below(4) as usize];
                let got = ha.pair(i, &hb, j, dist);
                let (Some(ga), Some(gb)) = (a.get(i), b.get(j)) else {
                    prop_assert!(got.is_none());
                    continue;
                };
                let what = format!("{:?} / {}", meridian_kernels::io::to_wkt(Some(&ga)), meridian_kernels::io::to_wkt(Some(&gb)));
                let p = got.unwrap();
                if !ga.is_empty() && !gb.is_empty() {
                    let m = algo::relate(&ga, &gb);
                    let dev = ha.relate(i, &hb, j).unwrap();
                    let text: String = dev.iter().map(|d| match d { 0 => '0', 1 => '1', 2 => '2', _ => 'F' }).collect();
                    prop_assert_eq!(text, m.to_string(), "relate {}", what);
                }
                prop_assert_eq!(p.intersects, algo::intersects(&ga, &gb), "intersects {}", what);
                prop_assert_eq!(p.contains, algo::contains(&ga, &gb), "contains {}", what);
                prop_assert_eq!(p.covers, algo::covers(&ga, &gb), "covers {}", what);
                prop_assert_eq!(p.touches, algo::touches(&ga, &gb), "touches {}", what);
                prop_assert_eq!(p.disjoint, algo::disjoint(&ga, &gb), "disjoint {}", what);
                prop_assert_eq!(p.dwithin, algo::dwithin(&ga, &gb, dist), "dwithin {} {}", dist, what);
                let d = algo::distance(&ga, &gb);
                prop_assert!(same(p.distance, d), "distance {}: {} vs {}", what, p.distance, d);
            }
        }
    }

    #[test]
    fn slab_location_matches(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let col = data::column(&mut rng, InputKind::Polygons, 30);
        let index = SpatialIndex::build(std::sync::Arc::new(col.clone()));
        let host = HostIndex::new(&index);
        for part in 0..index.slabs().parts() {
            for _ in 0..24 {
                let p = (rng.below(21) as f64 / 2.0 - 1.0, rng.below(21) as f64 / 2.0 - 1.0);
                prop_assert_eq!(host.slabs_locate(part, p), Some(index.slabs().locate(part, p)), "part {} at {:?}", part, p);
            }
        }
    }

    #[test]
    fn orientation_signs_are_exact(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        for _ in 0..200 {
            // Nearly collinear triples far from the origin: the filter cannot decide them.
            let base = (rng.next_u64() % 1_000_000) as f64 * 1e3;
            let t = (rng.next_u64() % 1000) as f64 / 7.0;
            let eps = f64::from_bits(rng.next_u64() % 8) * if rng.chance(50) { 1.0 } else { -1.0 };
            let a = (base, base * 0.5);
            let b = (base + 3.0, base * 0.5 + 1.5);
            let c = (base + 3.0 * t + eps, base * 0.5 + 1.5 * t);
            let (d, r) = (geometry::orient(a, b, c), algo::orient(a, b, c));
            prop_assert_eq!(d.partial_cmp(&0.0), r.partial_cmp(&0.0), "{:?} {:?} {:?}", a, b, c);
        }
    }

    /// Tiny and mixed-magnitude triples, where Shewchuk's products underflow: the device's
    /// sign is the CPU's, and both are the exact sign (the CPU's integer products).
    #[test]
    fn orientation_signs_are_exact_near_underflow(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let coord = |rng: &mut Rng| -> f64 {
            let k = (rng.next_u64() % 17) as f64 - 8.0;
            match rng.next_u64() % 4 {
                0 => f64::from_bits(rng.next_u64() % 64) * k.signum(), // subnormal steps
                1 => k * f64::from_bits((1023 - 540 - rng.next_u64() % 480) << 52),
                2 => k * f64::from_bits((1023 - 480 + rng.next_u64() % 40) << 52),
                _ => k,
            }
        };
        for _ in 0..200 {
            let (a, b) = ((coord(&mut rng), coord(&mut rng)), (coord(&mut rng), coord(&mut rng)));
            // Often on the line a-b at a point whose coordinates stay exact.
            let c = if rng.chance(50) { (a.0 + (b.0 - a.0) * 2.0, a.1 + (b.1 - a.1) * 2.0) } else { (coord(&mut rng), coord(&mut rng)) };
            let (d, r) = (geometry::orient(a, b, c), algo::orient(a, b, c));
            let exact = algo::exact_sign(a, b, c).unwrap();
            prop_assert_eq!(d.partial_cmp(&0.0), exact.partial_cmp(&0.0), "device {:?} {:?} {:?}", a, b, c);
            prop_assert_eq!(r.partial_cmp(&0.0), exact.partial_cmp(&0.0), "cpu {:?} {:?} {:?}", a, b, c);
        }
    }

    #[test]
    fn hypot_is_bit_identical(x in any::<f64>(), y in any::<f64>()) {
        prop_assert!(same(geometry::hypot(x, y), algo::hypot(x, y)));
        let (sx, sy) = (x * 1e-300, y * 1e-300);
        prop_assert!(same(geometry::hypot(sx, sy), algo::hypot(sx, sy)));
    }
}
