// Declarations of the Merkle tops (fpga/top/merkle_*.cpp) for the testbenches.
#pragma once

#include "autolien_fpga/hash.hpp"

#ifndef MERKLE_HASH
#define MERKLE_HASH 0 // the AXI-Stream top's hash: 0 SHA-256, 1 Keccak-256
#endif

// AXI-Stream beats: TDATA, TKEEP (contiguous low bytes) and TLAST.
struct Axis64 {
    ap_uint<64> data;
    ap_uint<8> keep;
    ap_uint<1> last;
};

struct Axis256 {
    ap_uint<256> data;
    ap_uint<1> last;
};

void merkle_leaf_axis(hls::stream<Axis64>& records, hls::stream<Axis256>& digests,
                      autolien::fpga::u32 nrecords, int mode, int hash);

int merkle_root_mm(const autolien::fpga::u8* data, const autolien::fpga::u64* offsets, autolien::fpga::u32 n,
                   int hash, autolien::fpga::Digest* root);
