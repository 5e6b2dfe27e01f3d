// Testbench helpers (host code: the standard library is fine here). Every
// testbench reads its input from --in FILE or stdin, writes its output to
// --out FILE or stdout, and with --check FILE compares the output with a
// golden file, printing each mismatch and returning their count (capped at
// 100 for the exit status).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace tb {

struct Args {
    std::vector<std::string> v;
    Args(int argc, char** argv) : v(argv + 1, argv + argc) {}
    bool flag(const std::string& name) const {
        for (const auto& a : v)
            if (a == name)
                return true;
        return false;
    }
    std::string opt(const std::string& name, const std::string& def = "") const {
        for (std::size_t i = 0; i + 1 < v.size(); ++i)
            if (v[i] == name)
                return v[i + 1];
        return def;
    }
    long num(const std::string& name, long def) const {
        const std::string s = opt(name);
        if (s.empty())
            return def;
        char* end = nullptr;
        const long x = std::strtol(s.c_str(), &end, 10);
        if (end == s.c_str() || *end != '\0') {
            std::fprintf(stderr, "%s wants an integer, got '%s'\n", name.c_str(), s.c_str());
            std::exit(2);
        }
        return x;
    }
};

inline std::vector<std::uint8_t> read_all(const std::string& path) {
    std::vector<std::uint8_t> b;
    if (path.empty() || path == "-") {
        b.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        return b;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(2);
    }
    b.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return b;
}

inline void write_all(const std::string& path, const std::vector<std::uint8_t>& b) {
    if (path.empty() || path == "-") {
        std::cout.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
        std::cout.flush();
        return;
    }
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}

// Length-prefixed records: u32 little-endian length, then the bytes.
inline std::vector<std::vector<std::uint8_t>> records(const std::vector<std::uint8_t>& b) {
    std::vector<std::vector<std::uint8_t>> r;
    std::size_t p = 0;
    while (p < b.size()) {
        if (b.size() - p < 4) {
            std::fprintf(stderr, "truncated record length at byte %zu\n", p);
            std::exit(2);
        }
        const std::uint32_t n = le32(&b[p]);
        p += 4;
        if (b.size() - p < n) {
            std::fprintf(stderr, "record at byte %zu claims %u bytes, %zu left\n", p - 4, n, b.size() - p);
            std::exit(2);
        }
        r.emplace_back(b.begin() + static_cast<std::ptrdiff_t>(p),
                       b.begin() + static_cast<std::ptrdiff_t>(p + n));
        p += n;
    }
    return r;
}

// Compares fixed-size items; prints the first mismatches in hex.
inline int compare(const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& want,
                   std::size_t item, const char* what) {
    if (got.size() != want.size()) {
        std::fprintf(stderr, "%s: %zu bytes out, %zu expected\n", what, got.size(), want.size());
        return 1;
    }
    int bad = 0;
    for (std::size_t i = 0; i < got.size(); i += item) {
        if (std::memcmp(&got[i], &want[i], item) != 0) {
            if (bad < 5) {
                std::fprintf(stderr, "%s: item %zu differs\n  got  ", what, i / item);
                for (std::size_t k = 0; k < item; ++k)
                    std::fprintf(stderr, "%02x", got[i + k]);
                std::fprintf(stderr, "\n  want ");
                for (std::size_t k = 0; k < item; ++k)
                    std::fprintf(stderr, "%02x", want[i + k]);
                std::fprintf(stderr, "\n");
            }
            ++bad;
        }
    }
    return bad;
}

// Writes the output or checks it; the exit status.
inline int finish(const Args& a, const std::vector<std::uint8_t>& out, std::size_t item, const char* what) {
    const std::string check = a.opt("--check");
    if (check.empty()) {
        write_all(a.opt("--out"), out);
        return 0;
    }
    const int bad = compare(out, read_all(check), item, what);
    std::fprintf(stderr, "%s: %zu items, %d mismatches\n", what, item ? out.size() / item : 0, bad);
    return bad > 100 ? 100 : bad;
}

} // namespace tb
