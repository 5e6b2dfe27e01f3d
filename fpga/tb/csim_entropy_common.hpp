// Shared by the entropy testbenches: float32 samples in, u64 LE values out.
#pragma once

#include "autolien_fpga/entropy.hpp"
#include "tb_common.hpp"

namespace tb {

inline std::vector<float> floats(const std::vector<std::uint8_t>& b) {
    if (b.size() % 4) {
        std::fprintf(stderr, "input is not whole float32 values (%zu bytes)\n", b.size());
        std::exit(2);
    }
    std::vector<float> x(b.size() / 4);
    std::memcpy(x.data(), b.data(), b.size());
    return x;
}

inline std::vector<std::uint8_t> drain_u64(hls::stream<autolien::fpga::u64>& s, std::size_t n) {
    std::vector<std::uint8_t> out(8 * n);
    for (std::size_t i = 0; i < n; ++i) {
        const autolien::fpga::u64 v = s.read();
        std::memcpy(&out[8 * i], &v, 8);
    }
    return out;
}

// Calls f.template operator()<W>() for the window W given at run time.
template <typename F> int with_window(long w, F&& f) {
    switch (w) {
    case 16:
        return f.template operator()<16>();
    case 32:
        return f.template operator()<32>();
    case 64:
        return f.template operator()<64>();
    case 128:
        return f.template operator()<128>();
    case 256:
        return f.template operator()<256>();
    case 512:
        return f.template operator()<512>();
    case 1024:
        return f.template operator()<1024>();
    default:
        std::fprintf(stderr, "--window must be a power of two from 16 to 1024, got %ld\n", w);
        return 2;
    }
}

} // namespace tb
