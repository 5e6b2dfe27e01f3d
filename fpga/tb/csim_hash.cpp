// C-simulation testbench and filter for the AXI-Stream Merkle top,
// compiled as csim_sha256 (-DTB_HASH=0) and csim_keccak256 (-DTB_HASH=1),
// each with the top built for that hash (MERKLE_HASH).
//
//   csim_sha256 [--raw | --leaf | --node] [--in F] [--out F | --check F]
//
// Input: length-prefixed records (u32 LE length, bytes); --node records are
// 64 bytes (left || right). Output: one 32-byte digest per record.
#ifndef TB_HASH
#define TB_HASH 0
#endif
#define MERKLE_HASH TB_HASH

#include "merkle_tops.hpp"
#include "tb_common.hpp"

#ifndef AUTOLIEN_FPGA_SEPARATE_TOP
#include "merkle_leaf_axis.cpp"
#endif

int main(int argc, char** argv) {
    const tb::Args a(argc, argv);
    const int mode = a.flag("--leaf") ? 1 : a.flag("--node") ? 2 : 0;
    const auto recs = tb::records(tb::read_all(a.opt("--in")));
    hls::stream<Axis64> in("tb_in");
    hls::stream<Axis256> out("tb_out");
    for (const auto& r : recs) {
        if (mode == 2 && r.size() != 64) {
            std::fprintf(stderr, "--node records must be 64 bytes (left || right), got %zu\n", r.size());
            return 2;
        }
        std::size_t p = 0;
        do {
            Axis64 w;
            w.data = 0;
            w.keep = 0;
            const std::size_t k = r.size() - p < 8 ? r.size() - p : 8;
            std::uint64_t v = 0;
            for (std::size_t i = 0; i < k; ++i) {
                v |= std::uint64_t(r[p + i]) << (8 * i);
                w.keep[i] = 1;
            }
            w.data = v;
            p += k;
            w.last = p == r.size() ? 1 : 0;
            in.write(w);
        } while (p < r.size());
    }
    merkle_leaf_axis(in, out, static_cast<autolien::fpga::u32>(recs.size()), mode);
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        const Axis256 d = out.read();
        if ((d.last == 1) != (i + 1 == recs.size())) {
            std::fprintf(stderr, "TLAST wrong on digest %zu\n", i);
            return 100;
        }
        for (int k = 0; k < 32; ++k)
            bytes.push_back(static_cast<std::uint8_t>(d.data(8 * k + 7, 8 * k)));
    }
    if (!in.empty() || !out.empty()) {
        std::fprintf(stderr, "streams not drained\n");
        return 100;
    }
    return tb::finish(a, bytes, 32, TB_HASH ? "keccak256" : "sha256");
}
