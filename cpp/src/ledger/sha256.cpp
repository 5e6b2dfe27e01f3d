#include "autolien/kernels/sha256.hpp"
#include "autolien/ledger/hash.hpp"

#include <atomic>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace autolien::ledger {

namespace {

inline void store_be32(std::uint8_t* p, std::uint32_t v) {
    p[0] = std::uint8_t(v >> 24);
    p[1] = std::uint8_t(v >> 16);
    p[2] = std::uint8_t(v >> 8);
    p[3] = std::uint8_t(v);
}

inline void store_be64(std::uint8_t* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        p[i] = std::uint8_t(v);
        v >>= 8;
    }
}

bool detect_shani() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    const bool ssse3 = (c >> 9) & 1u;
    const bool sse41 = (c >> 19) & 1u;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    const bool sha = (b >> 29) & 1u;
    return ssse3 && sse41 && sha;
#else
    return false;
#endif
}

const bool g_shani_supported = detect_shani();

using CompressFn = void (*)(std::uint32_t*, const std::uint8_t*, std::size_t) noexcept;

std::atomic<CompressFn> g_compress{g_shani_supported ? &sha256_compress_shani : &sha256_compress_portable};

} // namespace

void sha256_compress_portable(std::uint32_t state[8], const std::uint8_t* blocks,
                              std::size_t nblocks) noexcept {
    // The rounds live in the shared kernel header, which the GPU and FPGA
    // kernels compile too.
    kernels::sha256_compress_blocks(state, blocks, nblocks);
}

bool sha256_shani_supported() noexcept {
    return g_shani_supported;
}

Sha256Backend sha256_backend() noexcept {
    return g_compress.load(std::memory_order_relaxed) == &sha256_compress_shani ? Sha256Backend::shani
                                                                                : Sha256Backend::portable;
}

void sha256_set_backend(Sha256Backend backend) {
    if (backend == Sha256Backend::shani) {
        if (!g_shani_supported)
            throw std::invalid_argument("backend 'shani' is not supported by this CPU");
        g_compress.store(&sha256_compress_shani);
    } else {
        g_compress.store(&sha256_compress_portable);
    }
}

std::string_view sha256_backend_name(Sha256Backend backend) noexcept {
    return backend == Sha256Backend::shani ? "shani" : "portable";
}

void sha256_compress(std::uint32_t state[8], const std::uint8_t* blocks, std::size_t nblocks) noexcept {
    g_compress.load(std::memory_order_relaxed)(state, blocks, nblocks);
}

Sha256::Sha256() noexcept : buf_{} {
    std::memcpy(state_, kernels::kSha256IV, sizeof(kernels::kSha256IV));
}

void Sha256::update(const std::uint8_t* data, std::size_t len) noexcept {
    if (len == 0)
        return;
    const CompressFn compress = g_compress.load(std::memory_order_relaxed);
    total_ += len;
    if (buf_len_ > 0) {
        const std::size_t take = std::min<std::size_t>(64 - buf_len_, len);
        std::memcpy(buf_ + buf_len_, data, take);
        buf_len_ += take;
        data += take;
        len -= take;
        if (buf_len_ < 64)
            return;
        compress(state_, buf_, 1);
        buf_len_ = 0;
    }
    if (len >= 64) {
        const std::size_t n = len / 64;
        compress(state_, data, n);
        data += n * 64;
        len -= n * 64;
    }
    if (len > 0) {
        std::memcpy(buf_, data, len);
        buf_len_ = len;
    }
}

void Sha256::final(std::uint8_t out[32]) noexcept {
    const CompressFn compress = g_compress.load(std::memory_order_relaxed);
    const std::uint64_t bits = total_ * 8;
    buf_[buf_len_++] = 0x80;
    if (buf_len_ > 56) {
        std::memset(buf_ + buf_len_, 0, 64 - buf_len_);
        compress(state_, buf_, 1);
        buf_len_ = 0;
    }
    std::memset(buf_ + buf_len_, 0, 56 - buf_len_);
    store_be64(buf_ + 56, bits);
    compress(state_, buf_, 1);
    for (int i = 0; i < 8; ++i)
        store_be32(out + 4 * i, state_[i]);
}

void sha256(const std::uint8_t* data, std::size_t len, std::uint8_t out[32]) noexcept {
    Sha256 h;
    h.update(data, len);
    h.final(out);
}

void sha256_prefixed(std::uint8_t prefix, const std::uint8_t* data, std::size_t len,
                     std::uint8_t out[32]) noexcept {
    // Short messages (most ledger records) are padded in place on the stack:
    // the streaming path's buffer copies cost about as much as a block.
    if (len + 1 + 9 <= 128) {
        alignas(16) std::uint8_t blk[128];
        blk[0] = prefix;
        std::memcpy(blk + 1, data, len);
        std::size_t used = len + 1;
        blk[used++] = 0x80;
        const std::size_t nblocks = used + 8 <= 64 ? 1 : 2;
        std::memset(blk + used, 0, nblocks * 64 - 8 - used);
        store_be64(blk + nblocks * 64 - 8, std::uint64_t(len + 1) * 8);
        std::uint32_t st[8];
        std::memcpy(st, kernels::kSha256IV, sizeof(kernels::kSha256IV));
        sha256_compress(st, blk, nblocks);
        for (int i = 0; i < 8; ++i)
            store_be32(out + 4 * i, st[i]);
        return;
    }
    Sha256 h;
    h.update(&prefix, 1);
    h.update(data, len);
    h.final(out);
}

void sha256_pair(std::uint8_t prefix, const std::uint8_t* a, const std::uint8_t* b,
                 std::uint8_t out[32]) noexcept {
    // 65 bytes of message: block 1 = prefix|a|b[0..30], block 2 = b[31], the
    // 0x80 pad and the 520-bit length.
    alignas(16) std::uint8_t blk[128];
    blk[0] = prefix;
    std::memcpy(blk + 1, a, 32);
    std::memcpy(blk + 33, b, 32);
    blk[65] = 0x80;
    std::memset(blk + 66, 0, 128 - 66 - 8);
    store_be64(blk + 120, 65 * 8);
    std::uint32_t st[8];
    std::memcpy(st, kernels::kSha256IV, sizeof(kernels::kSha256IV));
    sha256_compress(st, blk, 2);
    for (int i = 0; i < 8; ++i)
        store_be32(out + 4 * i, st[i]);
}

} // namespace autolien::ledger
