// expect: pragma
// An option name misspelled (IL for II) and HLS itself misspelled.
int bad_pragma_option(const int a[16]) {
    int s = 0;
    for (int i = 0; i < 16; ++i) {
#pragma HLS PIPELINE IL = 1
        s += a[i];
    }
#pragma HSL INLINE off
    return s;
}
