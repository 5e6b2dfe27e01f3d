// What every decoder keeps of input it could not decode: where, why, a
// message, and the bytes themselves (nothing is dropped silently).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace autolien {

template <typename Reason> struct Reject {
    std::uint64_t offset;
    Reason reason;
    std::string message;
    std::vector<std::uint8_t> raw;
};

// Appends a reject carrying data[b, e).
template <typename Reason>
void add_reject(std::vector<Reject<Reason>>& out, std::span<const std::uint8_t> data, std::uint64_t offset,
                Reason reason, std::string message, std::size_t b, std::size_t e) {
    out.push_back(
        {offset, reason, std::move(message),
         std::vector<std::uint8_t>(data.begin() + std::ptrdiff_t(b), data.begin() + std::ptrdiff_t(e))});
}

// Rejects the run of junk bytes [start, end), if any, as Reason::junk, and
// clears start (SIZE_MAX: no run open). `outside` names what the bytes are outside of.
template <typename Reason>
void flush_junk(std::vector<Reject<Reason>>& out, std::span<const std::uint8_t> data, std::size_t& start,
                std::size_t end, const char* outside) {
    if (start != SIZE_MAX && end > start)
        add_reject(out, data, start, Reason::junk,
                   std::to_string(end - start) + " byte(s) outside any " + outside, start, end);
    start = SIZE_MAX;
}

} // namespace autolien
