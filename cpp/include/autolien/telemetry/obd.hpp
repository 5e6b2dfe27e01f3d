// OBD-II mode 01 PIDs from raw data bytes or ELM327 response lines (CAN 11-bit
// and 29-bit, with or without headers, and KWP/ISO 9141 with the data length
// taken from the format byte, so a line without its checksum still decodes).
#pragma once

#include "autolien/common/reject.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace autolien::telemetry::obd {

struct PidInfo {
    std::uint8_t pid;
    std::uint8_t bytes; // data bytes the PID returns
    const char* name;
    const char* unit;
};

// Known PIDs; nullptr when the PID is not decoded.
const PidInfo* pid_info(std::uint8_t pid) noexcept;

// The value of a mode 01 PID from its data bytes (exactly PidInfo::bytes of
// them); nullopt for an unknown PID or a wrong length. Never pads.
std::optional<double> decode_pid(std::uint8_t pid, std::span<const std::uint8_t> data) noexcept;

enum class Reason : std::uint8_t {
    not_hex = 1,    // a line that is neither hex bytes nor a known ELM327 word
    elm_status = 2, // NO DATA, SEARCHING..., CAN ERROR, ?, ...
    not_mode01 = 3, // a valid reply that is not a mode 01 response
    unknown_pid = 4,
    bad_length = 5, // fewer (or more) data bytes than the PID returns
};

// The row columns the binding builds from `Row` (name, element type, output
// type, as in jt808.hpp); the strings and bytes are columns beside these.
#define AUTOLIEN_OBD_ROW_COLUMNS(X)                                                                          \
    X(offset, std::uint64_t, "uint64")                                                                       \
    X(pid, std::uint8_t, "uint8")                                                                            \
    X(value, double, "float64")

struct Row {
    std::uint64_t offset; // byte offset of the line
    std::uint8_t pid;
    double value;
    std::string ecu;    // header (CAN id or KWP source address), "" without headers
    std::string format; // "can11", "can29", "kwp", "plain"
    std::vector<std::uint8_t> data;
};

using Reject = autolien::Reject<Reason>;

struct Result {
    std::vector<Row> rows;
    std::vector<Reject> rejects;
};

// Decodes ELM327 text: one response per line (CR or LF separated).
Result decode_elm327(std::span<const std::uint8_t> text);

} // namespace autolien::telemetry::obd
