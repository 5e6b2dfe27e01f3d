// expect: pragma
// PIPELINE misspelled: g++ accepts it silently, Vitis ignores it with a
// warning and the loop is not pipelined.
int bad_pragma_keyword(const int a[16]) {
    int s = 0;
    for (int i = 0; i < 16; ++i) {
#pragma HLS PIPELNE II = 1
        s += a[i];
    }
    return s;
}
