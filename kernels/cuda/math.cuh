// math.cuh — scalar helpers with exactly the semantics of the Rust code they stand in for.
//
// Both builds compile with floating-point contraction off (NVRTC `--fmad=false`, g++
// `-ffp-contract=off`), so every `a * b + c` here rounds twice, as in Rust: the same
// sequence of IEEE operations gives the same bits on the CPU, in the host build and on
// the device.
#ifndef MR_MATH_CUH
#define MR_MATH_CUH

#include "platform.cuh"

#define MR_INF (mr_bits_f64(0x7ff0000000000000ULL))
#define MR_NAN (mr_bits_f64(0x7ff8000000000000ULL))

MR_FN bool mr_isnan(double x) {
    u64 b = mr_f64_bits(x);
    return ((b >> 52) & 0x7ff) == 0x7ff && (b & 0xfffffffffffffULL) != 0;
}
MR_FN bool mr_isfinite(double x) { return ((mr_f64_bits(x) >> 52) & 0x7ff) != 0x7ff; }
MR_FN bool mr_signbit(double x) { return (mr_f64_bits(x) >> 63) != 0; }

// Rust's f64::min / f64::max: a NaN operand gives the other operand.
MR_FN double mr_min(double a, double b) {
    if (mr_isnan(a)) return b;
    if (mr_isnan(b)) return a;
    return b < a ? b : a;
}
MR_FN double mr_max(double a, double b) {
    if (mr_isnan(a)) return b;
    if (mr_isnan(b)) return a;
    return b > a ? b : a;
}
// Rust's f64::clamp for a non-NaN range.
MR_FN double mr_clamp(double x, double lo, double hi) {
    if (x < lo) x = lo;
    if (x > hi) x = hi;
    return x;
}

// Rust's `x as usize` (saturating): NaN and negatives give 0, values past the range the max.
MR_FN u64 mr_sat_u64(double x) {
    if (mr_isnan(x) || x <= 0.0) return 0;
    if (x >= 18446744073709551616.0) return ~0ULL;
    return (u64)x;
}

// Rust's f64::total_cmp: -1, 0, 1.
MR_FN int mr_total_cmp(double a, double b) {
    i64 x = (i64)mr_f64_bits(a);
    i64 y = (i64)mr_f64_bits(b);
    x ^= (i64)(((u64)(x >> 63)) >> 1);
    y ^= (i64)(((u64)(y >> 63)) >> 1);
    return x < y ? -1 : (x > y ? 1 : 0);
}

// sqrt(x² + y²): the same operations as `meridian_kernels::algo::hypot`, scaled by powers of
// two (exact) when the squares would overflow or lose precision.
MR_FN double mr_hypot(double x, double y) {
    x = mr_fabs(x);
    y = mr_fabs(y);
    if (x == MR_INF || y == MR_INF) return MR_INF;
    if (mr_isnan(x) || mr_isnan(y)) return MR_NAN;
    double m = x > y ? x : y;
    const double big = 0x1p500, small = 0x1p-500;
    if (m > big) {
        double a = x * 0x1p-600, b = y * 0x1p-600;
        return mr_sqrt(a * a + b * b) * 0x1p600;
    }
    if (m < small) {
        double a = x * 0x1p600, b = y * 0x1p600;
        return mr_sqrt(a * a + b * b) * 0x1p-600;
    }
    return mr_sqrt(x * x + y * y);
}

#endif  // MR_MATH_CUH
