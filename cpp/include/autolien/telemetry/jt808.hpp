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
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace autolien::telemetry::jt808 {

// Reject reasons, stable codes (documented in python/autolien/telemetry/jt808.py).
enum class Reason : std::uint8_t {
    junk = 1,                 // bytes outside any 0x7E ... 0x7E frame
    bad_escape = 2,           // 0x7D not followed by 0x01 or 0x02
    bad_checksum = 3,         // XOR of header and body does not match
    header_too_short = 4,     // fewer bytes than any header needs
    body_length_mismatch = 5, // declared body length fits neither the 2013 nor the 2019 header
    bad_bcd = 6,              // terminal number with a non-decimal digit
    bad_body = 7,             // body shorter than its message needs, or an item overruns it
    subpackage_timeout = 8,   // parts of a split message that never completed
    truncated = 10,           // a 0x7E opens a frame that the input never closes
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
    std::string terminal_id;
    std::vector<std::uint8_t> body; // parts of a split message only, while they wait
};

using Reject = autolien::Reject<Reason>;

// Location rows in columns. Optional numeric items hold NaN (doubles) or -1
// (integers) when absent.
struct Locations {
    std::vector<std::uint32_t> message_index; // row -> index in `messages`
    std::vector<std::uint8_t> reissue;        // 0x0704 type 1 (blind-area reissue)
    std::vector<std::uint32_t> alarm, status;
    std::vector<double> lat, lon; // degrees, signed by the hemisphere bits
    std::vector<double> altitude_m, speed_kmh, heading_deg;
    std::vector<std::int64_t> time_us; // UTC microseconds; INT64_MIN when the BCD time is invalid
    std::vector<double> mileage_km, fuel_l, recorder_speed_kmh;
    std::vector<std::int64_t> alarm_event_id, overspeed_type, overspeed_area_id;
    std::vector<std::int64_t> area_alarm_type, area_alarm_id, area_alarm_direction;
    std::vector<std::int64_t> route_id, route_time_s, route_result;
    std::vector<std::int64_t> ext_status, io_status, analog, signal_strength, satellites;
    // Items kept raw (vendor 0xE0-0xFF, unknown ids, wrong lengths): per row a
    // range [extra_start[i], extra_start[i+1]) into extra_id / extra_value.
    std::vector<std::uint32_t> extra_start{0};
    std::vector<std::uint8_t> extra_id;
    std::vector<std::uint32_t> extra_value_start{0};
    std::vector<std::uint8_t> extra_value;

    std::size_t size() const { return message_index.size(); }
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

// Decodes one 0x0200 body into `out` (used for 0x0200 and each 0x0704 item).
// Returns an empty string on success, else why the body is bad.
std::string decode_location_body(std::span<const std::uint8_t> body, Locations& out,
                                 std::uint32_t message_index, bool reissue);

// YYMMDDhhmmss BCD in GMT+8 to UTC microseconds; INT64_MIN if invalid.
std::int64_t bcd_time_gmt8_to_utc_us(const std::uint8_t* bcd6);

} // namespace autolien::telemetry::jt808
