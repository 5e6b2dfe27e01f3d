// AXI-Stream top of the rolling permutation entropy: float32 samples in, one
// 64-bit fixed-point entropy (units of 2^-32 bits, ~0 = none) out per sample.
#include "entropy_tops.hpp"

void perm_entropy_top(hls::stream<float>& samples, hls::stream<autolien::fpga::u64>& entropy,
                      autolien::fpga::u32 n) {
#pragma HLS INTERFACE mode = axis port = samples
#pragma HLS INTERFACE mode = axis port = entropy
#pragma HLS INTERFACE mode = s_axilite port = n
#pragma HLS INTERFACE mode = s_axilite port = return
    autolien::fpga::perm_entropy_kernel<PE_ORDER, PE_WINDOW>(samples, entropy, n);
}
