//! The choropleth: countries coloured by how many places the join put in them, drawn with
//! `plotters` onto a PNG in an equirectangular projection, with a legend and the credits.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::group;
use crate::kernels::column::GeometryColumn;

/// Width and height of the PNG in pixels.
pub const MAP_SIZE: (u32, u32) = (1600, 800);

/// Left and right margin of the map.
const SIDE: i32 = 20;
/// The title band above the map.
const TOP: i32 = 70;
/// Latitudes shown: the 1:110m outlines reach 83.6°N; south of 58°S there is only
/// Antarctica, which the legend band covers.
const NORTH: f64 = 84.0;
const SOUTH: f64 = -58.0;

const FONT: &str = "sans-serif";
static FONT_FILE: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

const PAPER: RGBColor = RGBColor(255, 255, 255);
const OCEAN: RGBColor = RGBColor(220, 233, 245);
const BORDER: RGBColor = RGBColor(90, 90, 90);
const INK: RGBColor = RGBColor(30, 30, 30);
const EMPTY: RGBColor = RGBColor(204, 204, 204);
/// ColorBrewer YlOrRd, five classes: one per decade of places.
const RAMP: [RGBColor; 5] = [
    RGBColor(255, 255, 178),
    RGBColor(254, 204, 92),
    RGBColor(253, 141, 60),
    RGBColor(240, 59, 32),
    RGBColor(189, 0, 38),
];

/// Pixels per degree.
fn scale() -> f64 {
    f64::from(MAP_SIZE.0 as i32 - 2 * SIDE) / 360.0
}

/// The bottom edge of the map (where [`SOUTH`] falls).
fn map_bottom() -> i32 {
    TOP + ((NORTH - SOUTH) * scale()).round() as i32
}

fn project((lon, lat): (f64, f64)) -> (i32, i32) {
    let s = scale();
    (SIDE + ((lon + 180.0) * s).round() as i32, TOP + ((NORTH - lat) * s).round() as i32)
}

/// The class of a count: 0 for none, then one per decade (1–9, 10–99, ...), capped at the
/// ramp's last colour.
fn class(count: u64) -> usize {
    let mut class = 0;
    let mut bound = 1;
    while count >= bound && class < RAMP.len() {
        class += 1;
        bound *= 10;
    }
    class
}

fn colour(class: usize) -> RGBColor {
    if class == 0 {
        EMPTY
    } else {
        RAMP[class - 1]
    }
}

fn label(class: usize) -> String {
    match class {
        0 => "no places".to_string(),
        c if c == RAMP.len() => format!("{}+", group(10u64.pow(c as u32 - 1))),
        c => format!("{}–{}", group(10u64.pow(c as u32 - 1)), group(10u64.pow(c as u32) - 1)),
    }
}

fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_FILE).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the bundled font assets/fonts/DejaVuSans.ttf did not load".into())
    }
}

/// A polygon part in pixels: exterior then holes, its fill class, and its exterior's area
/// (twice, unsigned) for the drawing order.
struct PixelPart {
    area: i64,
    class: usize,
    rings: Vec<Vec<(i32, i32)>>,
}

/// One ring in pixels, without repeated pixels.
fn ring_pixels(coords: impl Iterator<Item = (f64, f64)>) -> Vec<(i32, i32)> {
    let mut px: Vec<(i32, i32)> = coords.map(project).collect();
    px.dedup();
    px
}

/// Twice the area of a pixel ring (shoelace), unsigned.
fn pixel_area(ring: &[(i32, i32)]) -> i64 {
    let n = ring.len();
    let twice: i64 = (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1)
        })
        .sum();
    twice.abs()
}

/// Draws `shapes` coloured by `counts` (one per row) under `title`; returns how many
/// classes the legend shows.
pub(crate) fn render(
    path: &Path,
    shapes: &GeometryColumn,
    counts: &[u64],
    title: &str,
) -> Result<usize, String> {
    font()?;
    let (w, h) = MAP_SIZE;
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let bottom = map_bottom();
    let (left, right) = (SIDE, w as i32 - SIDE);
    root.fill(&PAPER).map_err(e)?;
    root.draw(&Rectangle::new([(left, TOP), (right, bottom)], OCEAN.filled())).map_err(e)?;

    // Every part, largest first: a country that fills
    // another's hole (Lesotho in South Africa) is smaller, so it is drawn after the hole.
    let mut parts: Vec<PixelPart> = Vec::new();
    for row in 0..shapes.len() {
        let Some(geom) = shapes.get(row) else { continue };
        let class = class(counts.get(row).copied().unwrap_or(0));
        for part in geom.parts() {
            let rings: Vec<Vec<(i32, i32)>> =
                part.rings().map(|r| ring_pixels(r.coords())).filter(|r| r.len() >= 3).collect();
            if let Some(exterior) = rings.first() {
                parts.push(PixelPart { area: pixel_area(exterior), class, rings });
            }
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.area));
    let outline = ShapeStyle { color: BORDER.to_rgba(), filled: false, stroke_width: 1 };
    for PixelPart { class, rings, .. } in &parts {
        for (i, ring) in rings.iter().enumerate() {
            let fill = if i == 0 { colour(*class) } else { OCEAN };
            root.draw(&Polygon::new(ring.clone(), fill.filled())).map_err(e)?;
        }
        for ring in rings {
            let mut closed = ring.clone();
            closed.push(ring[0]);
            root.draw(&PathElement::new(closed, outline)).map_err(e)?;
        }
    }

    // The bands above and below the map crop what lies beyond NORTH and SOUTH.
    root.draw(&Rectangle::new([(0, 0), (w as i32, TOP)], PAPER.filled())).map_err(e)?;
    root.draw(&Rectangle::new([(0, bottom), (w as i32, h as i32)], PAPER.filled())).map_err(e)?;
    root.draw(&Rectangle::new([(left, TOP), (right, bottom)], ShapeStyle { filled: false, ..outline }))
        .map_err(e)?;
    root.draw_text(title, &(FONT, 26).into_font().color(&INK), (left, 22)).map_err(e)?;

    // Legend: one swatch per class up to the largest count, with how many countries.
    let top_class = counts.iter().map(|&c| class(c)).max().unwrap_or(0);
    let text = (FONT, 18).into_font().color(&INK);
    let y = bottom + 22;
    root.draw_text("places per country (countries):", &text, (left, y + 2)).map_err(e)?;
    let mut x = left + 290;
    for c in 0..=top_class {
        let n = counts.iter().filter(|&&v| class(v) == c).count();
        root.draw(&Rectangle::new([(x, y), (x + 34, y + 22)], colour(c).filled())).map_err(e)?;
        root.draw(&Rectangle::new([(x, y), (x + 34, y + 22)], outline)).map_err(e)?;
        let words = format!("{} ({n})", label(c));
        root.draw_text(&words, &text, (x + 42, y + 2)).map_err(e)?;
        let (width, _) = root.estimate_text_size(&words, &text).map_err(e)?;
        x += 42 + width as i32 + 28;
    }
    let credit = "Places: GeoNames (geonames.org, CC BY 4.0). Countries: Made with Natural Earth (1:110m). \
                  Equirectangular, 84°N–58°S. Drawn by `meridian demo` with plotters.";
    root.draw_text(credit, &(FONT, 17).into_font().color(&BORDER), (left, y + 48)).map_err(e)?;
    root.present().map_err(e)?;
    Ok(top_class + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn classes_are_decades() {
        assert_eq!([0, 1, 9, 10, 99, 100, 9_999, 10_000, 1_000_000].map(class), [0, 1, 1, 2, 2, 3, 4, 5, 5]);
        assert_eq!(label(0), "no places");
        assert_eq!(label(2), "10–99");
        assert_eq!(label(5), "10,000+");
    }

    #[test]
    fn projection_puts_the_corners_on_the_frame() {
        assert_eq!(project((-180.0, NORTH)), (SIDE, TOP));
        assert_eq!(project((180.0, SOUTH)), (MAP_SIZE.0 as i32 - SIDE, map_bottom()));
        assert!(map_bottom() + 90 < MAP_SIZE.1 as i32, "room for the legend");
    }

    #[test]
    fn grouping() {
        assert_eq!(
            [0, 999, 1000, 234_908, 1_234_567].map(group),
            ["0", "999", "1,000", "234,908", "1,234,567"]
        );
    }
}
