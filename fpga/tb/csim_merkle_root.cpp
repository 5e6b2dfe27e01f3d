// C-simulation testbench and filter for the m_axi Merkle-root top.
//
//   csim_merkle_root [--hash sha256|keccak256] [--batch N] [--in F] [--out F | --check F]
//
// Input: length-prefixed records. Output: the RFC 6962 root of each
// consecutive batch of N records (default: all records, one root), 32 bytes
// each; a final short batch gets its own root.
#include "merkle_tops.hpp"
#include "tb_common.hpp"

#ifndef AUTOLIEN_FPGA_SEPARATE_TOP
#include "merkle_root_mm.cpp"
#endif

int main(int argc, char** argv) {
    const tb::Args a(argc, argv);
    const std::string h = a.opt("--hash", "sha256");
    if (h != "sha256" && h != "keccak256") {
        std::fprintf(stderr, "--hash is sha256 or keccak256, got %s\n", h.c_str());
        return 2;
    }
    const auto recs = tb::records(tb::read_all(a.opt("--in")));
    const long batch = a.num("--batch", static_cast<long>(recs.size()));
    if (batch < 0 || batch > autolien::fpga::kMaxBatch) {
        std::fprintf(stderr, "--batch must be 0..%d\n", autolien::fpga::kMaxBatch);
        return 2;
    }
    std::vector<std::uint8_t> bytes;
    std::size_t first = 0;
    do {
        const std::size_t n = batch == 0 ? 0 : std::min(recs.size() - first, static_cast<std::size_t>(batch));
        std::vector<autolien::fpga::u8> data;
        std::vector<autolien::fpga::u64> offsets{0};
        for (std::size_t i = first; i < first + n; ++i) {
            data.insert(data.end(), recs[i].begin(), recs[i].end());
            offsets.push_back(data.size());
        }
        data.push_back(0); // a valid pointer when every record is empty
        autolien::fpga::Digest root = 0;
        if (merkle_root_mm(data.data(), offsets.data(), static_cast<autolien::fpga::u32>(n), h == "keccak256",
                           &root) != 0) {
            std::fprintf(stderr, "batch refused\n");
            return 100;
        }
        for (int k = 0; k < 32; ++k)
            bytes.push_back(static_cast<std::uint8_t>(root(8 * k + 7, 8 * k)));
        first += n;
    } while (first < recs.size() && batch > 0);
    return tb::finish(a, bytes, 32, "merkle_root");
}
