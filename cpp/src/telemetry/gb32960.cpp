#include "autolien/telemetry/gb32960.hpp"

#include <cmath>
#include <limits>

namespace autolien::telemetry::gb32960 {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t(era) * 146097 + std::int64_t(doe) - 719468;
}

// Bounds-checked big-endian reader: reading past the end clears `ok`.
struct Reader {
    const std::uint8_t* p;
    const std::uint8_t* end;
    bool ok = true;
    bool has(std::size_t n) {
        if (std::size_t(end - p) < n)
            ok = false;
        return ok;
    }
    std::uint32_t u8() { return has(1) ? *p++ : 0; }
    std::uint32_t u16() {
        if (!has(2))
            return 0;
        const std::uint32_t v = (std::uint32_t(p[0]) << 8) | p[1];
        p += 2;
        return v;
    }
    std::uint32_t u32() {
        if (!has(4))
            return 0;
        const std::uint32_t v =
            (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
        p += 4;
        return v;
    }
    std::size_t left() const { return std::size_t(end - p); }
};

// Text fields become printable ASCII ('?' for anything else), so they are
// always valid UTF-8 downstream whatever a device sends.
std::string printable(const std::uint8_t* b, std::size_t n) {
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(b[i] >= 0x20 && b[i] < 0x7F ? char(b[i]) : '?');
    return out;
}

std::string hex2(unsigned v) {
    static const char* d = "0123456789ABCDEF";
    return std::string("0x") + d[(v >> 4) & 15] + d[v & 15];
}

class Decoder {
  public:
    explicit Decoder(std::span<const std::uint8_t> d) : d_(d) {}

    Result run() {
        const std::size_t n = d_.size();
        std::size_t pos = 0, junk = SIZE_MAX;
        while (pos < n) {
            if (d_[pos] == '#' && pos + 1 < n && d_[pos + 1] == '#') {
                flush_junk(junk, pos);
                pos = frame(pos);
            } else {
                if (junk == SIZE_MAX)
                    junk = pos;
                ++pos;
            }
        }
        flush_junk(junk, n);
        return std::move(out_);
    }

  private:
    void flush_junk(std::size_t& s, std::size_t e) {
        autolien::flush_junk(out_.rejects, d_, s, e, "## frame");
    }

    void reject(std::size_t off, Reason r, std::string m, std::size_t b, std::size_t e) {
        add_reject(out_.rejects, d_, off, r, std::move(m), b, e);
    }

    std::size_t frame(std::size_t s) {
        const std::size_t n = d_.size();
        if (s + 24 > n) {
            reject(s, Reason::truncated, "input ends inside a frame header", s, n);
            return n;
        }
        const std::size_t len = (std::size_t(d_[s + 22]) << 8) | d_[s + 23];
        const std::size_t end = s + 24 + len + 1;
        if (end > n) {
            reject(s, Reason::truncated,
                   "frame declares " + std::to_string(len) + " data bytes; input ends first", s, n);
            return n;
        }
        std::uint8_t x = 0;
        for (std::size_t i = s + 2; i < end - 1; ++i)
            x ^= d_[i];
        if (x != d_[end - 1]) {
            // A bad length could swallow good frames: resync after this "##".
            reject(s, Reason::bad_checksum, "BCC " + hex2(d_[end - 1]) + " but the XOR is " + hex2(x), s,
                   s + 2);
            return s + 2;
        }
        Frame f{};
        f.offset = s;
        f.cmd = d_[s + 2];
        f.ack = d_[s + 3];
        f.encryption = d_[s + 21];
        std::size_t vin_len = 0;
        while (vin_len < 17 && d_[s + 4 + vin_len] != 0) // short test VINs are NUL-padded
            ++vin_len;
        f.vin = printable(d_.data() + s + 4, vin_len);
        f.time_us = kNoTime;
        f.sequence = -1;
        f.data.assign(d_.begin() + std::ptrdiff_t(s + 24), d_.begin() + std::ptrdiff_t(end - 1));
        std::string err;
        const auto index = std::uint32_t(out_.frames.size());
        if (f.encryption == 0x01 || f.encryption == 0xFE) { // others are encrypted: kept, not decoded
            if (f.cmd == 0x02 || f.cmd == 0x03)
                err = realtime(f, index);
            else if (f.cmd == 0x01)
                err = login(f);
            else if (f.cmd == 0x04)
                err = logout(f);
        }
        if (!err.empty()) {
            reject(s, Reason::bad_body, hex2(f.cmd) + " data: " + err, s, end);
            return end;
        }
        out_.frames.push_back(std::move(f));
        return end;
    }

    std::string login(Frame& f) {
        Reader r{f.data.data(), f.data.data() + f.data.size()};
        if (!r.has(6))
            return "login needs a time";
        f.time_us = binary_time_gmt8_to_utc_us(r.p);
        r.p += 6;
        // From here a short login keeps what it has, and says what is missing.
        if (!r.has(2)) {
            f.data_error = "login data ends before the serial";
            return {};
        }
        f.sequence = std::int32_t(r.u16());
        if (!r.has(20)) {
            f.data_error = "login needs a 20-character ICCID, " + std::to_string(r.left()) + " bytes left";
            return {};
        }
        f.iccid = printable(r.p, 20);
        r.p += 20;
        const auto count = r.u8(), code_len = r.u8();
        for (std::uint32_t i = 0; i < count && r.ok; ++i) {
            if (!r.has(code_len))
                break;
            f.ress_codes.push_back(printable(r.p, code_len));
            r.p += code_len;
        }
        if (!r.ok)
            f.data_error = "login data ends inside the subsystem codes (" +
                           std::to_string(f.ress_codes.size()) + " read)";
        return {};
    }

    std::string logout(Frame& f) {
        Reader r{f.data.data(), f.data.data() + f.data.size()};
        if (!r.has(6))
            return "logout needs a time";
        f.time_us = binary_time_gmt8_to_utc_us(r.p);
        r.p += 6;
        if (!r.has(2)) {
            f.data_error = "logout data ends before the serial";
            return {};
        }
        f.sequence = std::int32_t(r.u16());
        return {};
    }

    // Applies the markers: all-0xFE.. is abnormal, all-0xFF.. invalid.
    void put(Field k, std::uint32_t raw, int bytes, double scale, double offset) {
        Rows& R = out_.rows;
        const std::size_t row = R.size() - 1;
        const std::uint32_t ff = bytes == 1 ? 0xFF : bytes == 2 ? 0xFFFF : 0xFFFFFFFF;
        if (raw == ff) {
            R.invalid[row] |= std::uint64_t(1) << k;
            R.scalars[k][row] = kNaN;
        } else if (raw == ff - 1) {
            R.abnormal[row] |= std::uint64_t(1) << k;
            R.scalars[k][row] = kNaN;
        } else {
            R.scalars[k][row] = raw * scale + offset;
        }
    }

    static double temp(std::uint32_t raw) { return raw >= 0xFE ? kNaN : double(raw) - 40.0; }
    static double word(std::uint32_t raw, double scale, double offset) {
        return raw >= 0xFFFE ? kNaN : raw * scale + offset;
    }

    void new_row(const Frame& f, std::uint32_t index) {
        Rows& R = out_.rows;
        R.offset.push_back(f.offset);
        R.frame_index.push_back(index);
        R.time_us.push_back(f.time_us);
        R.reissue.push_back(f.cmd == 0x03);
        for (auto& col : R.scalars)
            col.push_back(kNaN);
        R.gear.push_back(0xFF);
        R.lat.push_back(kNaN);
        R.lon.push_back(kNaN);
        R.location_status.push_back(-1);
        for (auto* v : {&R.max_v_subsys, &R.max_v_cell, &R.min_v_subsys, &R.min_v_cell, &R.max_t_subsys,
                        &R.max_t_probe, &R.min_t_subsys, &R.min_t_probe, &R.alarm_level})
            v->push_back(-1);
        R.alarm_flags.push_back(-1);
        R.abnormal.push_back(0);
        R.invalid.push_back(0);
    }

    // Removes the row new_row() added (its lists must be empty).
    void pop_row() {
        Rows& R = out_.rows;
        R.offset.pop_back();
        R.frame_index.pop_back();
        R.time_us.pop_back();
        R.reissue.pop_back();
        for (auto& col : R.scalars)
            col.pop_back();
        R.gear.pop_back();
        R.lat.pop_back();
        R.lon.pop_back();
        R.location_status.pop_back();
        for (auto* v : {&R.max_v_subsys, &R.max_v_cell, &R.min_v_subsys, &R.min_v_cell, &R.max_t_subsys,
                        &R.max_t_probe, &R.min_t_subsys, &R.min_t_probe, &R.alarm_level})
            v->pop_back();
        R.alarm_flags.pop_back();
        R.abnormal.pop_back();
        R.invalid.pop_back();
    }

    void close_lists() {
        Rows& R = out_.rows;
        R.fault_start.push_back(std::uint32_t(R.fault_code.size()));
        R.motor_start.push_back(std::uint32_t(R.motor.size() / 8));
        R.cellset_start.push_back(std::uint32_t(R.cellset.size() / 6));
        R.probeset_start.push_back(std::uint32_t(R.probeset_no.size()));
        R.custom_start.push_back(std::uint32_t(R.custom_id.size()));
    }

    // List sizes (and the alarm values) before a unit, to undo a unit that
    // turns out to be cut short.
    struct Mark {
        std::size_t fault, motor, cellset, cells, cellstart, probeset, probes, probestart, cid, cval, cvstart;
        std::int32_t alarm_level;
        std::int64_t alarm_flags;
    };

    Mark mark() const {
        const Rows& R = out_.rows;
        return {R.fault_code.size(),
                R.motor.size(),
                R.cellset.size(),
                R.cell_v.size(),
                R.cellset_cells_start.size(),
                R.probeset_no.size(),
                R.probe_c.size(),
                R.probeset_temps_start.size(),
                R.custom_id.size(),
                R.custom_value.size(),
                R.custom_value_start.size(),
                R.alarm_level.back(),
                R.alarm_flags.back()};
    }

    void undo_unit(const Mark& m) {
        Rows& R = out_.rows;
        R.fault_code.resize(m.fault);
        R.fault_category.resize(m.fault);
        R.motor.resize(m.motor);
        R.cellset.resize(m.cellset);
        R.cell_v.resize(m.cells);
        R.cellset_cells_start.resize(m.cellstart);
        R.probeset_no.resize(m.probeset);
        R.probe_c.resize(m.probes);
        R.probeset_temps_start.resize(m.probestart);
        R.custom_id.resize(m.cid);
        R.custom_value.resize(m.cval);
        R.custom_value_start.resize(m.cvstart);
        R.alarm_level.back() = m.alarm_level;
        R.alarm_flags.back() = m.alarm_flags;
    }

    static bool defined_unit(std::uint32_t id) {
        return (id >= 0x01 && id <= 0x09) || (id >= 0x80 && id <= 0xFE);
    }

    // The collection time makes the row; a unit that cannot be read costs only
    // itself and the units after it (no length to skip it by), which are kept
    // raw in `tail` and flagged in units_error / units_error_offset.
    std::string realtime(Frame& f, std::uint32_t index) {
        Rows& R = out_.rows;
        Reader r{f.data.data(), f.data.data() + f.data.size()};
        if (!r.has(6))
            return "data needs a 6-byte collection time, got " + std::to_string(r.left()) + " bytes";
        f.time_us = binary_time_gmt8_to_utc_us(r.p);
        r.p += 6;
        new_row(f, index);
        auto error = UnitsError::none;
        const std::uint8_t* error_at = r.end;
        while (r.left() > 0) {
            const std::uint8_t* start = r.p;
            const Mark before = mark();
            const std::uint32_t id = r.u8();
            const std::string err = unit(id, r);
            if (!err.empty() || !r.ok) {
                undo_unit(before);
                error = defined_unit(id) ? UnitsError::cut_short : UnitsError::unknown_unit;
                error_at = start;
                break;
            }
        }
        if (error != UnitsError::none && error_at == f.data.data() + 6) {
            // Not one unit decoded: nothing in the frame is worth a row (a
            // device that leaves out the time misaligns every unit this way).
            pop_row();
            return std::string(error == UnitsError::unknown_unit ? "unknown info unit " : "info unit ") +
                   hex2(*error_at) + (error == UnitsError::unknown_unit ? "" : " is cut short") +
                   " at the first unit: no unit decodes";
        }
        R.units_error.push_back(static_cast<std::uint8_t>(error));
        R.units_error_offset.push_back(error == UnitsError::none ? -1
                                                                 : std::int32_t(error_at - f.data.data()));
        R.tail.insert(R.tail.end(), error_at, r.end);
        R.tail_start.push_back(std::uint32_t(R.tail.size()));
        close_lists();
        return {};
    }

    std::string unit(std::uint32_t id, Reader& r) {
        Rows& R = out_.rows;
        const std::size_t row = R.size() - 1;
        switch (id) {
        case 0x01: { // whole vehicle, 20 bytes
            if (!r.has(20))
                return "vehicle unit needs 20 bytes";
            put(f_vehicle_status, r.u8(), 1, 1, 0);
            put(f_charging_status, r.u8(), 1, 1, 0);
            put(f_run_mode, r.u8(), 1, 1, 0);
            put(f_speed, r.u16(), 2, 0.1, 0);
            put(f_odometer, r.u32(), 4, 0.1, 0);
            put(f_voltage, r.u16(), 2, 0.1, 0);
            put(f_current, r.u16(), 2, 0.1, -1000);
            put(f_soc, r.u8(), 1, 1, 0);
            put(f_dcdc, r.u8(), 1, 1, 0);
            R.gear[row] = std::uint8_t(r.u8());
            put(f_insulation, r.u16(), 2, 1, 0);
            put(f_accel, r.u8(), 1, 1, 0);
            put(f_brake, r.u8(), 1, 1, 0);
            return {};
        }
        case 0x02: { // drive motors
            const auto count = r.u8();
            for (std::uint32_t i = 0; i < count && r.ok; ++i) {
                if (!r.has(12))
                    return "drive motor " + std::to_string(i + 1) + " of " + std::to_string(count) +
                           " is cut short";
                const double no = r.u8(), status = r.u8(), ctrl_t = temp(r.u8()),
                             rpm = word(r.u16(), 1, -20000), torque = word(r.u16(), 0.1, -2000),
                             motor_t = temp(r.u8()), volts = word(r.u16(), 0.1, 0),
                             amps = word(r.u16(), 0.1, -1000);
                R.motor.insert(R.motor.end(), {no, status, ctrl_t, rpm, torque, motor_t, volts, amps});
            }
            return {};
        }
        case 0x03: { // fuel cell: kept in the custom list (no columns yet), length computed
            const auto* start = r.p;
            r.u16();
            r.u16();
            r.u16();
            const auto probes = r.u16();
            if (!r.has(probes + 10))
                return "fuel cell unit is cut short";
            r.p += probes + 10;
            keep_raw(0x03, start, r.p);
            return {};
        }
        case 0x04: { // engine
            if (!r.has(5))
                return "engine unit needs 5 bytes";
            put(f_engine_status, r.u8(), 1, 1, 0);
            put(f_crank_rpm, r.u16(), 2, 1, 0);
            put(f_fuel_rate, r.u16(), 2, 0.01, 0);
            return {};
        }
        case 0x05: { // location: longitude first
            if (!r.has(9))
                return "location unit needs 9 bytes";
            const auto status = r.u8();
            const double lon = r.u32() / 1e6, lat = r.u32() / 1e6;
            R.location_status[row] = std::int32_t(status);
            if (!(status & 1)) {
                R.lat[row] = (status & 2) ? -lat : lat;
                R.lon[row] = (status & 4) ? -lon : lon;
            }
            return {};
        }
        case 0x06: { // extremes, 14 bytes
            if (!r.has(14))
                return "extremes unit needs 14 bytes";
            R.max_v_subsys[row] = std::int32_t(r.u8());
            R.max_v_cell[row] = std::int32_t(r.u8());
            put(f_max_cell_v, r.u16(), 2, 0.001, 0);
            R.min_v_subsys[row] = std::int32_t(r.u8());
            R.min_v_cell[row] = std::int32_t(r.u8());
            put(f_min_cell_v, r.u16(), 2, 0.001, 0);
            R.max_t_subsys[row] = std::int32_t(r.u8());
            R.max_t_probe[row] = std::int32_t(r.u8());
            put(f_max_temp, r.u8(), 1, 1, -40);
            R.min_t_subsys[row] = std::int32_t(r.u8());
            R.min_t_probe[row] = std::int32_t(r.u8());
            put(f_min_temp, r.u8(), 1, 1, -40);
            return {};
        }
        case 0x07: { // alarms
            R.alarm_level[row] = std::int32_t(r.u8());
            R.alarm_flags[row] = std::int64_t(r.u32());
            for (std::uint8_t cat = 0; cat < 4 && r.ok; ++cat) {
                const auto count = r.u8();
                for (std::uint32_t i = 0; i < count && r.ok; ++i) {
                    const auto code = r.u32();
                    if (r.ok) {
                        R.fault_category.push_back(cat);
                        R.fault_code.push_back(code);
                    }
                }
            }
            return {};
        }
        case 0x08: { // cell voltages, a frame's share of each subsystem
            const auto count = r.u8();
            for (std::uint32_t i = 0; i < count && r.ok; ++i) {
                const double no = r.u8(), volts = word(r.u16(), 0.1, 0), amps = word(r.u16(), 0.1, -1000),
                             total = r.u16(), start = r.u16();
                const auto cells = r.u8();
                if (!r.has(std::size_t(cells) * 2))
                    return "cell voltages of subsystem " + std::to_string(int(no)) + " are cut short";
                R.cellset.insert(R.cellset.end(), {no, volts, amps, total, start, double(cells)});
                for (std::uint32_t c = 0; c < cells; ++c)
                    R.cell_v.push_back(word(r.u16(), 0.001, 0));
                R.cellset_cells_start.push_back(std::uint32_t(R.cell_v.size()));
            }
            return {};
        }
        case 0x09: { // probe temperatures
            const auto count = r.u8();
            for (std::uint32_t i = 0; i < count && r.ok; ++i) {
                const auto no = r.u8();
                const auto probes = r.u16();
                if (!r.has(probes))
                    return "probe temperatures of subsystem " + std::to_string(no) + " are cut short";
                R.probeset_no.push_back(std::uint8_t(no));
                for (std::uint32_t c = 0; c < probes; ++c)
                    R.probe_c.push_back(temp(r.u8()));
                R.probeset_temps_start.push_back(std::uint32_t(R.probe_c.size()));
            }
            return {};
        }
        default:
            break;
        }
        if (id >= 0x80 && id <= 0xFE) { // user-defined units carry a WORD length
            const auto len = r.u16();
            if (!r.has(len))
                return "custom unit " + hex2(id) + " declares " + std::to_string(len) + " bytes past the end";
            keep_raw(std::uint8_t(id), r.p, r.p + len);
            r.p += len;
            return {};
        }
        return "unknown info unit " + hex2(id) + " (no length to skip it by)";
    }

    void keep_raw(std::uint8_t id, const std::uint8_t* b, const std::uint8_t* e) {
        Rows& R = out_.rows;
        R.custom_id.push_back(id);
        R.custom_value.insert(R.custom_value.end(), b, e);
        R.custom_value_start.push_back(std::uint32_t(R.custom_value.size()));
    }

    std::span<const std::uint8_t> d_;
    Result out_;
};

} // namespace

std::int64_t binary_time_gmt8_to_utc_us(const std::uint8_t* p) {
    const int year = 2000 + p[0];
    const unsigned m = p[1], d = p[2];
    if (m < 1 || m > 12 || d < 1 || d > 31 || p[3] > 23 || p[4] > 59 || p[5] > 60)
        return kNoTime;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap ? 1u : 0u))
        return kNoTime;
    const std::int64_t secs = days_from_civil(year, m, d) * 86400 + p[3] * 3600LL + p[4] * 60LL + p[5];
    return (secs - 8 * 3600) * 1'000'000;
}

Result decode(std::span<const std::uint8_t> data) {
    return Decoder(data).run();
}

} // namespace autolien::telemetry::gb32960
