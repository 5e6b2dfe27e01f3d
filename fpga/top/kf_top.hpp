// Declaration of the fix-fusion top (fpga/top/kf_top.cpp).
#pragma once

#include "autolien_fpga/kf.hpp"

void kf_top(hls::stream<autolien::fpga::KfFix>& fixes, hls::stream<autolien::fpga::KfOut>& outs,
            autolien::fpga::u32 n, const double config[autolien::fpga::kKfConfigWords]);
