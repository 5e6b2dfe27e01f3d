#include "autolien/gnss/nmea.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

namespace autolien::gnss::nmea {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kDayUs = 86'400'000'000LL;

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t(era) * 146097 + std::int64_t(doe) - 719468;
}

// Powers of ten that a double holds exactly.
constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

std::optional<double> num_slow(std::string_view s) {
    double v = 0;
    const auto* first = s.data();
    if (*first == '+')
        ++first;
    auto [p, ec] = std::from_chars(first, s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
        return std::nullopt;
    return v;
}

// A decimal field in place. NMEA numbers are [+-]digits[.digits]: as an
// integer mantissa below 2^53 over an exact power of ten, one IEEE division
// rounds correctly, so this equals from_chars, which takes everything else.
std::optional<double> num(std::string_view s) {
    if (s.empty())
        return std::nullopt;
    const char* p = s.data();
    const char* const end = p + s.size();
    const bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        ++p;
    std::uint64_t m = 0;
    int digits = 0, frac = -1;
    for (; p < end; ++p) {
        const unsigned d = unsigned(*p) - '0';
        if (d < 10) {
            m = m * 10 + d;
            ++digits;
            if (frac >= 0)
                ++frac;
        } else if (*p == '.' && frac < 0) {
            frac = 0;
        } else {
            return num_slow(s);
        }
    }
    if (digits == 0 || digits > 15 || frac > 22)
        return num_slow(s);
    double v = double(m);
    if (frac > 0)
        v /= kPow10[frac];
    return neg ? -v : v;
}

// ddmm.mmmm / dddmm.mmmm with a hemisphere letter.
std::optional<double> coord(std::string_view v, std::string_view hemi, int deg_digits) {
    if (v.size() < std::size_t(deg_digits) + 2 || hemi.size() != 1)
        return std::nullopt;
    int deg = 0;
    for (int i = 0; i < deg_digits; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return std::nullopt;
        deg = deg * 10 + (v[i] - '0');
    }
    const auto minutes = num(v.substr(deg_digits));
    if (!minutes || *minutes < 0 || *minutes >= 60)
        return std::nullopt;
    double out = deg + *minutes / 60.0;
    const char h = hemi[0];
    if (h == 'S' || h == 'W')
        out = -out;
    else if (h != 'N' && h != 'E')
        return std::nullopt;
    return out;
}

// hhmmss(.sss) to microseconds of the day.
std::optional<std::int64_t> time_of_day(std::string_view s) {
    if (s.size() < 6)
        return std::nullopt;
    int v[3];
    for (int i = 0; i < 3; ++i) {
        const char a = s[2 * i], b = s[2 * i + 1];
        if (a < '0' || a > '9' || b < '0' || b > '9')
            return std::nullopt;
        v[i] = (a - '0') * 10 + (b - '0');
    }
    if (v[0] > 23 || v[1] > 59 || v[2] > 60)
        return std::nullopt;
    std::int64_t frac_us = 0;
    if (s.size() > 6) {
        if (s[6] != '.')
            return std::nullopt;
        std::int64_t scale = 100'000;
        for (std::size_t i = 7; i < s.size(); ++i) {
            if (s[i] < '0' || s[i] > '9')
                return std::nullopt;
            frac_us += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    return (v[0] * 3600LL + v[1] * 60LL + v[2]) * 1'000'000LL + frac_us;
}

// ddmmyy to days since 1970 (years 80-99 are 19xx, as NMEA has it).
std::optional<std::int64_t> date_days(std::string_view s) {
    if (s.size() != 6)
        return std::nullopt;
    int v[3];
    for (int i = 0; i < 3; ++i) {
        const char a = s[2 * i], b = s[2 * i + 1];
        if (a < '0' || a > '9' || b < '0' || b > '9')
            return std::nullopt;
        v[i] = (a - '0') * 10 + (b - '0');
    }
    if (v[1] < 1 || v[1] > 12 || v[0] < 1 || v[0] > 31)
        return std::nullopt;
    const int year = v[2] >= 80 ? 1900 + v[2] : 2000 + v[2];
    return days_from_civil(year, unsigned(v[1]), unsigned(v[0]));
}

// Comma-separated fields in a fixed array: no allocation per sentence. A
// sentence with more fields than kMaxFields keeps the rest in the last one.
constexpr std::size_t kMaxFields = 40;
struct Fields {
    std::array<std::string_view, kMaxFields> f;
    std::size_t n = 0;
    std::size_t size() const { return n; }
    std::string_view operator[](std::size_t i) const { return f[i]; }
};

// Byte classes for the sentence scan.
constexpr std::uint8_t kPlain = 0, kStop = 1, kSync = 2, kComma = 3, kStar = 4;
constexpr std::array<std::uint8_t, 256> kByteClass = [] {
    std::array<std::uint8_t, 256> t{};
    t['\r'] = t['\n'] = t['$'] = kStop;
    t[0xB5] = kSync;
    t[','] = kComma;
    t['*'] = kStar;
    return t;
}();

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

struct Epoch {
    bool open = false;
    std::uint64_t offset = 0;
    std::uint8_t source = 1;
    std::optional<std::int64_t> tod_us;
    std::optional<std::int64_t> day; // from RMC or UBX
    double lat = kNaN, lon = kNaN, alt = kNaN, height = kNaN, speed = kNaN, heading = kNaN;
    std::int32_t quality = -1, num_sats = -1, fix_type = -1, carr_soln = -1;
    double hdop = kNaN, pdop = kNaN, sn = kNaN, se = kNaN, su = kNaN, age = kNaN;
    std::uint8_t rmc_status = 0, rmc_mode = 0;
    std::int64_t ubx_time_us = kNoTime;
};

class Decoder {
  public:
    explicit Decoder(std::span<const std::uint8_t> d) : d_(d) {}

    Result run() {
        const std::size_t n = d_.size();
        // Typical sentences are 60-90 bytes: reserving avoids most regrowth.
        out_.messages.reserve(n / 64 + 16);
        std::size_t pos = 0, junk = SIZE_MAX;
        while (pos < n) {
            const std::uint8_t c = d_[pos];
            if (c == '$' || c == '!') {
                flush_junk(junk, pos);
                pos = sentence(pos);
            } else if (c == 0xB5 && pos + 1 < n && d_[pos + 1] == 0x62) {
                flush_junk(junk, pos);
                pos = ubx(pos);
            } else if (c == '\r' || c == '\n') {
                flush_junk(junk, pos);
                ++pos;
            } else {
                if (junk == SIZE_MAX)
                    junk = pos;
                ++pos;
            }
        }
        flush_junk(junk, n);
        close_epoch();
        return std::move(out_);
    }

  private:
    void flush_junk(std::size_t& start, std::size_t end) {
        if (start == SIZE_MAX) [[likely]]
            return; // called at every sentence: no run of junk is the rule
        autolien::flush_junk(out_.rejects, d_, start, end, "sentence or message");
    }

    void reject(std::size_t off, Reason r, std::string msg, std::size_t b, std::size_t e) {
        add_reject(out_.rejects, d_, off, r, std::move(msg), b, e);
    }

    std::size_t sentence(std::size_t start) {
        const std::size_t n = d_.size();
        const std::uint8_t* d = d_.data();
        // One pass: find the end, the last '*', the XOR of the bytes before
        // it and the commas, so that fields are views into the input.
        // A sentence ends at CR/LF; another '$' or a UBX sync also ends a broken one.
        const std::size_t limit = std::min(n, start + 200);
        std::size_t end = start + 1, star = std::string_view::npos, ncomma = 0;
        std::uint8_t x = 0, x_star = 0;
        for (; end < limit; ++end) {
            const std::uint8_t c = d[end];
            const std::uint8_t k = kByteClass[c];
            if (k == kPlain) {
                x ^= c;
                continue;
            }
            if (k == kStop || (k == kSync && end + 1 < n && d[end + 1] == 0x62))
                break;
            if (k == kComma && ncomma < kMaxFields - 1)
                commas_[ncomma++] = end;
            else if (k == kStar) {
                star = end;
                x_star = x;
            }
            x ^= c;
        }
        const std::string_view s(reinterpret_cast<const char*>(d) + start, end - start);
        if (star == std::string_view::npos) {
            reject(start, end == n ? Reason::truncated : Reason::no_checksum,
                   "NMEA sentence without *hh checksum", start, end);
            return end;
        }
        star -= start;
        if (star + 3 != s.size()) {
            reject(start, end == n && s.size() < star + 3 ? Reason::truncated : Reason::bad_checksum,
                   "NMEA checksum must be two hex digits after '*'", start, end);
            return end;
        }
        const int hi = hex_digit(s[star + 1]), lo = hex_digit(s[star + 2]);
        if (hi < 0 || lo < 0 || unsigned(hi * 16 + lo) != x_star) {
            reject(start, Reason::bad_checksum, "NMEA checksum mismatch", start, end);
            return end;
        }
        // The fields: views between the commas before the '*' (a valid
        // sentence has none after it).
        Fields& f = fields_;
        f.n = 0;
        std::size_t from = 1;
        for (std::size_t c = 0; c < ncomma; ++c) {
            const std::size_t at = commas_[c] - start;
            f.f[f.n++] = s.substr(from, at - from);
            from = at + 1;
        }
        f.f[f.n++] = s.substr(from, star - from);
        const std::string_view addr = f[0];
        std::string kind;
        for (const char ch : addr) // printable ASCII only, so always valid UTF-8
            kind.push_back(ch >= 0x20 && ch < 0x7F ? ch : '?');
        Message msg{start, std::uint32_t(end - start), kind, false};
        if (addr.size() == 5) {
            const auto type = addr.substr(2);
            std::string err;
            if (type == "GGA")
                err = gga(f, start);
            else if (type == "RMC")
                err = rmc(f, start);
            else if (type == "GST")
                err = gst(f, start);
            else if (type == "GSA")
                err = gsa(f, start);
            else if (type == "VTG")
                err = vtg(f, start);
            else
                err = "-"; // another sentence type: listed, not used
            if (err.empty()) {
                msg.used = true;
            } else if (err != "-") {
                reject(start, Reason::bad_field, kind + ": " + err, start, end);
                return end;
            }
        }
        out_.messages.push_back(std::move(msg));
        return end;
    }

    // Starts a new epoch when a timed sentence carries another time of day.
    void timed(std::int64_t tod, std::size_t offset) {
        if (ep_.open && (ep_.source != 1 || (ep_.tod_us && *ep_.tod_us != tod)))
            close_epoch();
        if (!ep_.open) {
            ep_ = Epoch{};
            ep_.open = true;
            ep_.offset = offset;
            ep_.source = 1;
        }
        ep_.tod_us = tod;
    }

    void untimed(std::size_t offset) {
        if (!ep_.open || ep_.source != 1) {
            close_epoch();
            ep_ = Epoch{};
            ep_.open = true;
            ep_.offset = offset;
            ep_.source = 1;
        }
    }

    // Why a sentence is short of fields ("" when it is not).
    static std::string short_of(const Fields& f, std::size_t need, const char* what) {
        if (f.size() >= need)
            return {};
        return std::string(what) + " needs " + std::to_string(need) + " fields, got " +
               std::to_string(f.size());
    }

    // Sets the epoch position from NMEA ddmm.mmmm fields; false when malformed.
    bool position(const Fields& f, std::size_t lat_field) {
        const auto lat = coord(f[lat_field], f[lat_field + 1], 2),
                   lon = coord(f[lat_field + 2], f[lat_field + 3], 3);
        if (!lat || !lon)
            return false;
        ep_.lat = *lat;
        ep_.lon = *lon;
        return true;
    }

    std::string gga(const Fields& f, std::size_t off) {
        if (auto why = short_of(f, 15, "GGA"); !why.empty())
            return why;
        const auto tod = time_of_day(f[1]);
        if (!tod)
            return "bad time '" + std::string(f[1]) + "'";
        const auto q = num(f[6]);
        if (!q || *q < 0 || *q > 9 || *q != std::floor(*q))
            return "bad quality '" + std::string(f[6]) + "'";
        timed(*tod, off);
        ep_.quality = int(*q);
        if ((!f[2].empty() || !f[4].empty()) && !position(f, 2))
            return "bad position";
        if (auto v = num(f[7]))
            ep_.num_sats = int(*v);
        if (auto v = num(f[8]))
            ep_.hdop = *v;
        if (auto v = num(f[9])) {
            ep_.alt = *v;
            if (auto sep = num(f[11]))
                ep_.height = *v + *sep;
        }
        if (auto v = num(f[13]))
            ep_.age = *v;
        return {};
    }

    std::string rmc(const Fields& f, std::size_t off) {
        if (auto why = short_of(f, 10, "RMC"); !why.empty())
            return why;
        const auto tod = time_of_day(f[1]);
        if (!tod)
            return "bad time '" + std::string(f[1]) + "'";
        timed(*tod, off);
        if (f[2].size() == 1)
            ep_.rmc_status = std::uint8_t(f[2][0]);
        if (f.size() > 12 && f[12].size() == 1)
            ep_.rmc_mode = std::uint8_t(f[12][0]);
        if (const auto day = date_days(f[9]))
            ep_.day = *day;
        else if (!f[9].empty())
            return "bad date '" + std::string(f[9]) + "'";
        if (std::isnan(ep_.lat) && !f[3].empty() && !position(f, 3))
            return "bad position";
        if (auto v = num(f[7]))
            ep_.speed = *v * 1.852; // knots
        if (auto v = num(f[8]))
            ep_.heading = *v;
        return {};
    }

    std::string gst(const Fields& f, std::size_t off) {
        if (auto why = short_of(f, 9, "GST"); !why.empty())
            return why;
        const auto tod = time_of_day(f[1]);
        if (!tod)
            return "bad time '" + std::string(f[1]) + "'";
        timed(*tod, off);
        if (auto v = num(f[6]))
            ep_.sn = *v;
        if (auto v = num(f[7]))
            ep_.se = *v;
        if (auto v = num(f[8]))
            ep_.su = *v;
        return {};
    }

    std::string gsa(const Fields& f, std::size_t off) {
        if (auto why = short_of(f, 18, "GSA"); !why.empty())
            return why;
        untimed(off);
        if (auto v = num(f[15]))
            ep_.pdop = *v;
        if (std::isnan(ep_.hdop))
            if (auto v = num(f[16]))
                ep_.hdop = *v;
        return {};
    }

    std::string vtg(const Fields& f, std::size_t off) {
        if (auto why = short_of(f, 9, "VTG"); !why.empty())
            return why;
        untimed(off);
        if (std::isnan(ep_.heading))
            if (auto v = num(f[1]))
                ep_.heading = *v;
        if (std::isnan(ep_.speed))
            if (auto v = num(f[7]))
                ep_.speed = *v;
        return {};
    }

    std::size_t ubx(std::size_t start) {
        const std::size_t n = d_.size();
        if (start + 6 > n) {
            reject(start, Reason::truncated, "input ends inside a UBX header", start, n);
            return n;
        }
        const std::uint8_t cls = d_[start + 2], id = d_[start + 3];
        const std::size_t len = d_[start + 4] | (std::size_t(d_[start + 5]) << 8);
        const std::size_t end = start + 6 + len + 2;
        if (end > n) {
            reject(start, Reason::truncated, "input ends inside a UBX message", start, n);
            return n;
        }
        std::uint8_t a = 0, b = 0;
        for (std::size_t i = start + 2; i < start + 6 + len; ++i) {
            a = std::uint8_t(a + d_[i]);
            b = std::uint8_t(b + a);
        }
        if (a != d_[end - 2] || b != d_[end - 1]) {
            // A corrupt length could swallow good data: resync just after the sync bytes.
            reject(start, Reason::bad_checksum, "UBX Fletcher checksum mismatch", start, start + 2);
            return start + 2;
        }
        static const char* hex = "0123456789ABCDEF";
        std::string kind = "UBX-";
        kind += hex[cls >> 4];
        kind += hex[cls & 15];
        kind += '-';
        kind += hex[id >> 4];
        kind += hex[id & 15];
        Message msg{start, std::uint32_t(end - start), kind, false};
        if (cls == 0x01 && id == 0x07) {
            if (len != 92) {
                reject(start, Reason::bad_field, "NAV-PVT must be 92 bytes, got " + std::to_string(len),
                       start, end);
                return end;
            }
            nav_pvt(d_.data() + start + 6, start);
            msg.used = true;
        }
        out_.messages.push_back(std::move(msg));
        return end;
    }

    static std::uint32_t u4(const std::uint8_t* p) {
        return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
               (std::uint32_t(p[3]) << 24);
    }
    static std::int32_t i4(const std::uint8_t* p) { return static_cast<std::int32_t>(u4(p)); }

    void nav_pvt(const std::uint8_t* p, std::size_t off) {
        close_epoch();
        ep_ = Epoch{};
        ep_.open = true;
        ep_.offset = off;
        ep_.source = 2;
        const int year = p[4] | (p[5] << 8);
        const std::uint8_t valid = p[11];
        const std::uint8_t fix = p[20], flags = p[21];
        if ((valid & 0x3) == 0x3 && p[6] >= 1 && p[6] <= 12 && p[7] >= 1 && p[7] <= 31 && p[8] < 24 &&
            p[9] < 60 && p[10] < 61) {
            const std::int64_t secs =
                days_from_civil(year, p[6], p[7]) * 86400 + p[8] * 3600LL + p[9] * 60LL + p[10];
            ep_.ubx_time_us = secs * 1'000'000 + std::llround(i4(p + 16) / 1000.0);
        }
        const int carr = (flags >> 6) & 3;
        const bool fix_ok = flags & 1;
        ep_.fix_type = fix;
        ep_.carr_soln = carr;
        // NAV-PVT onto the GGA quality classes. Only a DR-only fix (fixType 1)
        // is class 6, as receivers write it in GGA; GNSS+DR (fixType 4) is
        // classed by its GNSS solution, and fix_type keeps the DR flag.
        if (fix == 0 || fix == 5 || !fix_ok)
            ep_.quality = 0;
        else if (fix == 1)
            ep_.quality = 6;
        else if (carr == 2)
            ep_.quality = 4;
        else if (carr == 1)
            ep_.quality = 5;
        else
            ep_.quality = (flags & 2) ? 2 : 1;
        ep_.num_sats = p[23];
        ep_.lon = i4(p + 24) / 1e7;
        ep_.lat = i4(p + 28) / 1e7;
        ep_.height = i4(p + 32) / 1000.0;
        ep_.alt = i4(p + 36) / 1000.0;
        // hAcc is used as the 1-sigma of both north and east (as ROS drivers do).
        ep_.sn = ep_.se = u4(p + 40) / 1000.0;
        ep_.su = u4(p + 44) / 1000.0;
        ep_.speed = i4(p + 60) / 1000.0 * 3.6;
        ep_.heading = i4(p + 64) / 1e5;
        ep_.pdop = (p[76] | (p[77] << 8)) / 100.0;
        close_epoch();
    }

    void close_epoch() {
        if (!ep_.open)
            return;
        ep_.open = false;
        Fixes& F = out_.fixes;
        std::int64_t t = kNoTime;
        if (ep_.source == 2) {
            t = ep_.ubx_time_us;
            if (t != kNoTime) {
                last_day_ = t / kDayUs;
                last_tod_ = t % kDayUs;
            }
        } else if (ep_.tod_us) {
            std::optional<std::int64_t> day = ep_.day;
            if (!day && last_day_) {
                day = *last_day_;
                if (last_tod_ && *ep_.tod_us + kDayUs / 2 < *last_tod_)
                    *day += 1; // the time of day wrapped past midnight
            }
            if (day) {
                t = *day * kDayUs + *ep_.tod_us;
                last_day_ = *day;
                last_tod_ = *ep_.tod_us;
            }
        }
        F.offset.push_back(ep_.offset);
        F.source.push_back(ep_.source);
        F.time_us.push_back(t);
        F.lat.push_back(ep_.lat);
        F.lon.push_back(ep_.lon);
        F.altitude_m.push_back(ep_.alt);
        F.height_m.push_back(ep_.height);
        F.speed_kmh.push_back(ep_.speed);
        F.heading_deg.push_back(ep_.heading);
        F.quality.push_back(ep_.quality);
        F.num_sats.push_back(ep_.num_sats);
        F.fix_type.push_back(ep_.fix_type);
        F.carr_soln.push_back(ep_.carr_soln);
        F.hdop.push_back(ep_.hdop);
        F.pdop.push_back(ep_.pdop);
        F.sigma_n_m.push_back(ep_.sn);
        F.sigma_e_m.push_back(ep_.se);
        F.sigma_u_m.push_back(ep_.su);
        F.diff_age_s.push_back(ep_.age);
        F.rmc_status.push_back(ep_.rmc_status);
        F.rmc_mode.push_back(ep_.rmc_mode);
    }

    std::span<const std::uint8_t> d_;
    Result out_;
    Epoch ep_;
    Fields fields_;
    std::array<std::size_t, kMaxFields> commas_{};
    std::optional<std::int64_t> last_day_, last_tod_;
};

} // namespace

Result decode(std::span<const std::uint8_t> data) {
    return Decoder(data).run();
}

} // namespace autolien::gnss::nmea
