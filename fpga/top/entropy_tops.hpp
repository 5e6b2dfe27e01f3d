// Declarations of the entropy tops (fpga/top/*_entropy_top.cpp). The
// synthesized configuration is fixed at compile time: PE_ORDER / PE_WINDOW
// and SH_BINS / SH_WINDOW (defaults below; run_hls.tcl passes them).
#pragma once

#include "autolien_fpga/entropy.hpp"

#ifndef PE_ORDER
#define PE_ORDER 5
#endif
#ifndef PE_WINDOW
#define PE_WINDOW 256
#endif
#ifndef SH_BINS
#define SH_BINS 16
#endif
#ifndef SH_WINDOW
#define SH_WINDOW 256
#endif

void perm_entropy_top(hls::stream<float>& samples, hls::stream<autolien::fpga::u64>& entropy,
                      autolien::fpga::u32 n);

void shannon_entropy_top(hls::stream<float>& samples, hls::stream<autolien::fpga::u64>& entropy,
                         autolien::fpga::u32 n, const double edges[SH_BINS + 1]);
