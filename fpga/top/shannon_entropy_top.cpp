// AXI-Stream top of the windowed Shannon entropy over SH_BINS bins: float32
// samples in, one 64-bit fixed-point entropy out per sample; the bin edges
// (float64, ascending, as numpy.histogram's) are registers.
#include "entropy_tops.hpp"

void shannon_entropy_top(hls::stream<float>& samples, hls::stream<autolien::fpga::u64>& entropy,
                         autolien::fpga::u32 n, const double edges[SH_BINS + 1]) {
#pragma HLS INTERFACE mode = axis port = samples
#pragma HLS INTERFACE mode = axis port = entropy
#pragma HLS INTERFACE mode = s_axilite port = n
#pragma HLS INTERFACE mode = s_axilite port = edges
#pragma HLS INTERFACE mode = s_axilite port = return
#pragma HLS ARRAY_PARTITION variable = edges complete
    autolien::fpga::shannon_entropy_kernel<SH_BINS, SH_WINDOW>(samples, entropy, n, edges);
}
