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
    // A kind may be empty: "$,..." is a sentence with an empty address.
    for (std::size_t i = 0; i < m.size(); ++i)
        if (m.offset[i] + m.length[i] > size)
            __builtin_trap();
    const auto& f = r.fixes;
    if (f.lat.size() != f.size() || f.quality.size() != f.size() || f.bad_fields.size() != f.size())
        __builtin_trap();
    // Validity bitmaps: none (no absent row) or one bit a row, set where the value is present.
    namespace nm = autolien::gnss::nmea;
    const auto& lat_bits = f.validity[std::size_t(nm::FixColumn::lat)];
    const auto& quality_bits = f.validity[std::size_t(nm::FixColumn::quality)];
    for (std::size_t i = 0; i < f.size(); ++i) {
        const bool lat = lat_bits.empty() || ((lat_bits[i / 8] >> (i % 8)) & 1);
        const bool quality = quality_bits.empty() || ((quality_bits[i / 8] >> (i % 8)) & 1);
        if (lat != (f.lat[i] == f.lat[i]) || quality != (f.quality[i] != -1))
            __builtin_trap();
    }
    return 0;
}
