// C-simulation testbench and filter for the rolling permutation entropy.
//
//   csim_perm_entropy --order 3|4|5 --window W [--in F] [--out F | --check F]
//
// Input: float32 samples (native little-endian). Output: one u64 LE per
// sample, the entropy in units of 2^-32 bits, ~0 where there is none. The
// synthesized configuration (PE_ORDER, PE_WINDOW) runs through the top
// itself, the others through the same kernel template.
#include "csim_entropy_common.hpp"
#include "entropy_tops.hpp"

#ifndef AUTOLIEN_FPGA_SEPARATE_TOP
#include "perm_entropy_top.cpp"
#endif

namespace {

template <int O> struct Run {
    const tb::Args& a;
    const std::vector<float>& x;
    template <int W> int operator()() const {
        hls::stream<float> in("tb_in");
        hls::stream<autolien::fpga::u64> out("tb_out");
        for (float v : x)
            in.write(v);
        const auto n = static_cast<autolien::fpga::u32>(x.size());
        if (O == PE_ORDER && W == PE_WINDOW)
            perm_entropy_top(in, out, n);
        else
            autolien::fpga::perm_entropy_kernel<O, W>(in, out, n);
        return tb::finish(a, tb::drain_u64(out, x.size()), 8, "perm_entropy");
    }
};

} // namespace

int main(int argc, char** argv) {
    const tb::Args a(argc, argv);
    const long order = a.num("--order", PE_ORDER), window = a.num("--window", PE_WINDOW);
    const auto x = tb::floats(tb::read_all(a.opt("--in")));
    switch (order) {
    case 3:
        return tb::with_window(window, Run<3>{a, x});
    case 4:
        return tb::with_window(window, Run<4>{a, x});
    case 5:
        return tb::with_window(window, Run<5>{a, x});
    default:
        std::fprintf(stderr, "--order must be 3, 4 or 5, got %ld\n", order);
        return 2;
    }
}
