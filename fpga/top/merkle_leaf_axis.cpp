// AXI-Stream top: records in, one 32-byte digest per record out.
// mode 0 hashes the record as it is (H(data), the NIST vectors), 1 is the
// RFC 6962 leaf hash H(0x00 || data), 2 the node hash H(0x01 || data) of a
// 64-byte left || right record. The hash is chosen at compile time
// (MERKLE_HASH 0 = SHA-256, 1 = Keccak-256) so that the region is a
// canonical DATAFLOW: unpack -> pad -> [schedule ->] rounds -> pack.
#include "merkle_tops.hpp"

namespace af = autolien::fpga;

namespace {

// TKEEP (contiguous low bytes) to a byte count.
void unpack(hls::stream<Axis64>& in, hls::stream<af::RecWord>& out, af::u32 nrecords) {
rec:
    for (af::u32 r = 0; r < nrecords; ++r) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        bool last = false;
    beat:
        while (!last) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 512
            const Axis64 a = in.read();
            af::RecWord w;
            w.data = a.data;
            int k = 0;
        keep:
            for (int i = 0; i < 8; ++i)
                k += a.keep[i] ? 1 : 0;
            w.keep = k;
            w.last = a.last == 1;
            last = w.last;
            out.write(w);
        }
    }
}

void pack(hls::stream<af::Digest>& in, hls::stream<Axis256>& out, af::u32 nrecords) {
rec:
    for (af::u32 r = 0; r < nrecords; ++r) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        Axis256 a;
        a.data = in.read();
        a.last = r + 1 == nrecords ? 1 : 0;
        out.write(a);
    }
}

} // namespace

void merkle_leaf_axis(hls::stream<Axis64>& records, hls::stream<Axis256>& digests, af::u32 nrecords,
                      int mode) {
#pragma HLS INTERFACE mode = axis port = records
#pragma HLS INTERFACE mode = axis port = digests
#pragma HLS INTERFACE mode = s_axilite port = nrecords
#pragma HLS INTERFACE mode = s_axilite port = mode
#pragma HLS INTERFACE mode = s_axilite port = return
#pragma HLS DATAFLOW
    hls::stream<af::RecWord> words("leaf_words");
    hls::stream<af::Digest> out("leaf_digests");
    af::Prefix pre;
    pre.present = mode != 0;
    pre.byte = mode == 2 ? 0x01 : 0x00;
    unpack(records, words, nrecords);
#if MERKLE_HASH == 1
    af::keccak256_stream(words, out, nrecords, pre);
#else
    af::sha256_stream(words, out, nrecords, pre);
#endif
    pack(out, digests, nrecords);
}
