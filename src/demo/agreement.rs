//! How far the join agrees with GeoNames' own country codes, and why it does not elsewhere.

use std::collections::{HashMap, HashSet};

use super::group;

/// The join against GeoNames' `country_code`, place by place.
///
/// Every place falls in exactly one class: it **agrees** (an outline it is in has its
/// code), is **outside** every outline, sits in a **neighbour**'s outline (its code has an
/// outline, but not the one it is in), or carries a **territory** code that no outline has
/// (Hong Kong's `HK` inside China's outline, French Guiana's `GF` inside France's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// All places.
    pub places: usize,
    /// Places in an outline with their own code.
    pub agree: usize,
    /// Places in no outline.
    pub outside: usize,
    /// Places in the outline of a different country that has an outline of its own.
    pub neighbour: usize,
    /// Places whose code has no outline, found in some other country's outline.
    pub territory: usize,
    /// The territory codes, most places first.
    pub territories: Vec<Territory>,
}

/// A code that has no outline of its own, and where its places landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Territory {
    /// GeoNames' code.
    pub code: String,
    /// Its places that fell in some outline.
    pub places: usize,
    /// The outline most of them fell in.
    pub within: String,
}

impl Agreement {
    /// Classifies every place. `pairs` are `(place, country)` rows sorted by place, as the
    /// join returns them; `country_codes` and `country_names` are per country row.
    pub fn compute(
        place_codes: &[String],
        country_codes: &[Option<String>],
        pairs: &[(u32, u32)],
        country_names: &[String],
    ) -> Agreement {
        let outlined: HashSet<&str> = country_codes.iter().flatten().map(String::as_str).collect();
        let mut a = Agreement {
            places: place_codes.len(),
            agree: 0,
            outside: 0,
            neighbour: 0,
            territory: 0,
            territories: Vec::new(),
        };
        // code -> (places, country row -> places)
        let mut landed: HashMap<&str, (usize, HashMap<u32, usize>)> = HashMap::new();
        let mut rest = pairs;
        for (place, code) in place_codes.iter().enumerate() {
            let n = rest.iter().take_while(|(p, _)| *p as usize == place).count();
            let (hits, tail) = rest.split_at(n);
            rest = tail;
            let code = code.as_str();
            if hits.iter().any(|&(_, c)| country_codes[c as usize].as_deref() == Some(code)) {
                a.agree += 1;
            } else if hits.is_empty() {
                a.outside += 1;
            } else if outlined.contains(code) {
                a.neighbour += 1;
            } else {
                a.territory += 1;
                let entry = landed.entry(code).or_default();
                entry.0 += 1;
                *entry.1.entry(hits[0].1).or_default() += 1;
            }
        }
        let mut territories: Vec<Territory> = landed
            .into_iter()
            .map(|(code, (places, within))| {
                let (row, _) =
                    within.into_iter().max_by_key(|&(row, n)| (n, std::cmp::Reverse(row))).unwrap_or((0, 0));
                Territory {
                    code: if code.is_empty() { "(none)".into() } else { code.to_string() },
                    places,
                    within: country_names.get(row as usize).cloned().unwrap_or_default(),
                }
            })
            .collect();
        territories.sort_by(|x, y| y.places.cmp(&x.places).then_with(|| x.code.cmp(&y.code)));
        a.territories = territories;
        a
    }

    /// The share of places that agree, in 0..=1 (1 for no places).
    pub fn rate(&self) -> f64 {
        if self.places == 0 {
            1.0
        } else {
            self.agree as f64 / self.places as f64
        }
    }

    /// One line on what disagrees and why.
    pub fn explanation(&self) -> String {
        let top: Vec<String> = self
            .territories
            .iter()
            .take(3)
            .map(|t| format!("{} in {} ×{}", t.code, t.within, group(t.places as u64)))
            .collect();
        format!(
            "disagree: {} outside every 1:110m outline (coastal places and small islands the coarse outlines \
             cut off), {} in a neighbour's outline (border places), {} coded as territories without an \
             outline of their own ({})",
            group(self.outside as u64),
            group(self.neighbour as u64),
            group(self.territory as u64),
            if top.is_empty() { "none".to_string() } else { top.join(", ") }
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn every_place_lands_in_one_class() {
        let codes: Vec<String> = ["FR", "FR", "DE", "GF", "HK", "ES"].iter().map(|s| s.to_string()).collect();
        let countries = vec![Some("FR".to_string()), Some("DE".to_string()), Some("CN".to_string())];
        let names: Vec<String> = ["France", "Germany", "China"].iter().map(|s| s.to_string()).collect();
        // FR in France; FR in Germany (border); DE in Germany and France (overlap); GF in
        // France; HK in China; ES nowhere.
        let pairs = [(0, 0), (1, 1), (2, 0), (2, 1), (3, 0), (4, 2)];
        let a = Agreement::compute(&codes, &countries, &pairs, &names);
        assert_eq!((a.places, a.agree, a.outside, a.neighbour, a.territory), (6, 2, 1, 1, 2));
        assert_eq!(a.agree + a.outside + a.neighbour + a.territory, a.places);
        assert_eq!(a.territories[0], Territory { code: "GF".into(), places: 1, within: "France".into() });
        assert_eq!(a.territories[1].within, "China");
        assert!((a.rate() - 2.0 / 6.0).abs() < 1e-12);
        assert!(a.explanation().contains("GF in France ×1"), "{}", a.explanation());
    }

    #[test]
    fn no_places_is_full_agreement() {
        let a = Agreement::compute(&[], &[], &[], &[]);
        assert_eq!(a.rate(), 1.0);
        assert!(a.explanation().ends_with("(none)"));
    }
}
