// expect: loop-bound
// A data-dependent bound without LOOP_TRIPCOUNT: no latency estimate.
int bad_loop_bound(const int a[64], int n) {
    int s = 0;
    for (int i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
        s += a[i & 63];
    }
    return s;
}
