// Rolling permutation and Shannon entropy for many series at once, in the
// fixed-point form of kernels/entropy_fixed.hpp (bit-identical to the CPU
// core's fixed_point=True). One warp owns one series (or one segment of a
// long series) and works on it cooperatively:
//   - the 32 lanes take 32 consecutive outputs; each finds its window and the
//     items that leave and enter it since the previous output;
//   - those remove/add events are laid out in the CPU loop's order (a warp
//     scan) and taken 32 at a time, one per lane, so the items (ordinal
//     patterns or histogram bins) are computed in parallel;
//   - lanes holding the same item find each other (__match_any_sync), so each
//     knows that item's count just before its event; the changes of
//     S = sum T(count) are summed by a warp scan, and each output reads S and
//     the total after its last event;
//   - the window's histogram lives in shared memory (global scratch when it
//     does not fit), written once per distinct item per round.
// The counts after each output are those of the CPU's window, so S and the
// integer entropy are the CPU's at every sample (mod-2^64 sums do not depend
// on the order of the events).
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

// Warp collectives, and the dynamic shared memory of the histograms; the host
// build (tests/gpu_host) supplies its own.
#ifndef AUTOLIEN_HOST_SHIM
extern __shared__ unsigned int autolien_dyn_shared[];
#endif

namespace {

constexpr unsigned kFull = 0xffffffffu;

template <typename T> __device__ T warp_inclusive_sum(T v, int lane) {
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const T o = __shfl_up_sync(kFull, v, d);
        if (lane >= d)
            v += o;
    }
    return v;
}

// Segment s covers outputs [seg_begin[s], seg_end[s]) of group seg_group[s].
// The window at output t holds the items [a_t, b_t) (a window of the CPU loop:
// both bounds never decrease); going from t-1 to t removes [a_{t-1},
// min(a_t, b_{t-1})) and adds [max(b_{t-1}, a_t), b_t), the first complete
// output of a segment adds [a_t, b_t) to an empty window.
template <int ORDER>
__device__ void rolling_warp(const double* __restrict__ x, const double* __restrict__ t,
                             const long long* offsets, const int* seg_group, const long long* seg_begin,
                             const long long* seg_end, long long s, long long count, double span, int delay,
                             const double* edges, int nedges, const u64* __restrict__ table, u32* c,
                             u64* out) {
    const int lane = threadIdx.x & 31;
    const unsigned lt_mask = (1u << lane) - 1u;
    const int g = seg_group[s];
    const long long g0 = offsets[g], n = offsets[g + 1] - g0;
    const double* xg = x + g0;
    const double* tg = t ? t + g0 : nullptr;
    const long long span_items = ORDER == 0 ? 1 : (long long)(ORDER - 1) * delay + 1;
    const long long ncodes = n >= span_items ? n - span_items + 1 : 0;
    const long long end = seg_end[s];
    // Carried from one batch of 32 outputs to the next (the same in every lane).
    u64 S = 0;
    u32 total = 0;
    bool primed = false;
    long long carry_a = 0, carry_b = 0;
    for (long long t0 = seg_begin[s]; t0 < end; t0 += 32) {
        const long long tt = t0 + lane;
        const bool active = tt < end;
        long long a = active ? window_start(tg, tt, count, span) : -1;
        const bool valid = a >= 0;
        long long b = 0;
        if (valid) {
            b = tt + 2 >= span_items ? tt + 2 - span_items : 0;
            b = b < ncodes ? b : ncodes;
            b = b > a ? b : a;
        }
        // The previous output's window: the lane below, or the carry for lane 0.
        // Incomplete windows only come before the first complete one, so a
        // valid lane whose predecessor is not valid starts from an empty window.
        long long pa = __shfl_up_sync(kFull, a, 1), pb = __shfl_up_sync(kFull, b, 1);
        bool has_prev = __shfl_up_sync(kFull, valid ? 1 : 0, 1) != 0;
        if (lane == 0) {
            pa = carry_a;
            pb = carry_b;
            has_prev = primed;
        }
        long long nrem = 0, add_lo = a, nev = 0;
        if (valid) {
            if (has_prev) {
                const long long r_hi = a < pb ? a : pb;
                nrem = r_hi > pa ? r_hi - pa : 0;
                add_lo = pb > a ? pb : a;
            } else {
                pa = a;
            }
            nev = nrem + (b - add_lo);
        }
        const long long incl = warp_inclusive_sum(nev, lane);
        const long long first = incl - nev;
        const long long nevents = __shfl_sync(kFull, incl, 31);
        // The event after which this output reads S; before the batch when < 0.
        const long long last = incl - 1;
        u64 my_S = S;
        u32 my_total = total;
        for (long long base = 0; base < nevents; base += 32) {
            const long long e = base + lane;
            // The output owning event e: the last lane whose first event <= e.
            int owner = 0;
#pragma unroll
            for (int step = 16; step >= 1; step >>= 1) {
                const long long f = __shfl_sync(kFull, first, owner + step);
                if (f <= e)
                    owner += step;
            }
            const long long o_first = __shfl_sync(kFull, first, owner);
            const long long o_nrem = __shfl_sync(kFull, nrem, owner);
            const long long o_pa = __shfl_sync(kFull, pa, owner);
            const long long o_add = __shfl_sync(kFull, add_lo, owner);
            int code = -1;
            bool adds = false;
            if (e < nevents) {
                const long long j = e - o_first;
                adds = j >= o_nrem;
                const long long idx = adds ? o_add + (j - o_nrem) : o_pa + j;
                code = item<ORDER>(xg, idx, delay, edges, nedges);
            }
            const bool counted = code >= 0;
            const unsigned same = __match_any_sync(kFull, code);
            const unsigned add_mask = __ballot_sync(kFull, counted && adds);
            const unsigned rem_mask = __ballot_sync(kFull, counted && !adds);
            u64 dS = 0;
            int dn = 0;
            u32 held = 0;
            if (counted) {
                held = c[code];
                const u32 before =
                    held + (u32)__popc(same & add_mask & lt_mask) - (u32)__popc(same & rem_mask & lt_mask);
                if (adds) {
                    dS = table[before + 1] - table[before];
                    dn = 1;
                } else {
                    dS = u64(0) - (table[before] - table[before - 1]);
                    dn = -1;
                }
            }
            __syncwarp();
            // One writer per distinct item: the highest lane holding it.
            if (counted && lane == 31 - __clz(same))
                c[code] = held + (u32)__popc(same & add_mask) - (u32)__popc(same & rem_mask);
            __syncwarp();
            const u64 S_incl = warp_inclusive_sum(dS, lane);
            const int n_incl = warp_inclusive_sum(dn, lane);
            const long long want = last - base;
            const int src = want < 0 ? 0 : (want > 31 ? 31 : (int)want);
            const u64 S_at = __shfl_sync(kFull, S_incl, src);
            const int n_at = __shfl_sync(kFull, n_incl, src);
            if (want >= 0 && want < 32) {
                my_S = S + S_at;
                my_total = total + (u32)n_at;
            }
            S += __shfl_sync(kFull, S_incl, 31);
            total += (u32)__shfl_sync(kFull, n_incl, 31);
        }
        if (active)
            out[g0 + tt] = !valid || my_total == 0 ? ~u64(0) : entropy_fixed(table[my_total], my_S, my_total);
        const unsigned valid_mask = __ballot_sync(kFull, valid);
        if (valid_mask) {
            const int hi = 31 - __clz(valid_mask);
            carry_a = __shfl_sync(kFull, a, hi);
            carry_b = __shfl_sync(kFull, b, hi);
            primed = true;
        }
    }
}

} // namespace

// Warp w of block k takes segment k * (blockDim.x / 32) + w. counts: slots
// zeroed 32-bit words per segment, used when shared == 0; else each warp keeps
// its slots in dynamic shared memory (blockDim.x / 32 * slots words). Times
// are absent (t == nullptr) for count windows. Output: the entropy in units of
// 2^-32 bits, or ~0 (all ones) where the window is incomplete or holds no item.
extern "C" __global__ void __launch_bounds__(128)
    rolling_fixed(const double* x, const double* t, const long long* offsets, const int* seg_group,
                  const long long* seg_begin, const long long* seg_end, long long nseg, long long count,
                  double span, int shannon, int order, int delay, const double* edges, int nedges,
                  const u64* table, u32* counts, int slots, int shared, u64* out) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long s = (long long)blockIdx.x * (blockDim.x >> 5) + warp;
    if (s >= nseg)
        return; // the whole warp: no collective is left half-joined
    u32* c = shared ? autolien_dyn_shared + warp * slots : counts + s * slots;
    if (shared) {
        for (int i = lane; i < slots; i += 32)
            c[i] = 0;
        __syncwarp();
    }
#define AUTOLIEN_ROLLING(K)                                                                                  \
    rolling_warp<K>(x, t, offsets, seg_group, seg_begin, seg_end, s, count, span, delay, edges, nedges,      \
                    table, c, out)
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
