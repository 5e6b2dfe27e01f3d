// libFuzzer target: interleaved NMEA 0183 / UBX decoding.
#include <cstddef>
#include <cstdint>

#include "autolien/gnss/nmea.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto r = autolien::gnss::nmea::decode({data, size});
    for (const auto& rej : r.rejects)
        if (rej.offset >= size && size > 0)
            __builtin_trap();
    const auto& m = r.messages;
    if (m.length.size() != m.size() || m.kind_start.size() != m.size() + 1)
        __builtin_trap();
    for (std::size_t i = 0; i < m.size(); ++i)
        if (m.offset[i] + m.length[i] > size || m.kind(i).empty())
            __builtin_trap();
    const auto& f = r.fixes;
    if (f.lat.size() != f.size() || f.quality.size() != f.size() || f.bad_fields.size() != f.size())
        __builtin_trap();
    return 0;
}
