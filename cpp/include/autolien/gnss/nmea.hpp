// NMEA 0183 (GGA, RMC, GST, GSA, VTG from any talker) and u-blox UBX NAV-PVT,
// interleaved in one byte stream, decoded into one fix row per epoch.
//
// Fix quality is taken from GGA field 6 or from NAV-PVT (carrSoln, fixType),
// never from the RMC mode letter, and keeps the GGA classes: 0 invalid,
// 1 single, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning.
#pragma once

#include "autolien/common/reject.hpp"

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace autolien::gnss::nmea {

enum class Reason : std::uint8_t {
    junk = 1,         // bytes that start no NMEA sentence or UBX message
    bad_checksum = 2, // NMEA '*hh' or UBX Fletcher checksum mismatch
    no_checksum = 3,  // no longer raised: a sentence without '*hh' is kept, flagged in checksum_present
    bad_field = 4,    // a supported sentence with a malformed time, quality, position or date
    truncated = 5,    // input ends inside a sentence or message
};

// Column lists: X(name, element type, output), as in the telemetry headers.
// `output` is the Arrow type of the table column of that name ("?": NaN or -1
// becomes null), or "" for a column the Python layer reshapes. One list
// declares the members and generates the binding's dict, the column table
// `_core.column_types()` reports, and the schema fields with an output type.

// One row per epoch. Doubles are NaN and integers -1 when absent.
#define AUTOLIEN_NMEA_FIX_COLUMNS(X)                                                                         \
    X(time_us, std::int64_t, "") /* UTC; INT64_MIN when the date is not known yet */                         \
    X(lat, double, "float64?")                                                                               \
    X(lon, double, "float64?")                                                                               \
    X(altitude_m, double, "float64?")                                                                        \
    X(height_m, double, "float64?")                                                                          \
    X(speed_kmh, double, "float64?")                                                                         \
    X(heading_deg, double, "float64?")                                                                       \
    X(quality, std::int32_t, "uint8?")                                                                       \
    X(num_sats, std::int32_t, "uint8?")                                                                      \
    X(hdop, double, "float64?")                                                                              \
    X(pdop, double, "float64?")                                                                              \
    X(sigma_n_m, double, "float64?")                                                                         \
    X(sigma_e_m, double, "float64?")                                                                         \
    X(sigma_u_m, double, "float64?")                                                                         \
    X(diff_age_s, double, "float64?")                                                                        \
    X(fix_type, std::int32_t, "uint8?")                                                                      \
    X(carr_soln, std::int32_t, "uint8?")                                                                     \
    X(rmc_status, std::uint8_t, "") /* ASCII letter, 0 when absent */                                        \
    X(rmc_mode, std::uint8_t, "")                                                                            \
    X(checksum_present, std::uint8_t, "") /* 0 when a sentence of the epoch had no '*hh' */                  \
    X(bad_fields, std::uint32_t, "")      /* bit i: column i was sent malformed, and is null */              \
    X(source, std::uint8_t, "")           /* 1 NMEA, 2 UBX */                                                \
    X(offset, std::uint64_t, "")          /* first byte of the epoch's first sentence */

// Every sentence or UBX message, used or not; `kind` (e.g. "GNGGA",
// "UBX-01-07") is a binary column beside these.
#define AUTOLIEN_NMEA_MESSAGE_COLUMNS(X)                                                                     \
    X(offset, std::uint64_t, "uint64")                                                                       \
    X(length, std::uint32_t, "uint32")                                                                       \
    X(used, std::uint8_t, "") /* contributed to a fix row */                                                 \
    X(checksum_present, std::uint8_t, "")

// The output columns' buffers of at least kPoolMinBytes come from a small
// process-wide cache: a freed buffer (the numpy array that owned it was
// dropped) is kept for the next decode, up to kPoolMaxBytes in all, and the
// oldest is released beyond that. Decoding file after file then writes into
// memory already mapped instead of faulting in fresh pages (about 4,500 page
// faults, a third of the CPU time, for 1e5 epochs on a VM without them).
constexpr std::size_t kPoolMinBytes = std::size_t(64) << 10;
constexpr std::size_t kPoolMaxBytes = std::size_t(96) << 20;
void* pool_allocate(std::size_t bytes);
void pool_free(void* p) noexcept;

template <typename T> struct PoolAllocator {
    using value_type = T;
    PoolAllocator() = default;
    template <typename U> PoolAllocator(const PoolAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { pool_free(p); }
    // resize() default-initialises: the decoder writes every row it makes
    // room for, so zero-filling each block first was a wasted pass (a memset
    // of every column).
    template <typename U, typename... Args> void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) == 0)
            ::new (static_cast<void*>(p)) U;
        else
            ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    template <typename U> bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
};
template <typename T> using Column = std::vector<T, PoolAllocator<T>>;

// A fix column's index in the list: bit (1 << index) of bad_fields.
enum class FixColumn : std::uint8_t {
#define AUTOLIEN_X(name, type, output) name,
    AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
        count
};
static_assert(std::size_t(FixColumn::count) <= 32, "bad_fields is a 32-bit mask");

constexpr std::uint32_t bit(FixColumn c) {
    return std::uint32_t(1) << unsigned(c);
}

// Whether a fix column has an absent value, and so an Arrow validity bitmap:
// the nullable outputs ("?": NaN or -1) and time_us (INT64_MIN).
constexpr bool has_validity(FixColumn c, const char* output) {
    std::size_t n = 0;
    while (output[n] != '\0')
        ++n;
    return c == FixColumn::time_us || (n > 0 && output[n - 1] == '?');
}

struct Fixes {
#define AUTOLIEN_X(name, type, output) Column<type> name;
    AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    // Arrow validity bitmaps (bit i of byte i / 8: row i is present) of the
    // columns with has_validity, indexed by FixColumn; empty when a column
    // has no absent row. The decoder builds them a block of rows at a time,
    // while the rows are still in cache: reading the columns again afterwards
    // (numpy, or any pass after decoding) fetched every value from memory.
    std::array<Column<std::uint8_t>, std::size_t(FixColumn::count)> validity;

    std::size_t size() const { return offset.size(); }
    void reserve(std::size_t n) {
        for_each_column([n](const char*, const char*, auto& col) { col.reserve(n); });
    }
    // Calls f(name, output, column) for every column, in the list's order.
    template <typename F> void for_each_column(F&& f) {
#define AUTOLIEN_X(name, type, output) f(#name, output, name);
        AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    }
};

struct Messages {
#define AUTOLIEN_X(name, type, output) Column<type> name;
    AUTOLIEN_NMEA_MESSAGE_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    // Message i's kind is kind_data[kind_start[i], kind_start[i + 1]).
    Column<std::uint8_t> kind_data;
    Column<std::int64_t> kind_start{0};

    std::size_t size() const { return offset.size(); }
    std::string_view kind(std::size_t i) const {
        return {reinterpret_cast<const char*>(kind_data.data()) + kind_start[i],
                std::size_t(kind_start[i + 1] - kind_start[i])};
    }
    template <typename F> void for_each_column(F&& f) {
#define AUTOLIEN_X(name, type, output) f(#name, output, name);
        AUTOLIEN_NMEA_MESSAGE_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    }
};

using Reject = autolien::Reject<Reason>;

struct Result {
    Fixes fixes;
    Messages messages;
    std::vector<Reject> rejects;
};

Result decode(std::span<const std::uint8_t> data);

} // namespace autolien::gnss::nmea
