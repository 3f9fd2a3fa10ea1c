//! `meridian demo` on the shipped data, checked against the same join and comparison done
//! here with the `geo` crate on data read by this test's own code (serde_json, csv), not
//! meridian's readers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use geo::{BoundingRect, Contains, Coord, LineString, MultiPolygon, Point, Polygon, Rect};
use meridian::demo::{self, Options, MAP_SIZE};
use meridian::Mode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-demo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn ring(v: &serde_json::Value) -> LineString<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| Coord { x: c[0].as_f64().unwrap(), y: c[1].as_f64().unwrap() })
        .collect()
}

fn polygon(v: &serde_json::Value) -> Polygon<f64> {
    let rings = v.as_array().unwrap();
    Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
}

struct Country {
    code: Option<String>,
    rect: Rect<f64>,
    shape: MultiPolygon<f64>,
}

fn countries() -> Vec<Country> {
    // iso_a3 -> iso_a2 and name -> iso_a2 from the code table (first two fields never quoted).
    let table = std::fs::read_to_string(root().join("data/country_codes.csv")).unwrap();
    let mut by_a3 = HashMap::new();
    let mut by_name = HashMap::new();
    for line in table.lines().skip(1) {
        let mut f = line.splitn(3, ',');
        let (a3, a2, name) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        by_a3.insert(a3.to_string(), a2.to_string());
        by_name.insert(name.trim_matches('"').to_string(), a2.to_string());
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("data/countries.geojson")).unwrap())
            .unwrap();
    doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let g = &f["geometry"];
            let shape = match g["type"].as_str().unwrap() {
                "Polygon" => MultiPolygon(vec![polygon(&g["coordinates"])]),
                "MultiPolygon" => {
                    MultiPolygon(g["coordinates"].as_array().unwrap().iter().map(polygon).collect())
                }
                other => panic!("unexpected geometry {other}"),
            };
            let p = &f["properties"];
            let code = by_a3
                .get(p["iso_a3"].as_str().unwrap())
                .or_else(|| by_name.get(p["name"].as_str().unwrap()))
                .cloned();
            Country { code, rect: shape.bounding_rect().unwrap(), shape }
        })
        .collect()
}

/// `(lon, lat, country_code)` of every place.
fn places() -> Vec<(f64, f64, String)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(root().join("data/cities.csv.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (lon, lat, code) = (col("lon"), col("lat"), col("country_code"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[lon].parse().unwrap(), rec[lat].parse().unwrap(), rec[code].to_string())
        })
        .collect()
}

#[test]
fn demo_pairs_and_agreement_match_geo() {
    let out = temp("lib");
    let options =
        Options { mode: Some(Mode::Cpu), workers: Some(2), ..Options::new(root().join("data"), &out) };
    let report = demo::run(&options).unwrap();

    let countries = countries();
    let places = places();
    assert_eq!(places.len(), 234_908);
    assert_eq!(countries.len(), 177);
    assert!(countries.iter().all(|c| c.code.is_some()), "every outline has an alpha-2 code");
    let (mut pairs, mut agree) = (Vec::new(), 0usize);
    for (row, (x, y, code)) in places.iter().enumerate() {
        let p = Point::new(*x, *y);
        let mut agrees = false;
        for (c, country) in countries.iter().enumerate() {
            if country.rect.contains(&p) && country.shape.contains(&p) {
                pairs.push((row as u32, c as u32));
                agrees |= country.code.as_deref() == Some(code.as_str());
            }
        }
        agree += usize::from(agrees);
    }

    assert_eq!(report.pairs.len(), pairs.len(), "pair count");
    assert_eq!(report.pairs, pairs);
    let a = &report.agreement;
    assert_eq!(a.places, places.len());
    assert_eq!(a.agree, agree, "places that agree with GeoNames");
    assert_eq!(a.rate(), agree as f64 / places.len() as f64);
    assert_eq!(a.agree + a.outside + a.neighbour + a.territory, a.places);
    assert!(a.rate() > 0.9, "agreement {}", a.rate());

    // The files: pairs as `row,id`, one line per country, a PNG of the advertised size.
    let text = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    assert_eq!(text.lines().count(), pairs.len() + 1);
    let text = std::fs::read_to_string(out.join("countries.csv")).unwrap();
    assert_eq!(text.lines().count(), 178);
    let png = std::fs::read(out.join("demo.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), MAP_SIZE);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn demo_command_reports_and_fails_readably() {
    let out = temp("cli");
    // Run from an empty folder: the data comes from the source tree.
    let cwd = temp("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["demo", "--mode", "cpu", "--out", out.to_str().unwrap()])
        .current_dir(&cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in
        ["backend: cpu", "United States of America", "agreement with GeoNames country_code: ", "disagree: "]
    {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    assert!(stdout.contains("points/s"), "{stdout}");
    assert!(stdout.contains(&format!("wrote {}", out.join("demo.png").display())), "{stdout}");

    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["demo", "--data", "/nonexistent/meridian-data", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: /nonexistent/meridian-data/cities.csv.gz"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&cwd);
}
