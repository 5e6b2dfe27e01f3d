// A cheap JT/T 808 load generator for `autolien serve` (bench/bench_gateway.py).
//
// One thread, Linux epoll, one non-blocking TCP connection per terminal. Each
// terminal registers (0x0100 -> 0x8100, reading its authentication code),
// authenticates (0x0102 -> 0x8001) and then sends 0x0200 location reports on
// a fixed schedule: report k of terminal i is due at
//     start + (k * N + i) * interval / N,
// so the phases are spread evenly and one cursor walks the whole schedule.
// The acknowledgement latency of a report is the time from its send to the
// 0x8001 that answers its serial (CLOCK_MONOTONIC); it is also given from the
// report's due time, which counts any lag of the generator itself (so a slow
// generator cannot hide server latency: no coordinated omission).
//
// Each terminal's report is prebuilt once (header, body, check code, escape);
// a send patches the serial, longitude, BCD time and mileage in place and
// updates the check code by XOR-ing out the old bytes and in the new. Only
// when a patched byte or the check code is a flag/escape byte (0x7E/0x7D) is
// the frame escaped again from its unescaped form.
//
// Values, so that a test can check the store against them:
//   terminal i: phone = BCD of (phone_base + i), 12 digits
//   report k:   lat = lat0 + i * 1e-4 deg, lon = lon0 + k * 1e-6 deg,
//               time = time_base + k s (sent as BCD, GMT+8),
//               mileage = (1000 + k) * 0.1 km, speed 30.0 km/h, course 90,
//               altitude 10 m, alarm 0, status 3 (ACC on, located).
//
// Prints one JSON line on stdout. Build: c++ -O2 -std=c++20 loadgen.cpp.

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr uint16_t kRegister = 0x0100, kRegisterReply = 0x8100, kAuth = 0x0102, kLocation = 0x0200,
                   kGeneralReply = 0x8001;
constexpr int kRing = 256; // reports in flight per terminal that can be matched by serial

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint8_t bcd2(int v) {
    return uint8_t(((v / 10) << 4) | (v % 10));
}

// YY MM DD hh mm ss in GMT+8 (JT/T 808 time), as BCD
void bcd_time(int64_t epoch, uint8_t out[6]) {
    time_t t = time_t(epoch + 8 * 3600);
    tm g{};
    gmtime_r(&t, &g);
    out[0] = bcd2(g.tm_year % 100);
    out[1] = bcd2(g.tm_mon + 1);
    out[2] = bcd2(g.tm_mday);
    out[3] = bcd2(g.tm_hour);
    out[4] = bcd2(g.tm_min);
    out[5] = bcd2(g.tm_sec);
}

void put16(uint8_t* p, uint32_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}

bool needs_escape(uint8_t b) {
    return b == 0x7E || b == 0x7D;
}

// header + body -> 7E escaped(header + body + check code) 7E
void frame(const std::vector<uint8_t>& payload, std::vector<uint8_t>& out) {
    uint8_t cs = 0;
    for (uint8_t b : payload)
        cs ^= b;
    out.clear();
    out.push_back(0x7E);
    auto esc = [&](uint8_t b) {
        if (b == 0x7E) {
            out.push_back(0x7D);
            out.push_back(0x02);
        } else if (b == 0x7D) {
            out.push_back(0x7D);
            out.push_back(0x01);
        } else {
            out.push_back(b);
        }
    };
    for (uint8_t b : payload)
        esc(b);
    esc(cs);
    out.push_back(0x7E);
}

std::vector<uint8_t> header(uint16_t msg_id, size_t body_len, const uint8_t phone[6], uint16_t serial) {
    std::vector<uint8_t> h(12);
    put16(&h[0], msg_id);
    put16(&h[2], uint32_t(body_len & 0x3FF));
    std::memcpy(&h[4], phone, 6);
    put16(&h[10], serial);
    return h;
}

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    int terminals = 100;
    double interval = 1.0;
    double seconds = 10.0;
    long reports = 0; // reports per terminal; 0: as many as fit in --seconds
    uint64_t phone_base = 13900000000ULL;
    int64_t time_base = 0; // 0: now
    double lat0 = 31.0, lon0 = 121.0;
    int src_ips = 0; // 0: one per 20,000 terminals
    int max_connecting = 1000;
    double drain = 10.0; // seconds to wait for the last acknowledgements
    double connect_timeout = 60.0;
    std::string cpu;
    std::string log; // every location frame sent, hex, one a line
};

enum class St { Idle, Connecting, Registering, Authenticating, Running, Dead };

struct Terminal {
    int fd = -1;
    St st = St::Idle;
    uint8_t phone[6]{};
    uint16_t serial = 0; // next serial
    // the location report: unescaped header+body, its check code, the escaped frame
    std::vector<uint8_t> raw, wire;
    uint8_t cs = 0;
    bool wire_plain = false; // wire is raw + cs, unescaped, between the flags
    std::vector<uint8_t> rbuf;
    std::string wpend; // bytes the socket did not take yet
    // reports in flight: serial -> (send time, due time)
    uint16_t ring_serial[kRing]{};
    int64_t ring_sent[kRing]{};
    int64_t ring_due[kRing]{};
    bool ring_used[kRing]{};
    int in_flight = 0;
};

// offsets of the patched fields in the unescaped location payload (2013 header)
constexpr size_t kOffSerial = 10, kOffLon = 12 + 12, kOffTime = 12 + 22, kOffMileage = 12 + 28 + 2;
constexpr size_t kLocationBody = 28 + 6;

struct Stats {
    long connect_failed = 0, refused_register = 0, refused_auth = 0, authenticated = 0, dropped = 0;
    long sent = 0, acked = 0, nacked = 0, unmatched = 0, skipped = 0;
    std::vector<uint32_t> lat_us, lat_due_us, lag_us;
};

Options opt;
Stats stats;
std::vector<Terminal> terms;
int ep = -1;
FILE* frame_log = nullptr;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

void phone_bcd(uint64_t n, uint8_t out[6]) {
    for (int j = 5; j >= 0; --j) {
        uint8_t lo = uint8_t(n % 10);
        n /= 10;
        uint8_t hi = uint8_t(n % 10);
        n /= 10;
        out[j] = uint8_t((hi << 4) | lo);
    }
}

void build_location(Terminal& t, int i) {
    std::vector<uint8_t> body(kLocationBody);
    put32(&body[0], 0); // alarm
    put32(&body[4], 3); // status: ACC on, located
    put32(&body[8], uint32_t(std::llround(opt.lat0 * 1e6)) + uint32_t(i) * 100);
    put32(&body[12], uint32_t(std::llround(opt.lon0 * 1e6)));
    put16(&body[16], 10);  // altitude m
    put16(&body[18], 300); // speed 0.1 km/h
    put16(&body[20], 90);  // course
    bcd_time(opt.time_base, &body[22]);
    body[28] = 0x01; // additional item: mileage, 4 bytes, 0.1 km
    body[29] = 4;
    put32(&body[30], 1000);
    t.raw = header(kLocation, body.size(), t.phone, 0);
    t.raw.insert(t.raw.end(), body.begin(), body.end());
    t.cs = 0;
    for (uint8_t b : t.raw)
        t.cs ^= b;
    frame(t.raw, t.wire);
    t.wire_plain = t.wire.size() == t.raw.size() + 3;
}

// Patches bytes [off, off+n) of the unescaped payload, keeping the check code
// right; returns false when the escaped frame must be rebuilt.
bool patch(Terminal& t, size_t off, const uint8_t* v, size_t n) {
    bool plain = true;
    for (size_t j = 0; j < n; ++j) {
        t.cs ^= uint8_t(t.raw[off + j] ^ v[j]);
        t.raw[off + j] = v[j];
        if (needs_escape(v[j]))
            plain = false;
        else if (t.wire_plain)
            t.wire[1 + off + j] = v[j];
    }
    return plain;
}

void location_for(Terminal& t, int i, long k, uint16_t serial) {
    (void)i;
    uint8_t s[2], lon[4], when[6], mil[4];
    put16(s, serial);
    put32(lon, uint32_t(std::llround(opt.lon0 * 1e6)) + uint32_t(k));
    bcd_time(opt.time_base + k, when);
    put32(mil, uint32_t(1000 + k));
    bool plain = t.wire_plain;
    plain &= patch(t, kOffSerial, s, 2);
    plain &= patch(t, kOffLon, lon, 4);
    plain &= patch(t, kOffTime, when, 6);
    plain &= patch(t, kOffMileage, mil, 4);
    plain &= !needs_escape(t.cs);
    if (plain) {
        t.wire[t.wire.size() - 2] = t.cs;
    } else {
        // a flag or escape byte among the patched bytes: escape the whole frame again
        frame(t.raw, t.wire);
        t.wire_plain = t.wire.size() == t.raw.size() + 3;
    }
}

void kill_term(Terminal& t, bool count) {
    if (t.fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, t.fd, nullptr);
        close(t.fd);
        t.fd = -1;
    }
    if (count && t.st != St::Dead)
        ++stats.dropped;
    t.st = St::Dead;
}

void want_out(Terminal& t, int i, bool on) {
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u64 = uint64_t(i);
    epoll_ctl(ep, EPOLL_CTL_MOD, t.fd, &ev);
}

void send_bytes(Terminal& t, int i, const uint8_t* p, size_t n) {
    if (t.fd < 0)
        return;
    if (!t.wpend.empty()) {
        t.wpend.append(reinterpret_cast<const char*>(p), n);
        return;
    }
    ssize_t w = ::send(t.fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            kill_term(t, true);
            return;
        }
        w = 0;
    }
    if (size_t(w) < n) {
        t.wpend.append(reinterpret_cast<const char*>(p) + w, n - size_t(w));
        want_out(t, i, true);
    }
}

void send_frame(Terminal& t, int i, uint16_t msg_id, const std::vector<uint8_t>& body) {
    auto p = header(msg_id, body.size(), t.phone, t.serial++);
    p.insert(p.end(), body.begin(), body.end());
    std::vector<uint8_t> w;
    frame(p, w);
    send_bytes(t, i, w.data(), w.size());
}

void send_register(Terminal& t, int i) {
    std::vector<uint8_t> b(37, 0); // province, city, maker(5), model(20), id(7), colour, plate
    put16(&b[0], 44);
    put16(&b[2], 100);
    std::memcpy(&b[4], "MAKER", 5);
    std::memcpy(&b[9], "LOADGEN", 7);
    std::memcpy(&b[29], "DEV0001", 7);
    t.st = St::Registering;
    send_frame(t, i, kRegister, b);
}

void on_frame(Terminal& t, int i, const uint8_t* p, size_t n) {
    // p: unescaped header + body, check code already verified and removed
    if (n < 12)
        return;
    uint16_t msg_id = uint16_t(p[0] << 8 | p[1]);
    uint16_t props = uint16_t(p[2] << 8 | p[3]);
    size_t hlen = (props & 0x4000) ? 17 : 12;
    if (n < hlen)
        return;
    const uint8_t* b = p + hlen;
    size_t bn = n - hlen;
    if (msg_id == kRegisterReply && t.st == St::Registering && bn >= 3) {
        if (b[2] != 0) {
            ++stats.refused_register;
            kill_term(t, false);
            return;
        }
        t.st = St::Authenticating;
        send_frame(t, i, kAuth, std::vector<uint8_t>(b + 3, b + bn));
        return;
    }
    if (msg_id != kGeneralReply || bn < 5)
        return;
    uint16_t serial = uint16_t(b[0] << 8 | b[1]);
    uint16_t ack_of = uint16_t(b[2] << 8 | b[3]);
    uint8_t result = b[4];
    if (ack_of == kAuth && t.st == St::Authenticating) {
        if (result != 0) {
            ++stats.refused_auth;
            kill_term(t, false);
            return;
        }
        t.st = St::Running;
        ++stats.authenticated;
        return;
    }
    if (ack_of != kLocation)
        return;
    int slot = serial % kRing;
    if (!t.ring_used[slot] || t.ring_serial[slot] != serial) {
        ++stats.unmatched;
        return;
    }
    t.ring_used[slot] = false;
    --t.in_flight;
    if (result != 0) {
        ++stats.nacked;
        return;
    }
    int64_t now = now_ns();
    ++stats.acked;
    stats.lat_us.push_back(uint32_t(std::min<int64_t>((now - t.ring_sent[slot]) / 1000, UINT32_MAX)));
    stats.lat_due_us.push_back(uint32_t(std::min<int64_t>((now - t.ring_due[slot]) / 1000, UINT32_MAX)));
}

void on_readable(Terminal& t, int i) {
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = ::recv(t.fd, buf, sizeof buf, 0);
        if (r == 0) {
            kill_term(t, true);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            kill_term(t, true);
            return;
        }
        t.rbuf.insert(t.rbuf.end(), buf, buf + r);
        if (size_t(r) < sizeof buf)
            break;
    }
    // frames are 7E ... 7E; unescape, check, hand on
    size_t pos = 0, n = t.rbuf.size();
    uint8_t un[2048];
    while (pos < n) {
        auto* s = static_cast<uint8_t*>(std::memchr(&t.rbuf[pos], 0x7E, n - pos));
        if (!s)
            break;
        size_t start = size_t(s - t.rbuf.data());
        auto* e = start + 1 < n ? static_cast<uint8_t*>(std::memchr(&t.rbuf[start + 1], 0x7E, n - start - 1))
                                : nullptr;
        if (!e) {
            pos = start;
            break;
        }
        size_t end = size_t(e - t.rbuf.data());
        pos = end + 1;
        size_t m = 0;
        bool ok = end - start - 1 <= sizeof un;
        for (size_t j = start + 1; ok && j < end; ++j) {
            uint8_t c = t.rbuf[j];
            if (c == 0x7D) {
                if (j + 1 >= end || (t.rbuf[j + 1] != 1 && t.rbuf[j + 1] != 2)) {
                    ok = false;
                    break;
                }
                c = t.rbuf[j + 1] == 1 ? 0x7D : 0x7E;
                ++j;
            }
            un[m++] = c;
        }
        if (!ok || m < 13) {
            if (end == start + 1)
                pos = end; // 7E 7E: this end flag may start the next frame
            continue;
        }
        uint8_t cs = 0;
        for (size_t j = 0; j + 1 < m; ++j)
            cs ^= un[j];
        if (cs != un[m - 1])
            continue;
        on_frame(t, i, un, m - 1);
        if (t.st == St::Dead)
            return;
    }
    t.rbuf.erase(t.rbuf.begin(), t.rbuf.begin() + long(std::min(pos, n)));
}

void on_writable(Terminal& t, int i) {
    if (t.st == St::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(t.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            ++stats.connect_failed;
            kill_term(t, false);
            return;
        }
        want_out(t, i, false);
        send_register(t, i);
        return;
    }
    while (!t.wpend.empty()) {
        ssize_t w = ::send(t.fd, t.wpend.data(), t.wpend.size(), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            kill_term(t, true);
            return;
        }
        t.wpend.erase(0, size_t(w));
    }
    want_out(t, i, false);
}

bool start_connect(Terminal& t, int i, const sockaddr_in& dst) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket (raise the open-file limit?)");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_ips > 1) {
        // spread source addresses over 127.0.0.1..N so ephemeral ports last
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl((127u << 24) | uint32_t(1 + i % opt.src_ips));
        if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0)
            die("bind source address");
    }
    t.fd = fd;
    t.st = St::Connecting;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = uint64_t(i);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
        ++stats.connect_failed;
        kill_term(t, false);
        return false;
    }
    return true;
}

void poll_once(int timeout_ms) {
    static epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_wait");
    }
    for (int j = 0; j < n; ++j) {
        int i = int(evs[j].data.u64);
        Terminal& t = terms[size_t(i)];
        if (t.fd < 0)
            continue;
        uint32_t e = evs[j].events;
        if (t.st == St::Connecting) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_writable(t, i);
            continue;
        }
        if (e & EPOLLIN)
            on_readable(t, i);
        else if (e & (EPOLLERR | EPOLLHUP)) {
            kill_term(t, true);
            continue;
        }
        if (t.fd >= 0 && (e & EPOLLOUT))
            on_writable(t, i);
    }
}

double quantile_ms(std::vector<uint32_t>& v, double q) {
    if (v.empty())
        return -1;
    size_t k = std::min(v.size() - 1, size_t(q * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(k), v.end());
    return v[k] / 1000.0;
}

void usage() {
    std::fprintf(stderr,
                 "usage: loadgen --port P [--host 127.0.0.1] [--terminals N] [--interval S] [--seconds S]\n"
                 "               [--reports K] [--phone-base N] [--time-base EPOCH] [--lat0 D] [--lon0 D]\n"
                 "               [--src-ips N] [--max-connecting N] [--drain S] [--cpu LIST] [--log FILE]\n");
    std::exit(2);
}

void parse(int argc, char** argv) {
    for (int a = 1; a < argc; ++a) {
        std::string k = argv[a];
        if (a + 1 >= argc)
            usage();
        const char* v = argv[++a];
        if (k == "--host")
            opt.host = v;
        else if (k == "--port")
            opt.port = std::atoi(v);
        else if (k == "--terminals")
            opt.terminals = std::atoi(v);
        else if (k == "--interval")
            opt.interval = std::atof(v);
        else if (k == "--seconds")
            opt.seconds = std::atof(v);
        else if (k == "--reports")
            opt.reports = std::atol(v);
        else if (k == "--phone-base")
            opt.phone_base = std::strtoull(v, nullptr, 10);
        else if (k == "--time-base")
            opt.time_base = std::atoll(v);
        else if (k == "--lat0")
            opt.lat0 = std::atof(v);
        else if (k == "--lon0")
            opt.lon0 = std::atof(v);
        else if (k == "--src-ips")
            opt.src_ips = std::atoi(v);
        else if (k == "--max-connecting")
            opt.max_connecting = std::atoi(v);
        else if (k == "--drain")
            opt.drain = std::atof(v);
        else if (k == "--connect-timeout")
            opt.connect_timeout = std::atof(v);
        else if (k == "--cpu")
            opt.cpu = v;
        else if (k == "--log")
            opt.log = v;
        else
            usage();
    }
    if (opt.port <= 0 || opt.terminals <= 0 || opt.interval <= 0)
        usage();
}

void pin(const std::string& list) {
    cpu_set_t set;
    CPU_ZERO(&set);
    size_t p = 0;
    while (p < list.size()) {
        size_t q = list.find(',', p);
        std::string part = list.substr(p, q == std::string::npos ? std::string::npos : q - p);
        size_t dash = part.find('-');
        int lo = std::atoi(part.c_str()),
            hi = dash == std::string::npos ? lo : std::atoi(part.c_str() + dash + 1);
        for (int c = lo; c <= hi; ++c)
            CPU_SET(c, &set);
        if (q == std::string::npos)
            break;
        p = q + 1;
    }
    if (sched_setaffinity(0, sizeof set, &set) < 0)
        die("sched_setaffinity");
}

} // namespace

int main(int argc, char** argv) {
    parse(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    if (!opt.cpu.empty())
        pin(opt.cpu);
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rlim_t(opt.terminals) + 64) {
        errno = EMFILE;
        die("open-file limit below the number of terminals");
    }
    if (opt.src_ips <= 0)
        opt.src_ips = 1 + (opt.terminals - 1) / 20000;
    if (opt.time_base == 0)
        opt.time_base = int64_t(std::time(nullptr));
    if (!opt.log.empty() && !(frame_log = std::fopen(opt.log.c_str(), "w")))
        die("open --log");

    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(uint16_t(opt.port));
    if (inet_pton(AF_INET, opt.host.c_str(), &dst.sin_addr) != 1)
        die("--host");
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");

    const int N = opt.terminals;
    terms.resize(size_t(N));
    for (int i = 0; i < N; ++i) {
        phone_bcd(opt.phone_base + uint64_t(i), terms[size_t(i)].phone);
        terms[size_t(i)].serial = 1;
        build_location(terms[size_t(i)], i);
    }

    // --- connect, register, authenticate: at most max_connecting at once
    int64_t t0 = now_ns();
    int next = 0;
    auto settled = [&] {
        long pending = 0;
        for (int i = 0; i < next; ++i) {
            St s = terms[size_t(i)].st;
            pending += s == St::Connecting || s == St::Registering || s == St::Authenticating;
        }
        return pending;
    };
    long pending = 0;
    while (next < N || pending > 0) {
        while (next < N && pending < opt.max_connecting) {
            start_connect(terms[size_t(next)], next, dst);
            ++next;
            ++pending;
        }
        poll_once(10);
        pending = settled();
        if (double(now_ns() - t0) / 1e9 > opt.connect_timeout)
            break;
    }
    for (auto& t : terms)
        if (t.st != St::Running && t.st != St::Dead) {
            ++stats.connect_failed;
            kill_term(t, false);
        }
    int64_t t_auth = now_ns();

    // --- reports on the schedule
    const long total = opt.reports > 0 ? opt.reports * long(N) : long(opt.seconds * double(N) / opt.interval);
    const double step_ns = opt.interval * 1e9 / double(N);
    stats.lat_us.reserve(size_t(total));
    stats.lat_due_us.reserve(size_t(total));
    stats.lag_us.reserve(size_t(total));
    const int64_t start = now_ns() + 200'000'000; // a moment for the server to settle
    // tells bench_gateway.py when to sample the server's CPU
    std::printf("{\"event\": \"reporting\", \"authenticated\": %ld}\n", stats.authenticated);
    std::fflush(stdout);
    double cpu0 = cpu_seconds();
    long g = 0;
    int64_t last_send = start;
    while (g < total) {
        int64_t now = now_ns();
        while (g < total) {
            int64_t due = start + int64_t(double(g) * step_ns);
            if (due > now)
                break;
            int i = int(g % N);
            long k = g / N;
            ++g;
            Terminal& t = terms[size_t(i)];
            if (t.st != St::Running || t.fd < 0) {
                ++stats.skipped;
                continue;
            }
            uint16_t serial = t.serial++;
            int slot = serial % kRing;
            if (t.ring_used[slot]) { // kRing reports unanswered: count the oldest as lost
                --t.in_flight;
            }
            location_for(t, i, k, serial);
            t.ring_used[slot] = true;
            t.ring_serial[slot] = serial;
            t.ring_due[slot] = due;
            t.ring_sent[slot] = now_ns();
            ++t.in_flight;
            ++stats.sent;
            stats.lag_us.push_back(uint32_t((t.ring_sent[slot] - due) / 1000));
            send_bytes(t, i, t.wire.data(), t.wire.size());
            if (frame_log) {
                std::fprintf(frame_log, "%d ", i);
                for (uint8_t b : t.wire)
                    std::fprintf(frame_log, "%02x", b);
                std::fputc('\n', frame_log);
            }
            last_send = now;
        }
        if (g >= total)
            break;
        int64_t due = start + int64_t(double(g) * step_ns);
        int64_t wait = due - now_ns();
        poll_once(wait <= 0 ? 0 : int((wait + 999'999) / 1'000'000));
    }
    // --- the last acknowledgements
    int64_t drain_end = now_ns() + int64_t(opt.drain * 1e9);
    int64_t last_ack = last_send;
    long before = -1;
    while (now_ns() < drain_end) {
        long waiting = 0;
        for (auto& t : terms)
            waiting += t.st == St::Running ? t.in_flight : 0;
        if (waiting == 0)
            break;
        if (stats.acked + stats.nacked != before) {
            before = stats.acked + stats.nacked;
            last_ack = now_ns();
        }
        poll_once(5);
    }
    if (stats.acked + stats.nacked != before)
        last_ack = now_ns();
    int64_t end = std::max(last_ack, last_send);
    double cpu1 = cpu_seconds();
    long unacked = 0;
    for (auto& t : terms)
        unacked += t.in_flight;
    if (frame_log)
        std::fclose(frame_log);

    double span = double(end - start) / 1e9;
    double send_span = double(last_send - start) / 1e9;
    std::printf(
        "{\"generator\": \"c++ epoll\", \"terminals\": %d, \"interval_s\": %g, \"reports_each\": %ld, "
        "\"authenticated\": %ld, \"connect_failed\": %ld, \"refused_register\": %ld, "
        "\"refused_auth\": %ld, \"dropped\": %ld, \"skipped\": %ld, "
        "\"sent\": %ld, \"acked\": %ld, \"nacked\": %ld, \"unacked\": %ld, \"unmatched\": %ld, "
        "\"connect_phase_s\": %.2f, \"run_s\": %.2f, "
        "\"offered_frames_per_s\": %.1f, \"sent_frames_per_s\": %.1f, \"acked_frames_per_s\": %.1f, "
        "\"ack_p50_ms\": %.3f, \"ack_p99_ms\": %.3f, \"ack_p999_ms\": %.3f, \"ack_max_ms\": %.3f, "
        "\"ack_from_due_p99_ms\": %.3f, \"send_lag_p99_ms\": %.3f, "
        "\"generator_cpu_s\": %.3f, \"generator_cpu_share\": %.3f, \"src_ips\": %d}\n",
        N, opt.interval, total / N, stats.authenticated, stats.connect_failed, stats.refused_register,
        stats.refused_auth, stats.dropped, stats.skipped, stats.sent, stats.acked, stats.nacked, unacked,
        stats.unmatched, double(t_auth - t0) / 1e9, span, double(N) / opt.interval,
        send_span > 0 ? double(stats.sent) / send_span : 0.0, span > 0 ? double(stats.acked) / span : 0.0,
        quantile_ms(stats.lat_us, 0.50), quantile_ms(stats.lat_us, 0.99), quantile_ms(stats.lat_us, 0.999),
        stats.lat_us.empty() ? -1.0 : *std::max_element(stats.lat_us.begin(), stats.lat_us.end()) / 1000.0,
        quantile_ms(stats.lat_due_us, 0.99), quantile_ms(stats.lag_us, 0.99), cpu1 - cpu0,
        span > 0 ? (cpu1 - cpu0) / span : 0.0, opt.src_ips);
    return 0;
}
