// C-simulation testbench and filter for the fix-fusion step.
//
//   csim_kf --config CFG [--in F] [--out F | --check F]
//
// CFG: the 28 KfConfig fields as float64 (autolien.gpu.fusion.config_vector).
// Input: per fix 10 float64 [new_vehicle, t, e, n, u, quality, sigma_n,
// sigma_e, sigma_u, speed] (ENU metres, seconds, m/s; NaN when absent;
// new_vehicle = 1 on a vehicle's first fix). Output: per fix 13 float64
// [e, n, u, ve, vn, vu, var_e, var_n, var_u, nis, inflation, status, segment].
//
// --check compares with the core's track (fpga/README.md, "Fix fusion"):
// status and segment exactly, positions and velocities within 1e-6 (m, m/s),
// variances and inflation within 1e-7 relative, NIS within 1e-6 absolute plus
// 1e-6 relative; where the core has no state (NaN: before a vehicle's first
// valid fix) only status and segment are compared.
#include <cmath>

#include "kf_top.hpp"
#include "tb_common.hpp"

#ifndef AUTOLIEN_FPGA_SEPARATE_TOP
#include "kf_top.cpp"
#endif

namespace {

constexpr int kIn = 10, kOut = 13;

bool close(double got, double want, double abs_tol, double rel_tol) {
    if (std::isnan(want))
        return std::isnan(got);
    return std::fabs(got - want) <= abs_tol + rel_tol * std::fabs(want);
}

std::vector<double> doubles(const std::vector<std::uint8_t>& b, std::size_t per, const char* what) {
    if (b.size() % (8 * per)) {
        std::fprintf(stderr, "%s is not whole records of %zu float64\n", what, per);
        std::exit(2);
    }
    std::vector<double> x(b.size() / 8);
    std::memcpy(x.data(), b.data(), b.size());
    return x;
}

} // namespace

int main(int argc, char** argv) {
    const tb::Args a(argc, argv);
    const auto cfg = doubles(tb::read_all(a.opt("--config")), autolien::fpga::kKfConfigWords, "--config");
    if (a.opt("--config").empty() || cfg.size() != autolien::fpga::kKfConfigWords) {
        std::fprintf(stderr, "--config needs %d float64 values\n", autolien::fpga::kKfConfigWords);
        return 2;
    }
    const auto in = doubles(tb::read_all(a.opt("--in")), kIn, "input");
    const std::size_t nfix = in.size() / kIn;
    std::vector<double> out;
    std::size_t first = 0;
    while (first < nfix) {
        std::size_t end = first + 1;
        while (end < nfix && in[end * kIn] == 0.0)
            ++end;
        hls::stream<autolien::fpga::KfFix> fixes("tb_fixes");
        hls::stream<autolien::fpga::KfOut> outs("tb_outs");
        for (std::size_t i = first; i < end; ++i) {
            const double* r = &in[i * kIn];
            autolien::fpga::KfFix f;
            f.t = r[1];
            f.e = r[2];
            f.n = r[3];
            f.u = r[4];
            f.quality = static_cast<int>(r[5]);
            f.sigma_n = r[6];
            f.sigma_e = r[7];
            f.sigma_u = r[8];
            f.speed = r[9];
            fixes.write(f);
        }
        kf_top(fixes, outs, static_cast<autolien::fpga::u32>(end - first), cfg.data());
        for (std::size_t i = first; i < end; ++i) {
            const autolien::fpga::KfOut o = outs.read();
            const double row[kOut] = {o.e,
                                      o.n,
                                      o.u,
                                      o.ve,
                                      o.vn,
                                      o.vu,
                                      o.var_e,
                                      o.var_n,
                                      o.var_u,
                                      o.nis,
                                      o.inflation,
                                      double(o.status),
                                      double(o.segment)};
            out.insert(out.end(), row, row + kOut);
        }
        first = end;
    }
    const std::string check = a.opt("--check");
    if (check.empty()) {
        std::vector<std::uint8_t> b(out.size() * 8);
        std::memcpy(b.data(), out.data(), b.size());
        tb::write_all(a.opt("--out"), b);
        return 0;
    }
    const auto want = doubles(tb::read_all(check), kOut, "--check");
    if (want.size() != out.size()) {
        std::fprintf(stderr, "kf: %zu fixes out, %zu expected\n", nfix, want.size() / kOut);
        return 1;
    }
    static const char* names[kOut] = {"e",     "n",     "u",   "ve",        "vn",     "vu",     "var_e",
                                      "var_n", "var_u", "nis", "inflation", "status", "segment"};
    int bad = 0;
    for (std::size_t i = 0; i < nfix; ++i) {
        const double* g = &out[i * kOut];
        const double* w = &want[i * kOut];
        const bool state = !std::isnan(w[0]);
        for (int k = 0; k < kOut; ++k) {
            bool ok = true;
            if (k >= 11)
                ok = g[k] == w[k];
            else if (!state)
                continue;
            else if (k < 6)
                ok = close(g[k], w[k], 1e-6, 0);
            else if (k < 9 || k == 10)
                ok = close(g[k], w[k], 0, 1e-7);
            else
                ok = close(g[k], w[k], 1e-6, 1e-6);
            if (!ok) {
                if (bad < 10)
                    std::fprintf(stderr, "kf: fix %zu %s = %.17g, core %.17g\n", i, names[k], g[k], w[k]);
                ++bad;
            }
        }
    }
    std::fprintf(stderr, "kf: %zu fixes, %d mismatches\n", nfix, bad);
    return bad > 100 ? 100 : bad;
}
