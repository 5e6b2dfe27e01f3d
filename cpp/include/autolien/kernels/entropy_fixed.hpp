// Fixed-point entropy of a multiset of counts, bit-identical wherever it is
// compiled (CPU core, CUDA, FPGA): only integer arithmetic.
//
//   T(c) = round(c * log2(c) * 2^32)            (the c*log2(c) table)
//   S    = sum over slots of T(count)            (kept under add/remove)
//   H    = floor((T(n) - S) / n)  in units of 2^-32 bits, n = sum of counts
//
// H = log2(n) - S/n is the Shannon entropy in bits. log2 is computed by the
// bit-by-bit squaring method on a Q2.62 mantissa (58 fraction bits), so the
// table can be built on the device by the same function. Error bound against
// the exact entropy, for n <= kEntropyMaxCount: each T carries at most
// 0.5 unit of rounding plus c * 2^-24 units from log2 (|error| < 2^-56 in
// log2, times 2^32), only slots with c >= 2 contribute a rounded term (at most
// n/2 of them), and the floor loses less than one unit, so
//   |H - H_exact| < (0.5 (n/2 + 1) + 2 n 2^-24) / n + 1  < 2  units = 2^-31 bits
// (docs/gpu.md states it; tests check 2^-30 against the double measure).
#pragma once

#include "autolien/kernels/config.hpp"

namespace autolien::kernels {

inline constexpr int kEntropyFracBits = 32;
// Largest count (window length) the 64-bit sums hold: T(2^24) < 2^61.
inline constexpr u32 kEntropyMaxCount = 1u << 24;

// High and low words of a 64 x 64 -> 128-bit product, from 32-bit halves.
AUTOLIEN_HD void mul_64x64(u64 a, u64 b, u64& hi, u64& lo) {
    const u64 a0 = a & 0xffffffffu, a1 = a >> 32, b0 = b & 0xffffffffu, b1 = b >> 32;
    const u64 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const u64 mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
    lo = (mid << 32) | (p00 & 0xffffffffu);
    hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

// log2(n) in Q6.58 (n >= 1), truncated.
AUTOLIEN_HD u64 log2_fixed(u32 n) {
    int k = 0;
    for (int b = 31; b >= 1; --b)
        if (k == 0 && (n >> b) != 0)
            k = b;
    // Mantissa n / 2^k in [1, 2) as Q2.62.
    u64 m = u64(n) << (62 - k);
    u64 frac = 0;
    for (int i = 0; i < 58; ++i) {
        u64 hi = 0, lo = 0;
        mul_64x64(m, m, hi, lo);
        m = (hi << 2) | (lo >> 62); // m^2 back in Q2.62, value in [1, 4)
        frac <<= 1;
        if (m >> 63) { // >= 2: this fraction bit is 1
            frac |= 1u;
            m >>= 1;
        }
    }
    return (u64(k) << 58) | frac;
}

// T(c) = round(c * log2(c) * 2^32); T(0) = T(1) = 0. c <= kEntropyMaxCount.
AUTOLIEN_HD u64 nlog2n_fixed(u32 c) {
    if (c < 2)
        return 0;
    u64 hi = 0, lo = 0;
    mul_64x64(u64(c), log2_fixed(c), hi, lo); // Q.58
    // Round to Q.32: add half a unit (bit 25), carry into hi, shift by 26.
    const u64 half = u64(1) << 25;
    const u64 lo2 = lo + half;
    hi += lo2 < lo ? 1u : 0u;
    return (hi << 38) | (lo2 >> 26);
}

// The entropy in units of 2^-32 bits from the running sum S of T(count) over
// the slots and the total n = sum of counts; 0 when n == 0 (the caller marks
// an empty window).
AUTOLIEN_HD u64 entropy_fixed(u64 t_of_n, u64 s, u32 n) {
    if (n == 0 || s >= t_of_n)
        return 0;
    return (t_of_n - s) / u64(n);
}

} // namespace autolien::kernels
