// libFuzzer target: GB/T 32960 decoding.
#include <cstddef>
#include <cstdint>

#include "autolien/telemetry/gb32960.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace gb = autolien::telemetry::gb32960;
    const auto r = gb::decode({data, size});
    const auto& R = r.rows;
    for (const auto& rej : r.rejects)
        if (rej.offset >= size && size > 0)
            __builtin_trap();
    for (const auto idx : R.frame_index)
        if (idx >= r.frames.size())
            __builtin_trap();
    if (R.motor_start.size() != R.size() + 1 || R.cellset_start.size() != R.size() + 1 ||
        R.fault_start.size() != R.size() + 1 || R.motor.size() % 8 != 0 || R.cellset.size() % 6 != 0 ||
        R.tail_start.size() != R.size() + 1 || R.units_error.size() != R.size() ||
        R.units_error_offset.size() != R.size() || R.tail_start.back() != R.tail.size())
        __builtin_trap();
    // A flagged tail starts after the time and the first unit that decoded.
    for (std::size_t i = 0; i < R.size(); ++i)
        if ((R.tail_start[i + 1] > R.tail_start[i]) != (R.units_error[i] != 0) ||
            (R.units_error[i] != 0 && R.units_error_offset[i] <= 6))
            __builtin_trap();
    return 0;
}
