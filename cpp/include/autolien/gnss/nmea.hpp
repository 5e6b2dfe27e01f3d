// NMEA 0183 (GGA, RMC, GST, GSA, VTG from any talker) and u-blox UBX NAV-PVT,
// interleaved in one byte stream, decoded into one fix row per epoch.
//
// Fix quality is taken from GGA field 6 or from NAV-PVT (carrSoln, fixType),
// never from the RMC mode letter, and keeps the GGA classes: 0 invalid,
// 1 single, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning.
#pragma once

#include "autolien/common/reject.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace autolien::gnss::nmea {

enum class Reason : std::uint8_t {
    junk = 1,         // bytes that start no NMEA sentence or UBX message
    bad_checksum = 2, // NMEA '*hh' or UBX Fletcher checksum mismatch
    no_checksum = 3,  // an NMEA sentence without '*hh'
    bad_field = 4,    // a supported sentence with a malformed field
    truncated = 5,    // input ends inside a sentence or message
};

// Columns, one row per epoch. Doubles are NaN and integers -1 when absent.
struct Fixes {
    std::vector<std::uint64_t> offset; // first byte of the epoch's first sentence
    std::vector<std::uint8_t> source;  // 1 NMEA, 2 UBX
    std::vector<std::int64_t> time_us; // UTC; INT64_MIN when the date is not known yet
    std::vector<double> lat, lon, altitude_m, height_m, speed_kmh, heading_deg;
    std::vector<std::int32_t> quality, num_sats, fix_type, carr_soln;
    std::vector<double> hdop, pdop, sigma_n_m, sigma_e_m, sigma_u_m, diff_age_s;
    std::vector<std::uint8_t> rmc_status, rmc_mode; // ASCII letters, 0 when absent
    std::size_t size() const { return offset.size(); }
};

struct Message {
    std::uint64_t offset;
    std::uint32_t length;
    std::string kind; // e.g. "GNGGA" or "UBX-01-07"
    bool used;        // contributed to a fix row
};

using Reject = autolien::Reject<Reason>;

struct Result {
    Fixes fixes;
    std::vector<Message> messages;
    std::vector<Reject> rejects;
};

Result decode(std::span<const std::uint8_t> data);

} // namespace autolien::gnss::nmea
