#include "autolien/telemetry/obd.hpp"

#include <array>
#include <cctype>

namespace autolien::telemetry::obd {

namespace {

constexpr std::array<PidInfo, 13> kPids{{
    {0x04, 1, "engine_load", "percent"},
    {0x05, 1, "coolant_temp", "degC"},
    {0x0C, 2, "rpm", "rpm"},
    {0x0D, 1, "speed", "km/h"},
    {0x0F, 1, "intake_temp", "degC"},
    {0x10, 2, "maf", "g/s"},
    {0x11, 1, "throttle_pos", "percent"},
    {0x1F, 2, "run_time", "s"},
    {0x2F, 1, "fuel_level", "percent"},
    {0x31, 2, "distance_since_dtc_clear", "km"},
    {0x42, 2, "control_module_voltage", "V"},
    {0x5C, 1, "oil_temp", "degC"},
    {0xA6, 4, "odometer", "km"},
}};

int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

} // namespace

const PidInfo* pid_info(std::uint8_t pid) noexcept {
    for (const auto& p : kPids)
        if (p.pid == pid)
            return &p;
    return nullptr;
}

std::optional<double> decode_pid(std::uint8_t pid, std::span<const std::uint8_t> d) noexcept {
    const PidInfo* info = pid_info(pid);
    if (info == nullptr || d.size() != info->bytes)
        return std::nullopt;
    const double A = d[0], B = d.size() > 1 ? d[1] : 0;
    switch (pid) {
    case 0x04:
    case 0x11:
    case 0x2F:
        return A * 100.0 / 255.0;
    case 0x05:
    case 0x0F:
    case 0x5C:
        return A - 40.0;
    case 0x0C:
        return (256 * A + B) / 4.0;
    case 0x0D:
        return A;
    case 0x10:
        return (256 * A + B) / 100.0;
    case 0x1F:
    case 0x31:
        return 256 * A + B;
    case 0x42:
        return (256 * A + B) / 1000.0;
    case 0xA6:
        return ((std::uint32_t(d[0]) << 24) | (std::uint32_t(d[1]) << 16) | (std::uint32_t(d[2]) << 8) |
                d[3]) /
               10.0;
    default:
        return std::nullopt;
    }
}

Result decode_elm327(std::span<const std::uint8_t> text) {
    Result out;
    const std::size_t n = text.size();
    std::size_t pos = 0;
    while (pos < n) {
        std::size_t end = pos;
        while (end < n && text[end] != '\r' && text[end] != '\n')
            ++end;
        const std::size_t start = pos;
        pos = end + 1;
        std::string line;
        for (std::size_t i = start; i < end; ++i)
            if (text[i] != ' ' && text[i] != '\t' && text[i] != '>')
                line.push_back(char(text[i]));
        if (line.empty())
            continue;
        std::vector<std::uint8_t> raw(text.begin() + std::ptrdiff_t(start),
                                      text.begin() + std::ptrdiff_t(end));
        auto reject = [&](Reason r, std::string msg) {
            out.rejects.push_back({start, r, std::move(msg), raw});
        };
        bool all_hex = true;
        for (char c : line)
            all_hex = all_hex && hexval(c) >= 0;
        if (!all_hex) {
            std::string up;
            for (char c : line)
                up.push_back(char(std::toupper(static_cast<unsigned char>(c))));
            const bool status = up == "NODATA" || up == "?" || up.rfind("SEARCHING", 0) == 0 ||
                                up == "STOPPED" || up.find("ERROR") != std::string::npos || up == "OK" ||
                                up.rfind("BUSINIT", 0) == 0 || up == "UNABLETOCONNECT";
            std::string shown; // printable ASCII, so the message is valid UTF-8
            for (const auto b : raw)
                shown.push_back(b >= 0x20 && b < 0x7F ? char(b) : '?');
            reject(status ? Reason::elm_status : Reason::not_hex, "'" + shown + "'");
            continue;
        }
        std::string ecu, format;
        std::vector<std::uint8_t> bytes;
        std::size_t i0 = 0;
        if (line.size() % 2 == 1) { // CAN 11-bit id: three hex digits before the bytes
            ecu = line.substr(0, 3);
            i0 = 3;
            format = "can11";
        }
        for (std::size_t i = i0; i + 1 < line.size(); i += 2)
            bytes.push_back(std::uint8_t(hexval(line[i]) * 16 + hexval(line[i + 1])));
        std::size_t p = 0;
        std::size_t payload_len = bytes.size();
        if (format == "can11") {
            if (bytes.empty() || bytes[0] > 7) {
                reject(Reason::not_mode01, "CAN frame without a single-frame length byte");
                continue;
            }
            payload_len = bytes[0];
            p = 1;
        } else if (bytes.size() >= 5 && bytes[0] == 0x18 && bytes[1] == 0xDA) { // CAN 29-bit
            static const char* hx = "0123456789ABCDEF";
            ecu = {hx[bytes[3] >> 4], hx[bytes[3] & 15]};
            format = "can29";
            payload_len = bytes[4];
            p = 5;
        } else if (!bytes.empty() && (bytes[0] & 0xC0) == 0x80 && bytes.size() >= 3 && bytes[1] != 0x41) {
            // KWP2000 / ISO 9141 with headers: the format byte's low six bits are
            // the data length, so a missing checksum byte does not shift the data.
            static const char* hx = "0123456789ABCDEF";
            ecu = {hx[bytes[2] >> 4], hx[bytes[2] & 15]};
            format = "kwp";
            payload_len = bytes[0] & 0x3F;
            p = 3;
        } else {
            format = "plain";
        }
        if (p + payload_len > bytes.size()) {
            reject(Reason::bad_length, "declares " + std::to_string(payload_len) + " bytes, has " +
                                           std::to_string(bytes.size() - std::min(p, bytes.size())));
            continue;
        }
        std::span<const std::uint8_t> payload(bytes.data() + p, payload_len);
        if (payload.size() < 2 || payload[0] != 0x41) {
            reject(Reason::not_mode01, "not a mode 01 response");
            continue;
        }
        // A CAN request may ask for up to six PIDs; the reply lists them in turn.
        std::size_t q = 1;
        std::vector<Row> rows;
        std::string err;
        Reason why = Reason::bad_length;
        while (q < payload.size()) {
            const std::uint8_t pid = payload[q];
            const PidInfo* info = pid_info(pid);
            if (info == nullptr) {
                why = Reason::unknown_pid;
                err = "PID " + std::to_string(pid) + " is not decoded";
                break;
            }
            if (q + 1 + info->bytes > payload.size()) {
                err = std::string(info->name) + " needs " + std::to_string(info->bytes) +
                      " data bytes, got " + std::to_string(payload.size() - q - 1);
                break;
            }
            const auto data = payload.subspan(q + 1, info->bytes);
            rows.push_back({start, pid, *decode_pid(pid, data), ecu, format,
                            std::vector<std::uint8_t>(data.begin(), data.end())});
            q += 1 + info->bytes;
        }
        // The PIDs before a bad one are good data: kept. The rest of the line
        // cannot be framed (a PID's length comes from knowing it), so the
        // line is also rejected, saying how many PIDs it gave.
        out.rows.insert(out.rows.end(), rows.begin(), rows.end());
        if (!err.empty())
            reject(why, rows.empty() ? err
                                     : err + " (after " + std::to_string(rows.size()) +
                                           " decoded PID(s), kept as rows)");
    }
    return out;
}

} // namespace autolien::telemetry::obd
