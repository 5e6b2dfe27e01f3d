// libFuzzer target: JT/T 808 decoding must not crash, read out of bounds or
// hang, and its output must stay consistent with the input.
#include <cstddef>
#include <cstdint>

#include "autolien/telemetry/jt808.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace jt = autolien::telemetry::jt808;
    jt::Options opt;
    opt.subpackage_window = 1 + (size % 8);
    const auto r = jt::decode({data, size}, opt);
    for (const auto& rej : r.rejects)
        if (rej.offset >= size && size > 0)
            __builtin_trap();
    for (const auto idx : r.locations.message_index)
        if (idx >= r.messages.size())
            __builtin_trap();
    if (r.locations.extra_start.size() != r.locations.size() + 1)
        __builtin_trap();
    return 0;
}
