// libFuzzer target: ELM327 / OBD-II decoding.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "autolien/telemetry/obd.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace ob = autolien::telemetry::obd;
    const auto r = ob::decode_elm327({data, size});
    for (const auto& row : r.rows)
        if (std::isnan(row.value) || row.offset >= size)
            __builtin_trap();
    if (size >= 1)
        (void)ob::decode_pid(data[0], {data + 1, size - 1});
    return 0;
}
