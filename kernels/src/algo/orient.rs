//! The orientation test, exact for every finite double.
//!
//! Shewchuk's adaptive `orient2d` (the `robust` crate) is exact only while no product it
//! forms underflows: with coordinates near 2^-540 its filter's products round to zero and it
//! answers "collinear" for points plainly off the line (a point-in-polygon join over a
//! polygon scaled by 2^-560 found no point inside). So:
//! - a floating-point filter whose error bound carries an absolute term for underflow
//!   (`f64::MIN_POSITIVE`, far above the 2^-1074 a rounded subnormal product can lose)
//!   answers almost every call;
//! - past it, when every coordinate is zero or between 2^-484 and 2^500 in magnitude, every
//!   value Shewchuk's stages form is a multiple of 2^-1072 and nothing underflows or
//!   overflows: `robust` is exact;
//! - otherwise the sign comes from the six exact products of the determinant, summed in
//!   128-bit integers ([`exact_sign`]).
//!
//! The device library (`kernels/cuda/orient.cuh`) does the same, step for step.

use super::Xy;

/// Shewchuk's error bound for the filtered `orient2d`: when |det| exceeds this times
/// (|detleft| + |detright|), plus [`UNDERFLOW_SLACK`], the floating-point sign is exact.
pub(crate) const CCW_ERR_BOUND_A: f64 = (3.0 + 16.0 * (f64::EPSILON / 2.0)) * (f64::EPSILON / 2.0);

/// The filter's absolute error term: each of its two products may lose up to 2^-1075 when
/// it rounds into the subnormal range, which a relative bound does not cover.
pub(crate) const UNDERFLOW_SLACK: f64 = f64::MIN_POSITIVE;

/// Below this magnitude a nonzero coordinate may make Shewchuk's products underflow
/// (2^-484: a double at least this large is a multiple of 2^-536, and products of two such
/// multiples are multiples of 2^-1072, which the subnormals represent exactly).
const SHEWCHUK_MIN: f64 = f64::from_bits((1023 - 484) << 52);

/// At or above this magnitude the products of differences may overflow to infinity.
const SHEWCHUK_MAX: f64 = f64::from_bits((1023 + 500) << 52);

/// The orientation of `c` relative to the directed line `a → b`: positive when `c` is to the
/// left (counter-clockwise), negative to the right, exactly zero when collinear.
///
/// The sign is exact for every finite input (only the sign is meaningful); a NaN or infinite
/// coordinate gives what the floating-point determinant gives.
#[inline]
pub fn orient(a: Xy, b: Xy, c: Xy) -> f64 {
    let detleft = (a.0 - c.0) * (b.1 - c.1);
    let detright = (a.1 - c.1) * (b.0 - c.0);
    let det = detleft - detright;
    if det.abs() > CCW_ERR_BOUND_A * (detleft.abs() + detright.abs()) + UNDERFLOW_SLACK {
        return det;
    }
    orient_slow(a, b, c)
}

#[cold]
#[inline(never)]
fn orient_slow(a: Xy, b: Xy, c: Xy) -> f64 {
    // Outside [2^-484, 2^500] (zero aside) Shewchuk's products may underflow or overflow.
    let outside = |v: f64| v != 0.0 && !(SHEWCHUK_MIN..SHEWCHUK_MAX).contains(&v.abs());
    if [a.0, a.1, b.0, b.1, c.0, c.1].into_iter().any(outside) {
        if let Some(sign) = exact_sign(a, b, c) {
            return sign;
        }
    }
    robust::orient2d(
        robust::Coord { x: a.0, y: a.1 },
        robust::Coord { x: b.0, y: b.1 },
        robust::Coord { x: c.0, y: c.1 },
    )
}

/// A finite double as `sign · m · 2^e` with `m` its integer significand (53 bits, fewer for
/// a subnormal); `None` for NaN and infinities.
fn split(v: f64) -> Option<(bool, u64, i32)> {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    match exp {
        0x7ff => None,
        0 => Some((bits >> 63 == 1, frac, -1074)),
        _ => Some((bits >> 63 == 1, frac | (1 << 52), exp - 1075)),
    }
}

/// The exact sign (-1, 0 or 1, as f64) of `orient(a, b, c)`'s determinant,
/// `ax·by − ax·cy − cx·by − ay·bx + ay·cx + cy·bx` (the `cx·cy` terms cancel), from its six
/// products, each exact as a 106-bit integer times a power of two. `None` when a coordinate
/// is not finite.
///
/// The terms are added from the largest exponent down into an `i128` scaled to the last term
/// added. Each term is below `2^(106+e)`, so the terms still to come sum below `2^(109+e)`
/// (six at most): once the running sum is that large its sign is final, and until then
/// shifting it to the next exponent keeps it below `2^109`, so nothing overflows whatever
/// the exponents (from -2148 to 1942).
pub fn exact_sign(a: Xy, b: Xy, c: Xy) -> Option<f64> {
    let pairs = [
        (a.0, b.1, false),
        (a.0, c.1, true),
        (c.0, b.1, true),
        (a.1, b.0, true),
        (a.1, c.0, false),
        (c.1, b.0, false),
    ];
    // (exponent, signed significand product), nonzero terms only.
    let mut terms = [(0i32, 0i128); 6];
    let mut n = 0;
    for (x, y, negate) in pairs {
        let (sx, mx, ex) = split(x)?;
        let (sy, my, ey) = split(y)?;
        if mx == 0 || my == 0 {
            continue;
        }
        let m = i128::from(mx) * i128::from(my);
        terms[n] = (ex + ey, if sx ^ sy ^ negate { -m } else { m });
        n += 1;
    }
    let terms = &mut terms[..n];
    terms.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
    let mut acc = 0i128;
    let mut at = 0i32;
    for &(e, m) in terms.iter() {
        if acc == 0 {
            (acc, at) = (m, e);
            continue;
        }
        let gap = (at - e) as u32;
        if gap >= 109 || acc.unsigned_abs() >= 1u128 << (109 - gap) {
            break;
        }
        acc = (acc << gap) + m;
        at = e;
    }
    Some(acc.signum() as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    /// 2^e, exactly, for every e a double has (`powi` loses the subnormal ones).
    fn pow2(e: i32) -> f64 {
        if e >= -1022 {
            f64::from_bits(((e + 1023) as u64) << 52)
        } else {
            f64::from_bits(1 << (e + 1074))
        }
    }

    fn sign(v: f64) -> f64 {
        if v == 0.0 {
            0.0
        } else {
            v.signum()
        }
    }

    #[test]
    fn the_threshold_is_two_to_the_minus_484() {
        assert_eq!(SHEWCHUK_MIN, 2f64.powi(-484));
    }

    /// Scaling every coordinate by a power of two that keeps them exact cannot change a sign.
    #[test]
    fn signs_do_not_change_when_scaled_into_the_subnormals() {
        let cases = [
            ((0.0, 0.0), (4.0, 0.0), (1.0, 1.0), 1.0),
            ((0.0, 0.0), (4.0, 0.0), (1.0, -1.0), -1.0),
            ((0.0, 0.0), (4.0, 2.0), (2.0, 1.0), 0.0),
            ((1.0, 3.0), (7.0, 5.0), (4.0, 4.0), 0.0),
            ((1.0, 3.0), (7.0, 5.0), (4.0, 5.0), 1.0),
            ((3.0, 1.0), (1.0, 7.0), (2.0, 4.0), 0.0),
            ((3.0, 1.0), (1.0, 7.0), (3.0, 4.0), -1.0),
        ];
        for (a, b, c, want) in cases {
            for e in -1074..=400 {
                let k = pow2(e);
                let s = |p: Xy| (p.0 * k, p.1 * k);
                assert_eq!(sign(orient(s(a), s(b), s(c))), want, "{a:?} {b:?} {c:?} at 2^{e}");
            }
        }
    }

    /// Mixed magnitudes: a subnormal coordinate beside ordinary ones decides the sign.
    #[test]
    fn a_subnormal_coordinate_beside_large_ones_is_not_lost() {
        let tiny = f64::from_bits(1); // 2^-1074
        assert_eq!(sign(orient((0.0, 0.0), (1e100, 0.0), (5.0, tiny))), 1.0);
        assert_eq!(sign(orient((0.0, 0.0), (1e100, 0.0), (5.0, -tiny))), -1.0);
        assert_eq!(sign(orient((0.0, 0.0), (1e100, 0.0), (5.0, 0.0))), 0.0);
        // Collinear through the origin, one point off by the smallest step there is.
        let (p, q) = ((3.0 * tiny, tiny), (1.5, 0.5));
        assert_eq!(sign(orient((0.0, 0.0), q, p)), 0.0);
        assert_eq!(sign(orient((0.0, 0.0), q, (p.0, 2.0 * tiny))), 1.0);
        assert_eq!(sign(orient((0.0, 0.0), q, (4.0 * tiny, tiny))), -1.0);
        // Robust alone gets these wrong (its products round to zero): the reason for all this.
        let r = robust::orient2d(
            robust::Coord { x: 0.0, y: 0.0 },
            robust::Coord { x: 4.0 * tiny, y: 0.0 },
            robust::Coord { x: tiny, y: tiny },
        );
        assert_eq!(r, 0.0);
        assert_eq!(sign(orient((0.0, 0.0), (4.0 * tiny, 0.0), (tiny, tiny))), 1.0);
    }

    /// Coordinates whose products overflow: the exact sign, not NaN.
    #[test]
    fn products_past_the_range_keep_their_sign() {
        let k = pow2(600);
        let (a, b, c) = ((0.0, 0.0), (k, 3.0 * k), (2.0 * k, 5.0 * k));
        assert!(((a.0 - c.0) * (b.1 - c.1)).is_infinite());
        assert_eq!(sign(orient(a, b, c)), -1.0);
        assert_eq!(sign(orient(a, c, b)), 1.0);
        assert_eq!(sign(orient(a, b, (2.0 * k, 6.0 * k))), 0.0);
    }

    /// The integer sum agrees with Shewchuk's wherever Shewchuk's is exact.
    #[test]
    fn the_exact_sign_agrees_with_robust_on_ordinary_inputs() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Small integers make collinear and near-collinear triples common.
            ((x % 64) as f64 - 32.0) * if x & (1 << 40) != 0 { 1e-3 } else { 1.0 }
        };
        for _ in 0..20_000 {
            let (a, b, c) = ((next(), next()), (next(), next()), (next(), next()));
            let r = robust::orient2d(
                robust::Coord { x: a.0, y: a.1 },
                robust::Coord { x: b.0, y: b.1 },
                robust::Coord { x: c.0, y: c.1 },
            );
            assert_eq!(exact_sign(a, b, c), Some(sign(r)), "{a:?} {b:?} {c:?}");
        }
        assert_eq!(exact_sign((f64::NAN, 0.0), (1.0, 1.0), (2.0, 2.0)), None);
    }
}
