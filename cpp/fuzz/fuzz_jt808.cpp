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
    const auto& L = r.locations;
    if (L.extra_start.size() != L.size() + 1 || L.tail_start.size() != L.size() + 1 ||
        L.items_error.size() != L.size() || L.items_error_offset.size() != L.size() ||
        L.tail_start.back() != L.tail.size())
        __builtin_trap();
    // A flagged tail starts at its offset and runs to the end of its body, so
    // it can never be longer than the largest body (1023 bytes, or a
    // reassembled one).
    for (std::size_t i = 0; i < L.size(); ++i) {
        const bool tail = L.tail_start[i + 1] > L.tail_start[i];
        if (tail && (L.items_error[i] == 0 || L.items_error_offset[i] < 28))
            __builtin_trap();
        if (L.items_error[i] == 0 && L.items_error_offset[i] != -1)
            __builtin_trap();
    }
    return 0;
}
