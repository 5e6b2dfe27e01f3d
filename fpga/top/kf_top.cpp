// AXI-Stream top of the fix-fusion step: one vehicle's n fixes (ENU) in, the
// filtered state per fix out; the configuration is a register block.
#include "kf_top.hpp"

void kf_top(hls::stream<autolien::fpga::KfFix>& fixes, hls::stream<autolien::fpga::KfOut>& outs,
            autolien::fpga::u32 n, const double config[autolien::fpga::kKfConfigWords]) {
#pragma HLS INTERFACE mode = axis port = fixes
#pragma HLS INTERFACE mode = axis port = outs
#pragma HLS INTERFACE mode = s_axilite port = n
#pragma HLS INTERFACE mode = s_axilite port = config
#pragma HLS INTERFACE mode = s_axilite port = return
    const autolien::fpga::KfConfig c = autolien::fpga::kf_config(config);
    autolien::fpga::kf_vehicle(fixes, outs, n, c);
}
