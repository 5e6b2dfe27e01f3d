// libFuzzer target: interleaved NMEA 0183 / UBX decoding.
#include <cstddef>
#include <cstdint>

#include "autolien/gnss/nmea.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto r = autolien::gnss::nmea::decode({data, size});
    for (const auto& rej : r.rejects)
        if (rej.offset >= size && size > 0)
            __builtin_trap();
    for (const auto& m : r.messages)
        if (m.offset + m.length > size)
            __builtin_trap();
    if (r.fixes.lat.size() != r.fixes.size() || r.fixes.quality.size() != r.fixes.size())
        __builtin_trap();
    return 0;
}
