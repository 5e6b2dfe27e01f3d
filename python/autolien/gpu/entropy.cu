// Rolling permutation and Shannon entropy for many series at once, in the
// fixed-point form of kernels/entropy_fixed.hpp (bit-identical to the CPU
// core's fixed_point=True). One thread slides over one segment of one series:
// a segment starts by counting its first window, then adds and removes one
// item per sample, exactly as the CPU loop does, so the counts (and so the
// integer entropy) at every sample equal the CPU's.
#include "autolien/kernels/entropy_fixed.hpp"

using namespace autolien::kernels;

__device__ __constant__ const int kFactorial[8] = {1, 1, 2, 6, 24, 120, 720, 5040};

extern "C" __global__ void fixed_table(u64* table, u32 max_count) {
    const u32 c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c <= max_count)
        table[c] = nlog2n_fixed(c);
}

namespace {

// Lehmer code of the ordinal pattern at p (ties to the earlier sample), -1
// when it touches a NaN: the CPU's ordinal_patterns. ORDER is a template
// argument so that the comparisons unroll into registers.
template <int ORDER> __device__ int pattern(const double* __restrict__ x, long long p, int delay) {
    double v[ORDER];
    bool bad = false;
#pragma unroll
    for (int i = 0; i < ORDER; ++i) {
        v[i] = __ldg(x + p + (long long)i * delay);
        bad |= isnan(v[i]);
    }
    if (bad)
        return -1;
    int code = 0;
#pragma unroll
    for (int i = 1; i < ORDER; ++i) {
        int c = 0;
#pragma unroll
        for (int j = 0; j < i; ++j)
            c += v[j] > v[i] ? 1 : 0;
        code += c * kFactorial[i];
    }
    return code;
}

// numpy.histogram's bin of v, -1 when not counted: the CPU's bin_index.
__device__ int bin_of(double v, const double* edges, int nedges) {
    if (!(v >= edges[0] && v <= edges[nedges - 1]))
        return -1;
    int lo = 0, hi = nedges; // upper_bound
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (edges[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    const int k = lo - 1;
    return k < nedges - 2 ? k : nedges - 2;
}

// ORDER 0: the Shannon bin of x[p]; else the ordinal pattern starting at p.
template <int ORDER>
__device__ int item(const double* __restrict__ x, long long p, int delay, const double* edges, int nedges) {
    if constexpr (ORDER == 0)
        return bin_of(__ldg(x + p), edges, nedges);
    else
        return pattern<ORDER>(x, p, delay);
}

// Start (group-relative) of the window ending at t, -1 when incomplete.
__device__ long long window_start(const double* tg, long long t, long long count, double span) {
    if (tg == nullptr)
        return t + 1 >= count ? t + 1 - count : -1;
    // The first j with tg[j] > tg[t] - span: the CPU's advancing pointer.
    const double lim = tg[t] - span;
    long long lo = 0, hi = t;
    while (lo < hi) {
        const long long mid = (lo + hi) / 2;
        if (tg[mid] <= lim)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

} // namespace

// Segment s covers outputs [seg_begin[s], seg_end[s]) of group seg_group[s];
// counts is slots entries of scratch per segment (zeroed). Times are absent
// (t == nullptr) for count windows. Output: the entropy in units of 2^-32
// bits, or ~0 (all ones) where the window is incomplete or holds no item.
namespace {

template <int ORDER>
__device__ void rolling_body(const double* __restrict__ x, const double* __restrict__ t,
                             const long long* offsets, const int* seg_group, const long long* seg_begin,
                             const long long* seg_end, long long nseg, long long count, double span,
                             int delay, const double* edges, int nedges, const u64* __restrict__ table,
                             u32* counts, int slots, u64* out) {
    const long long s = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= nseg)
        return;
    const int g = seg_group[s];
    const long long g0 = offsets[g], n = offsets[g + 1] - g0;
    const double* xg = x + g0;
    const double* tg = t ? t + g0 : nullptr;
    u32* c = counts + (long long)s * slots;
    const long long span_items = ORDER == 0 ? 1 : (long long)(ORDER - 1) * delay + 1;
    const long long ncodes = n >= span_items ? n - span_items + 1 : 0;
    u64 S = 0;
    u32 total = 0;
    long long lo = 0, hi = 0;
    bool primed = false;
    for (long long tt = seg_begin[s]; tt < seg_end[s]; ++tt) {
        const long long a = window_start(tg, tt, count, span);
        if (a < 0) {
            out[g0 + tt] = ~u64(0);
            continue;
        }
        long long b = tt + 2 >= span_items ? tt + 2 - span_items : 0;
        b = b < ncodes ? b : ncodes;
        b = b > a ? b : a;
        if (!primed) {
            lo = hi = a;
            primed = true;
        }
        for (; lo < a && lo < hi; ++lo) {
            const int k = item<ORDER>(xg, lo, delay, edges, nedges);
            if (k >= 0) {
                const u32 ck = c[k];
                S -= table[ck] - table[ck - 1];
                c[k] = ck - 1;
                --total;
            }
        }
        if (lo < a)
            lo = hi = a;
        for (; hi < b; ++hi) {
            const int k = item<ORDER>(xg, hi, delay, edges, nedges);
            if (k >= 0) {
                const u32 ck = c[k];
                S += table[ck + 1] - table[ck];
                c[k] = ck + 1;
                ++total;
            }
        }
        out[g0 + tt] = total == 0 ? ~u64(0) : entropy_fixed(table[total], S, total);
    }
}

} // namespace

extern "C" __global__ void __launch_bounds__(128)
    rolling_fixed(const double* x, const double* t, const long long* offsets, const int* seg_group,
                  const long long* seg_begin, const long long* seg_end, long long nseg, long long count,
                  double span, int shannon, int order, int delay, const double* edges, int nedges,
                  const u64* table, u32* counts, int slots, u64* out) {
#define AUTOLIEN_ROLLING(K)                                                                                  \
    rolling_body<K>(x, t, offsets, seg_group, seg_begin, seg_end, nseg, count, span, delay, edges, nedges,   \
                    table, counts, slots, out)
    if (shannon) {
        AUTOLIEN_ROLLING(0);
        return;
    }
    switch (order) {
    case 2:
        AUTOLIEN_ROLLING(2);
        break;
    case 3:
        AUTOLIEN_ROLLING(3);
        break;
    case 4:
        AUTOLIEN_ROLLING(4);
        break;
    case 5:
        AUTOLIEN_ROLLING(5);
        break;
    case 6:
        AUTOLIEN_ROLLING(6);
        break;
    default:
        AUTOLIEN_ROLLING(7);
        break;
    }
#undef AUTOLIEN_ROLLING
}
