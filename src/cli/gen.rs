//! `meridian gen points N OUT`: uniform random points written chunk by chunk, in constant
//! memory, in any format the writers take.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use meridian::kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian::kernels::io::geoarrow::Encoding;
use meridian::kernels::io::{Format, GeometryWriter};

use super::{print, Failure};

/// Points per chunk written.
const CHUNK: u64 = 1 << 20;

/// A rectangle `[min x, min y, max x, max y]`.
pub type Bbox = [f64; 4];

/// The whole lon/lat range.
pub const WORLD: Bbox = [-180.0, -90.0, 180.0, 90.0];

/// Parses `minx,miny,maxx,maxy`.
pub fn parse_bbox(text: &str) -> Result<Bbox, String> {
    let v: Vec<f64> = text
        .split(',')
        .map(|s| s.trim().parse::<f64>().map_err(|_| format!("--bbox {text:?}: {s:?} is not a number")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [a, b, c, d]
            if a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite() && a <= c && b <= d =>
        {
            Ok([a, b, c, d])
        }
        [_, _, _, _] => Err(format!("--bbox {text:?}: expected finite minx,miny,maxx,maxy with min <= max")),
        _ => Err(format!("--bbox {text:?}: expected four numbers minx,miny,maxx,maxy")),
    }
}

/// Points `start .. start + n` of the uniform sequence of `seed` over `bbox` (splitmix64, two
/// draws a point): any chunk of the sequence can be made on its own, so a file written in
/// chunks holds the same points as one made whole (and as `meridian bench pip`'s).
pub fn uniform_points(seed: u64, bbox: Bbox, start: u64, n: usize) -> Result<GeometryColumn, String> {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut state = seed.wrapping_add(start.wrapping_mul(2).wrapping_mul(GOLDEN));
    let mut next = move || {
        state = state.wrapping_add(GOLDEN);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) >> 11
    };
    let unit = 1.0 / (1u64 << 53) as f64;
    let [x0, y0, x1, y1] = bbox;
    let mut b = ColumnBuilder::new();
    b.reserve(n, n);
    for _ in 0..n {
        let x = x0 + (x1 - x0) * next() as f64 * unit;
        let y = y0 + (y1 - y0) * next() as f64 * unit;
        b.push_point(x, y).map_err(|e| e.to_string())?;
    }
    Ok(b.finish())
}

/// Options of `meridian gen points`.
#[derive(Debug)]
pub struct GenPoints<'a> {
    /// How many.
    pub n: u64,
    /// Where.
    pub out: &'a Path,
    /// Over what.
    pub bbox: Bbox,
    /// From which seed.
    pub seed: u64,
    /// Native GeoArrow points or WKB in columnar files.
    pub encoding: Encoding,
}

/// `meridian gen points`.
pub fn points(args: &GenPoints<'_>) -> Result<(), Failure> {
    let fail = |m: String| Failure::input([format!("error: {m}")]);
    let format = Format::from_path(args.out).ok_or_else(|| {
        fail(format!("{}: unknown output format (expected {})", args.out.display(), Format::NAMES))
    })?;
    let t = Instant::now();
    let mut w = GeometryWriter::create(args.out, format, "geometry", args.encoding)
        .map_err(|e| fail(e.to_string()))?;
    let mut done = 0;
    while done < args.n {
        let n = (args.n - done).min(CHUNK) as usize;
        let chunk = uniform_points(args.seed, args.bbox, done, n).map_err(&fail)?;
        w.write(&chunk).map_err(|e| fail(e.to_string()))?;
        done += n as u64;
    }
    w.finish().map_err(|e| fail(e.to_string()))?;
    let bytes = std::fs::metadata(args.out).map(|m| m.len()).unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "wrote {} ({} points, {:.1} MB, {}) in {:.2} s",
        args.out.display(),
        meridian::demo::group(args.n),
        bytes as f64 / 1e6,
        match (format.columnar(), args.encoding) {
            (None, _) => "text".to_owned(),
            (Some(_), e) => e.to_string(),
        },
        t.elapsed().as_secs_f64()
    );
    print(&s);
    Ok(())
}

/// The encoding named on the command line (`native`: GeoArrow points; `wkb`).
pub fn point_encoding(name: &str) -> Encoding {
    if name == "wkb" {
        Encoding::Wkb
    } else {
        Encoding::Native(Family::Point)
    }
}
