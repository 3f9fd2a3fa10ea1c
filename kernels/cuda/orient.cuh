// orient.cuh — the exact orientation test: Shewchuk's adaptive orient2d (a static
// floating-point filter, then expansion arithmetic only when the filter cannot decide), the
// same method as the `robust` crate the CPU kernels use. Only the sign of the result is ever
// used, and that sign is exact: never a plain `double` sign test.
#ifndef MR_ORIENT_CUH
#define MR_ORIENT_CUH

#include "math.cuh"

#define MR_EPS 0x1p-53
#define MR_SPLITTER 134217729.0
#define MR_RESULTERRBOUND ((3.0 + 8.0 * MR_EPS) * MR_EPS)
#define MR_CCWERRBOUND_A ((3.0 + 16.0 * MR_EPS) * MR_EPS)
#define MR_CCWERRBOUND_B ((2.0 + 12.0 * MR_EPS) * MR_EPS)
#define MR_CCWERRBOUND_C ((9.0 + 64.0 * MR_EPS) * MR_EPS * MR_EPS)

// x + y = s + e exactly (|a| >= |b| not required).
MR_FN void mr_two_sum(double a, double b, double& s, double& e) {
    s = a + b;
    double bv = s - a;
    double av = s - bv;
    e = (a - av) + (b - bv);
}
MR_FN void mr_fast_two_sum(double a, double b, double& s, double& e) {
    s = a + b;
    e = b - (s - a);
}
MR_FN void mr_two_diff(double a, double b, double& d, double& e) {
    d = a - b;
    double bv = a - d;
    double av = d + bv;
    e = (a - av) + (bv - b);
}
MR_FN double mr_two_diff_tail(double a, double b, double d) {
    double bv = a - d;
    double av = d + bv;
    return (a - av) + (bv - b);
}
MR_FN void mr_split(double a, double& hi, double& lo) {
    double c = MR_SPLITTER * a;
    double big = c - a;
    hi = c - big;
    lo = a - hi;
}
// a * b = p + e exactly (Dekker).
MR_FN void mr_two_product(double a, double b, double& p, double& e) {
    p = a * b;
    double ahi, alo, bhi, blo;
    mr_split(a, ahi, alo);
    mr_split(b, bhi, blo);
    double err1 = p - (ahi * bhi);
    double err2 = err1 - (alo * bhi);
    double err3 = err2 - (ahi * blo);
    e = (alo * blo) - err3;
}
// (a1 + a0) - (b1 + b0) as a four-component expansion x[0..4], least significant first.
MR_FN void mr_two_two_diff(double a1, double a0, double b1, double b0, double* x) {
    double i, j, k, z0, z1, z2;
    // Two_One_Diff(a1, a0, b0) -> j, z0, x0 ; Two_One_Diff(j, z0, b1) -> ...
    mr_two_diff(a0, b0, i, x[0]);
    mr_two_sum(a1, i, j, z0);
    mr_two_diff(z0, b1, i, x[1]);
    mr_two_sum(j, i, k, z1);
    (void)z2;
    x[2] = z1;
    x[3] = k;
}

// h = e + f with zero components removed; returns the length of h. e and f are
// nonoverlapping expansions, least significant first.
MR_FN int mr_expansion_sum(int elen, const double* e, int flen, const double* f, double* h) {
    double q, qnew, hh;
    int ei = 0, fi = 0, hi = 0;
    double enow = e[0], fnow = f[0];
    if ((fnow > enow) == (fnow > -enow)) {
        q = enow;
        ei++;
        enow = ei < elen ? e[ei] : 0.0;
    } else {
        q = fnow;
        fi++;
        fnow = fi < flen ? f[fi] : 0.0;
    }
    if (ei < elen && fi < flen) {
        if ((fnow > enow) == (fnow > -enow)) {
            mr_fast_two_sum(enow, q, qnew, hh);
            ei++;
            enow = ei < elen ? e[ei] : 0.0;
        } else {
            mr_fast_two_sum(fnow, q, qnew, hh);
            fi++;
            fnow = fi < flen ? f[fi] : 0.0;
        }
        q = qnew;
        if (hh != 0.0) h[hi++] = hh;
        while (ei < elen && fi < flen) {
            if ((fnow > enow) == (fnow > -enow)) {
                mr_two_sum(q, enow, qnew, hh);
                ei++;
                enow = ei < elen ? e[ei] : 0.0;
            } else {
                mr_two_sum(q, fnow, qnew, hh);
                fi++;
                fnow = fi < flen ? f[fi] : 0.0;
            }
            q = qnew;
            if (hh != 0.0) h[hi++] = hh;
        }
    }
    while (ei < elen) {
        mr_two_sum(q, enow, qnew, hh);
        ei++;
        enow = ei < elen ? e[ei] : 0.0;
        q = qnew;
        if (hh != 0.0) h[hi++] = hh;
    }
    while (fi < flen) {
        mr_two_sum(q, fnow, qnew, hh);
        fi++;
        fnow = fi < flen ? f[fi] : 0.0;
        q = qnew;
        if (hh != 0.0) h[hi++] = hh;
    }
    if (q != 0.0 || hi == 0) h[hi++] = q;
    return hi;
}

MR_NOINLINE double mr_orient_adapt(double ax, double ay, double bx, double by, double cx, double cy,
                                   double detsum) {
    double acx = ax - cx, bcx = bx - cx, acy = ay - cy, bcy = by - cy;
    double detleft, detlefttail, detright, detrighttail;
    mr_two_product(acx, bcy, detleft, detlefttail);
    mr_two_product(acy, bcx, detright, detrighttail);
    double b[4];
    mr_two_two_diff(detleft, detlefttail, detright, detrighttail, b);
    double det = b[0] + b[1] + b[2] + b[3];
    double errbound = MR_CCWERRBOUND_B * detsum;
    if (det >= errbound || -det >= errbound) return det;

    double acxtail = mr_two_diff_tail(ax, cx, acx);
    double bcxtail = mr_two_diff_tail(bx, cx, bcx);
    double acytail = mr_two_diff_tail(ay, cy, acy);
    double bcytail = mr_two_diff_tail(by, cy, bcy);
    if (acxtail == 0.0 && acytail == 0.0 && bcxtail == 0.0 && bcytail == 0.0) return det;

    errbound = MR_CCWERRBOUND_C * detsum + MR_RESULTERRBOUND * mr_fabs(det);
    det += (acx * bcytail + bcy * acxtail) - (acy * bcxtail + bcx * acytail);
    if (det >= errbound || -det >= errbound) return det;

    double s1, s0, t1, t0, u[4];
    double c1[8], c2[12], d[16];
    mr_two_product(acxtail, bcy, s1, s0);
    mr_two_product(acytail, bcx, t1, t0);
    mr_two_two_diff(s1, s0, t1, t0, u);
    int c1len = mr_expansion_sum(4, b, 4, u, c1);
    mr_two_product(acx, bcytail, s1, s0);
    mr_two_product(acy, bcxtail, t1, t0);
    mr_two_two_diff(s1, s0, t1, t0, u);
    int c2len = mr_expansion_sum(c1len, c1, 4, u, c2);
    mr_two_product(acxtail, bcytail, s1, s0);
    mr_two_product(acytail, bcxtail, t1, t0);
    mr_two_two_diff(s1, s0, t1, t0, u);
    int dlen = mr_expansion_sum(c2len, c2, 4, u, d);
    return d[dlen - 1];
}

// The filter's absolute error term: each of its two products may lose up to 2^-1075 when it
// rounds into the subnormals, which the relative bound does not cover (f64::MIN_POSITIVE).
#define MR_UNDERFLOW_SLACK 0x1p-1022
// Below this a nonzero coordinate may make the adaptive stages' products underflow; at or
// above it (or zero) every value they form is a multiple of 2^-1072, exactly representable.
#define MR_SHEWCHUK_MIN 0x1p-484
// At or above this the products of differences may overflow to infinity.
#define MR_SHEWCHUK_MAX 0x1p500

// Outside [2^-484, 2^500] (zero aside): Shewchuk's stages could underflow or overflow.
MR_FN bool mr_orient_outside(double v) {
    double m = mr_fabs(v);
    return v != 0.0 && !(m >= MR_SHEWCHUK_MIN && m < MR_SHEWCHUK_MAX);
}

// A finite double as sign * m * 2^e (m its integer significand); false for NaN and infinities.
MR_FN bool mr_split_f64(double v, bool& neg, u64& m, int& e) {
    u64 bits = mr_f64_bits(v);
    int exp = (int)((bits >> 52) & 0x7ff);
    u64 frac = bits & 0xfffffffffffffULL;
    neg = (bits >> 63) != 0;
    if (exp == 0x7ff) return false;
    if (exp == 0) {
        m = frac;
        e = -1074;
    } else {
        m = frac | (1ULL << 52);
        e = exp - 1075;
    }
    return true;
}

// The exact sign (-1, 0, 1) of the orientation determinant
// ax*by - ax*cy - cx*by - ay*bx + ay*cx + cy*bx from its six products, each a 106-bit integer
// times a power of two, added from the largest exponent down in 128 bits (`exact_sign` in
// kernels/src/algo/orient.rs: the terms still to come sum below 2^(109+e), so a running sum
// that large has its final sign, and one smaller stays below 2^110 when shifted). Returns
// false when a coordinate is not finite.
MR_NOINLINE bool mr_orient_exact(double ax, double ay, double bx, double by, double cx, double cy,
                                 double& sign) {
    const double xs[6] = {ax, ax, cx, ay, ay, cy};
    const double ys[6] = {by, cy, by, bx, cx, bx};
    const bool negate[6] = {false, true, true, true, false, false};
    int es[6];
    __int128 ms[6];
    int n = 0;
    for (int i = 0; i < 6; i++) {
        bool sx, sy;
        u64 mx, my;
        int ex, ey;
        if (!mr_split_f64(xs[i], sx, mx, ex) || !mr_split_f64(ys[i], sy, my, ey)) return false;
        if (mx == 0 || my == 0) continue;
        __int128 m = (__int128)((unsigned __int128)mx * (unsigned __int128)my);
        // Insertion by exponent, largest first.
        int j = n++;
        while (j > 0 && es[j - 1] < ex + ey) {
            es[j] = es[j - 1];
            ms[j] = ms[j - 1];
            j--;
        }
        es[j] = ex + ey;
        ms[j] = (sx != sy) != negate[i] ? -m : m;
    }
    __int128 acc = 0;
    int at = 0;
    for (int i = 0; i < n; i++) {
        if (acc == 0) {
            acc = ms[i];
            at = es[i];
            continue;
        }
        int gap = at - es[i];
        unsigned __int128 mag = acc < 0 ? (unsigned __int128)(-acc) : (unsigned __int128)acc;
        if (gap >= 109 || mag >= ((unsigned __int128)1 << (109 - gap))) break;
        // Shifted as unsigned: a left shift of a negative signed value is undefined in C++17.
        acc = (__int128)((unsigned __int128)acc << gap) + ms[i];
        at = es[i];
    }
    sign = acc > 0 ? 1.0 : (acc < 0 ? -1.0 : 0.0);
    return true;
}

// Positive when c is left of the directed line a → b, negative right, exactly 0 when
// collinear: exact for every finite coordinate, as `algo::orient` (a filter with an
// underflow term; Shewchuk's adaptive stages where nothing can underflow; exact integer
// products where something could).
MR_FN double mr_orient(double ax, double ay, double bx, double by, double cx, double cy) {
    double detleft = (ax - cx) * (by - cy);
    double detright = (ay - cy) * (bx - cx);
    double det = detleft - detright;
    double detsum = mr_fabs(detleft) + mr_fabs(detright);
    if (mr_fabs(det) > MR_CCWERRBOUND_A * detsum + MR_UNDERFLOW_SLACK) return det;
    if (mr_orient_outside(ax) || mr_orient_outside(ay) || mr_orient_outside(bx) || mr_orient_outside(by) ||
        mr_orient_outside(cx) || mr_orient_outside(cy)) {
        double sign;
        if (mr_orient_exact(ax, ay, bx, by, cx, cy, sign)) return sign;
    }
    // Shewchuk's own filter first (robust's orient2d does the same), then the stages.
    double errbound = MR_CCWERRBOUND_A * detsum;
    if (det >= errbound || -det >= errbound) return det;
    return mr_orient_adapt(ax, ay, bx, by, cx, cy, detsum);
}

#endif  // MR_ORIENT_CUH
