// Rolling permutation entropy and windowed Shannon entropy, one sample per
// cycle, in the fixed-point form of the core's fixed_point=True
// (cpp/include/autolien/kernels/entropy_fixed.hpp): integer counts, the
// running sum S of T(count) from the generated c*log2(c) table, and
// H = floor((T(n) - S) / n) in units of 2^-32 bits. The outputs equal the
// core's bit for bit; |H - exact| < 2^-31 bits (the header's bound).
//
// Window semantics are the core's rolling_*_entropy with a sample-count
// window W: the value at sample t covers samples (t - W, t]; permutation
// entropy counts the ordinal patterns (delay 1) wholly inside it, Shannon
// entropy the samples that fall in a bin. The first W - 1 outputs and windows
// with nothing counted are kNoValue (the core's NaN). A pattern touching a
// NaN, and a sample outside the edges or NaN, is not counted.
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include "autolien/kernels/entropy_fixed.hpp"
#include "autolien_fpga/nlog2n_table.hpp"

namespace autolien::fpga {

using kernels::u32;
using kernels::u64;

constexpr u64 kNoValue = ~u64(0);

// An item per sample: a slot (pattern code or bin), kSkip when the sample
// brings no item into the window (the first order - 1 samples of the
// permutation entropy), kUncounted when it brings one that is not counted.
typedef ap_int<16> Item;
constexpr int kSkip = -2;
constexpr int kUncounted = -1;

constexpr bool is_pow2(int w) {
    return w > 0 && (w & (w - 1)) == 0;
}

constexpr int factorial(int n) {
    int f = 1;
    for (int i = 2; i <= 7; ++i)
        f *= i <= n ? i : 1;
    return f;
}

// Counts over the last DEPTH items and the entropy of the window of WINDOW
// samples at each sample. The ring holds the items in the window; the one
// that leaves is read before the new one overwrites it.
template <int SLOTS, int DEPTH, int WINDOW>
void slide_entropy(hls::stream<Item>& items, hls::stream<u64>& out, u32 n) {
    static_assert(DEPTH >= 1 && DEPTH <= WINDOW && WINDOW <= kNlog2nMax, "window within the table");
    u32 counts[SLOTS];
#pragma HLS ARRAY_PARTITION variable = counts complete
    Item ring[DEPTH];
clear_counts:
    for (int i = 0; i < SLOTS; ++i)
        counts[i] = 0;
clear_ring:
    for (int i = 0; i < DEPTH; ++i)
        ring[i] = kUncounted;
    u64 s = 0;
    u32 total = 0;
    int ptr = 0;
sample:
    for (u32 t = 0; t < n; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1024 max = 1048576
#pragma HLS DEPENDENCE variable = ring inter false
        const Item k = items.read();
        if (k != kSkip) {
            const Item old = ring[ptr];
            ring[ptr] = k;
            ptr = ptr == DEPTH - 1 ? 0 : ptr + 1;
            if (old >= 0) {
                const u32 c = counts[old];
                s -= kNlog2n[c] - kNlog2n[c - 1];
                counts[old] = c - 1;
                --total;
            }
            if (k >= 0) {
                const u32 c = counts[k];
                s += kNlog2n[c + 1] - kNlog2n[c];
                counts[k] = c + 1;
                ++total;
            }
        }
        const bool full = t + 1 >= u32(WINDOW);
        out.write(full && total > 0 ? kernels::entropy_fixed(kNlog2n[total], s, total) : kNoValue);
    }
}

// Lehmer code of the ordinal pattern of the last ORDER samples (ties to the
// earlier sample, as the core), from a shift register of samples.
template <int ORDER> void perm_patterns(hls::stream<float>& in, hls::stream<Item>& items, u32 n) {
    float v[ORDER];
#pragma HLS ARRAY_PARTITION variable = v complete
    bool nan[ORDER];
#pragma HLS ARRAY_PARTITION variable = nan complete
clear:
    for (int i = 0; i < ORDER; ++i) {
        v[i] = 0;
        nan[i] = false;
    }
sample:
    for (u32 t = 0; t < n; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1024 max = 1048576
    shift:
        for (int i = 0; i < ORDER - 1; ++i) {
            v[i] = v[i + 1];
            nan[i] = nan[i + 1];
        }
        const float x = in.read();
        v[ORDER - 1] = x;
        nan[ORDER - 1] = x != x;
        bool bad = false;
        int code = 0;
    rank:
        for (int i = 0; i < ORDER; ++i) {
            bad = bad || nan[i];
            int c = 0;
        earlier:
            for (int j = 0; j < ORDER; ++j)
                c += (j < i && v[j] > v[i]) ? 1 : 0;
            code += c * factorial(i);
        }
        items.write(t + 1 < u32(ORDER) ? Item(kSkip) : bad ? Item(kUncounted) : Item(code));
    }
}

template <int ORDER, int WINDOW>
void perm_entropy_kernel(hls::stream<float>& in, hls::stream<u64>& out, u32 n) {
    static_assert(ORDER >= 3 && ORDER <= 5, "orders 3 to 5");
    static_assert(is_pow2(WINDOW) && WINDOW >= 2 * ORDER, "a power-of-two window of a few patterns");
#pragma HLS DATAFLOW
    hls::stream<Item> items("perm_items");
    perm_patterns<ORDER>(in, items, n);
    slide_entropy<factorial(ORDER), WINDOW - ORDER + 1, WINDOW>(items, out, n);
}

// numpy.histogram's bin of x for BINS bins on the ascending edges[0..BINS]:
// the count of edges <= x, less one, the last edge closing the last bin;
// kUncounted outside [edges[0], edges[BINS]] or for NaN. All compares in
// parallel, so one sample per cycle.
template <int BINS>
void shannon_bins(hls::stream<float>& in, hls::stream<Item>& items, u32 n, const double edges[BINS + 1]) {
sample:
    for (u32 t = 0; t < n; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1024 max = 1048576
        const double x = in.read();
        int le = 0;
    edge:
        for (int j = 0; j <= BINS; ++j)
            le += edges[j] <= x ? 1 : 0;
        const bool inside = x >= edges[0] && x <= edges[BINS];
        const int k = le - 1 < BINS - 1 ? le - 1 : BINS - 1;
        items.write(inside ? Item(k) : Item(kUncounted));
    }
}

template <int BINS, int WINDOW>
void shannon_entropy_kernel(hls::stream<float>& in, hls::stream<u64>& out, u32 n,
                            const double edges[BINS + 1]) {
    static_assert(is_pow2(WINDOW) && BINS >= 1 && BINS <= 256, "a power-of-two window, 1 to 256 bins");
#pragma HLS DATAFLOW
    hls::stream<Item> items("shannon_items");
    shannon_bins<BINS>(in, items, n, edges);
    slide_entropy<BINS, WINDOW, WINDOW>(items, out, n);
}

} // namespace autolien::fpga
