// JT/T 808 (2013 and 2019 editions) decoding: framing, unescaping, XOR check,
// header version by length, BCD terminal numbers and times, subpackage
// reassembly, and the location messages 0x0200 / 0x0704 with their standard
// additional-information items. Output is columnar so the bindings can hand
// it to Arrow without a per-row Python object.
#pragma once

#include "autolien/common/reject.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace autolien::telemetry::jt808 {

// Reject reasons, stable codes (documented in python/autolien/telemetry/jt808.py
// and, per reason, in docs/telemetry.md). A reason rejects a frame only when
// nothing in it can be trusted or decoded; a bad field inside a good frame is
// flagged in a column instead.
enum class Reason : std::uint8_t {
    junk = 1,                 // bytes outside any 0x7E ... 0x7E frame
    bad_escape = 2,           // 0x7D not followed by 0x01 or 0x02
    bad_checksum = 3,         // XOR of header and body does not match
    header_too_short = 4,     // fewer bytes than any header needs
    body_length_mismatch = 5, // declared body length fits neither the 2013 nor the 2019 header
    bad_bcd = 6,              // no longer raised: a non-BCD terminal number is kept and flagged
    bad_body = 7,             // a location body with no 28-byte basic block, or a bad package index
    subpackage_timeout = 8,   // parts of a split message that never completed
    truncated = 10,           // a 0x7E opens a frame that the input never closes
};

// Why a location's additional items did not decode cleanly (column items_error).
enum class ItemsError : std::uint8_t {
    none = 0,
    overrun = 1,          // an item declares more bytes than remain: the rest is kept raw
    truncated_header = 2, // one byte left, too short for an item's id and length
    padding = 3,          // an item id 0x00 (reserved; vendors pad with zeros) and all after it, kept raw
    short_item = 4,       // a standard item shorter than defined: kept raw in extras, column null
};

struct Options {
    // A split message whose parts are not all seen within this many frames
    // after its first part is rejected (with every part's bytes).
    std::size_t subpackage_window = 1024;
};

// One decoded frame (after reassembly for split messages).
struct Message {
    std::uint64_t offset; // byte offset of the frame's first 0x7E in the input
    std::uint16_t msg_id;
    std::uint16_t serial;
    bool v2019;
    bool version_flag; // bit 14 as sent (may disagree with the length-based version)
    std::uint8_t protocol_version;
    std::uint8_t encryption;
    std::uint16_t pkg_total; // 0 when not split
    std::uint16_t pkg_index;
    bool terminal_id_bcd; // false: a nibble above 9, terminal_id is then the hex digits
    std::string terminal_id;
    std::string body_error;         // a 0x0704 batch that decoded only in part: why, and where
    std::vector<std::uint8_t> body; // parts of a split message only, while they wait
};

using Reject = autolien::Reject<Reason>;

// Column lists: X(name, element type, output). `output` is the Arrow type of
// the table column of that name, with "?" when the absent marker (NaN, or -1
// for integers) becomes null, or "" for a column the Python layer reshapes
// (offsets, lists, flags, time). One list declares the members and generates
// the binding's dict, the column table `_core.column_types()` reports, and
// the Python schema's fields for every column with an output type.

// The message columns the binding builds from `Message`. The strings and
// bodies are binary columns beside these.
#define AUTOLIEN_JT808_MESSAGE_COLUMNS(X)                                                                    \
    X(offset, std::uint64_t, "uint64")                                                                       \
    X(msg_id, std::uint16_t, "uint16")                                                                       \
    X(serial, std::uint16_t, "uint16")                                                                       \
    X(v2019, std::uint8_t, "")                                                                               \
    X(version_flag, std::uint8_t, "")                                                                        \
    X(protocol_version, std::uint8_t, "uint8")                                                               \
    X(encryption, std::uint8_t, "uint8")                                                                     \
    X(pkg_total, std::uint16_t, "uint16")                                                                    \
    X(pkg_index, std::uint16_t, "uint16")                                                                    \
    X(terminal_id_bcd, std::uint8_t, "")

// Location rows, one per 0x0200 and per 0x0704 item.
#define AUTOLIEN_JT808_LOCATION_COLUMNS(X)                                                                   \
    X(message_index, std::uint32_t, "") /* row -> index in `messages` */                                     \
    X(reissue, std::uint8_t, "")        /* 0x0704 type 1 (blind-area reissue) */                             \
    X(lat, double, "float64")           /* degrees, signed by the hemisphere bits */                         \
    X(lon, double, "float64")                                                                                \
    X(altitude_m, double, "float64")                                                                         \
    X(speed_kmh, double, "float64")                                                                          \
    X(heading_deg, double, "float64")                                                                        \
    X(time_us, std::int64_t, "") /* UTC microseconds; INT64_MIN when the BCD time is invalid */              \
    X(mileage_km, double, "float64?")                                                                        \
    X(fuel_l, double, "float64?")                                                                            \
    X(alarm, std::uint32_t, "uint32")                                                                        \
    X(status, std::uint32_t, "uint32")                                                                       \
    X(recorder_speed_kmh, double, "float64?")                                                                \
    X(alarm_event_id, std::int64_t, "uint16?")                                                               \
    X(overspeed_type, std::int64_t, "uint8?")                                                                \
    X(overspeed_area_id, std::int64_t, "uint32?")                                                            \
    X(area_alarm_type, std::int64_t, "uint8?")                                                               \
    X(area_alarm_id, std::int64_t, "uint32?")                                                                \
    X(area_alarm_direction, std::int64_t, "uint8?")                                                          \
    X(route_id, std::int64_t, "uint32?")                                                                     \
    X(route_time_s, std::int64_t, "uint16?")                                                                 \
    X(route_result, std::int64_t, "uint8?")                                                                  \
    X(ext_status, std::int64_t, "uint32?")                                                                   \
    X(io_status, std::int64_t, "uint16?")                                                                    \
    X(analog, std::int64_t, "uint32?")                                                                       \
    X(signal_strength, std::int64_t, "uint8?")                                                               \
    X(satellites, std::int64_t, "uint8?")                                                                    \
    X(items_error, std::uint8_t, "")        /* ItemsError */                                                 \
    X(items_error_offset, std::int32_t, "") /* byte in the location body; -1 when none */                    \
    X(tail_start, std::uint32_t, "")        /* row i's raw bad tail: tail[tail_start[i], [i + 1]) */         \
    X(tail, std::uint8_t, "")                                                                                \
    X(extra_start, std::uint32_t, "") /* row i's raw items: [extra_start[i], [i + 1]) */                     \
    X(extra_id, std::uint8_t, "")                                                                            \
    X(extra_value_start, std::uint32_t, "")                                                                  \
    X(extra_value, std::uint8_t, "")

struct Locations {
#define AUTOLIEN_X(name, type, output) std::vector<type> name;
    AUTOLIEN_JT808_LOCATION_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X

    // The offset columns start with their 0.
    Locations() : tail_start{0}, extra_start{0}, extra_value_start{0} {}

    std::size_t size() const { return message_index.size(); }

    // Calls f(name, output, column) for every column, in the list's order.
    template <typename F> void for_each_column(F&& f) {
#define AUTOLIEN_X(name, type, output) f(#name, output, name);
        AUTOLIEN_JT808_LOCATION_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    }
};

struct Result {
    std::vector<Message> messages;
    // Unescaped (reassembled) bodies of `messages`, flat: message i is
    // body_data[body_start[i], body_start[i + 1]).
    std::vector<std::uint8_t> body_data;
    std::vector<std::int64_t> body_start{0};
    Locations locations;
    std::vector<Reject> rejects;
};

// Decodes a byte stream of frames. Never throws on bad input: every byte is
// either in a decoded message or in a reject.
Result decode(std::span<const std::uint8_t> data, const Options& options = {});

// Where a byte stream can be cut so that decoding the two sides apart gives
// what decoding it whole gives: the end of the first frame that ends at or
// past `target` (a position in `data`, which must start where no split
// message waits for parts: at the input's start or at an earlier safe cut)
// after which no split message waits for parts. Between such frames the
// decoder holds no state but counters. std::nullopt when there is none
// before the data ends. Reads the frames' headers only where bit 13 (split)
// may be set, so it costs a small part of a decode.
std::optional<std::size_t> safe_cut(std::span<const std::uint8_t> data, std::size_t target,
                                    const Options& options = {});

// Decodes one 0x0200 body into `out` (used for 0x0200 and each 0x0704 item).
// Returns an empty string on success, else why the body is bad.
std::string decode_location_body(std::span<const std::uint8_t> body, Locations& out,
                                 std::uint32_t message_index, bool reissue);

// YYMMDDhhmmss BCD in GMT+8 to UTC microseconds; INT64_MIN if invalid.
std::int64_t bcd_time_gmt8_to_utc_us(const std::uint8_t* bcd6);

} // namespace autolien::telemetry::jt808
