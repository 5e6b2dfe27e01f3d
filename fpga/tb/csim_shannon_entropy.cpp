// C-simulation testbench and filter for the windowed Shannon entropy.
//
//   csim_shannon_entropy --window W --edges EDGES [--in F] [--out F | --check F]
//
// EDGES: SH_BINS + 1 ascending float64 values (native little-endian), e.g.
// autolien.entropy.histogram_edges(x, 16). Input: float32 samples. Output:
// one u64 LE per sample (units of 2^-32 bits, ~0 where there is none).
#include "csim_entropy_common.hpp"
#include "entropy_tops.hpp"

#ifndef AUTOLIEN_FPGA_SEPARATE_TOP
#include "shannon_entropy_top.cpp"
#endif

namespace {

struct Run {
    const tb::Args& a;
    const std::vector<float>& x;
    const double* edges;
    template <int W> int operator()() const {
        hls::stream<float> in("tb_in");
        hls::stream<autolien::fpga::u64> out("tb_out");
        for (float v : x)
            in.write(v);
        const auto n = static_cast<autolien::fpga::u32>(x.size());
        if (W == SH_WINDOW)
            shannon_entropy_top(in, out, n, edges);
        else
            autolien::fpga::shannon_entropy_kernel<SH_BINS, W>(in, out, n, edges);
        return tb::finish(a, tb::drain_u64(out, x.size()), 8, "shannon_entropy");
    }
};

} // namespace

int main(int argc, char** argv) {
    const tb::Args a(argc, argv);
    const long window = a.num("--window", SH_WINDOW);
    const auto eb = tb::read_all(a.opt("--edges"));
    if (a.opt("--edges").empty() || eb.size() != 8 * (SH_BINS + 1)) {
        std::fprintf(stderr, "--edges needs a file of %d float64 edges\n", SH_BINS + 1);
        return 2;
    }
    double edges[SH_BINS + 1];
    std::memcpy(edges, eb.data(), eb.size());
    for (int i = 0; i < SH_BINS; ++i)
        if (!(edges[i] <= edges[i + 1])) {
            std::fprintf(stderr, "edges must be ascending\n");
            return 2;
        }
    const auto x = tb::floats(tb::read_all(a.opt("--in")));
    return tb::with_window(window, Run{a, x, edges});
}
