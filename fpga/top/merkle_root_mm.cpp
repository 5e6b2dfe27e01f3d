// Memory-mapped top: n records (bytes data[offsets[i] .. offsets[i+1]) over
// m_axi) are leaf-hashed and reduced to the RFC 6962 root MTH(D[0:n]), which
// is written to root (byte k in bits [8k+7:8k]). n = 0 gives H(""), the empty
// tree's root; n > kMaxBatch is refused (status 1, root untouched).
// hash 0 = SHA-256, 1 = Keccak-256.
#include "merkle_tops.hpp"

namespace af = autolien::fpga;

namespace {

// Bytes from memory, eight per beat, one byte per cycle (the hasher's rate).
void read_records(const af::u8* data, const af::u64* offsets, af::u32 n, hls::stream<af::RecWord>& out) {
rec:
    for (af::u32 r = 0; r < n; ++r) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        const af::u64 begin = offsets[r], end = offsets[r + 1];
        af::RecWord w;
        w.data = 0;
        w.keep = 0;
        w.last = false;
        if (begin >= end) {
            w.last = true;
            out.write(w);
        }
    byte:
        for (af::u64 p = begin; p < end; ++p) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 4096
            w.data |= ap_uint<64>(data[p]) << (8 * w.keep);
            w.keep = w.keep + 1;
            w.last = p + 1 == end;
            if (w.keep == 8 || w.last) {
                out.write(w);
                w.data = 0;
                w.keep = 0;
            }
        }
    }
}

void store(hls::stream<af::Digest>& in, af::Digest leaves[af::kMaxBatch], af::u32 n) {
leaf:
    for (af::u32 i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        leaves[i] = in.read();
    }
}

void hash_leaves(const af::u8* data, const af::u64* offsets, af::u32 n, int hash,
                 af::Digest leaves[af::kMaxBatch]) {
#pragma HLS DATAFLOW
    hls::stream<af::RecWord> words("root_words");
    hls::stream<af::Digest> out("root_leaves");
    af::Prefix pre;
    pre.present = true;
    pre.byte = 0x00;
    read_records(data, offsets, n, words);
    af::hash_stream(words, out, n, pre, hash);
    store(out, leaves, n);
}

} // namespace

int merkle_root_mm(const af::u8* data, const af::u64* offsets, af::u32 n, int hash, af::Digest* root) {
#pragma HLS INTERFACE mode = m_axi port = data offset = slave bundle = gmem0 depth = 65536
#pragma HLS INTERFACE mode = m_axi port = offsets offset = slave bundle = gmem1 depth = 1025
#pragma HLS INTERFACE mode = s_axilite port = n
#pragma HLS INTERFACE mode = s_axilite port = hash
#pragma HLS INTERFACE mode = s_axilite port = root
#pragma HLS INTERFACE mode = s_axilite port = return
    if (n > af::u32(af::kMaxBatch))
        return 1;
    if (n == 0) {
        hls::stream<af::RecWord> in("empty_in");
        hls::stream<af::Digest> out("empty_out");
        af::RecWord w;
        w.data = 0;
        w.keep = 0;
        w.last = true;
        in.write(w);
        af::Prefix none;
        none.present = false;
        none.byte = 0;
        af::hash_stream(in, out, 1, none, hash);
        *root = out.read();
        return 0;
    }
    static af::Digest leaves[af::kMaxBatch];
#pragma HLS BIND_STORAGE variable = leaves type = ram_2p impl = bram
    hash_leaves(data, offsets, n, hash, leaves);
    *root = af::merkle_reduce(leaves, int(n), hash);
    return 0;
}
