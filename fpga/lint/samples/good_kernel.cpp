// expect: none
// A clean kernel: constant bounds, a data-dependent loop with its trip
// count, correct pragmas, no recursion.
#include <ap_int.h>

constexpr int kLanes = 8;

template <int N> int sum_fixed(const int a[N]) {
    int s = 0;
lanes:
    for (int i = 0; i < N - 1; ++i) {
#pragma HLS UNROLL
        s += a[i];
    }
    return s;
}

int good_kernel(const int a[kLanes], int n, ap_uint<8> b) {
#pragma HLS INTERFACE mode = s_axilite port = n
#pragma HLS ARRAY_PARTITION variable = a complete
    int s = sum_fixed<kLanes>(a);
loop:
    for (int i = 0; i < n; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
#pragma HLS PIPELINE II = 1
        s += int(b) * i;
    }
    return s;
}
