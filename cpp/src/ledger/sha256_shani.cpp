// SHA-256 block compression on the x86 SHA extensions. Compiled with target
// attributes, not -msha, so the rest of the library stays portable and this
// path is only entered after CPUID says the instructions exist.
#include "autolien/kernels/sha256.hpp"
#include "autolien/ledger/hash.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace autolien::ledger {

__attribute__((target("sha,sse4.1,ssse3"))) void
sha256_compress_shani(std::uint32_t state[8], const std::uint8_t* data, std::size_t nblocks) noexcept {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);

    // The instructions keep the state as ABEF and CDGH.
    __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
    __m128i s1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
    tmp = _mm_shuffle_epi32(tmp, 0xB1);
    s1 = _mm_shuffle_epi32(s1, 0x1B);
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);

    for (; nblocks > 0; --nblocks, data += 64) {
        const __m128i abef = s0;
        const __m128i cdgh = s1;
        __m128i w[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
            if (i < 4) {
                w[i] =
                    _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), bswap);
            } else {
                // W[t] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16],
                // four words at a time.
                __m128i x = _mm_sha256msg1_epu32(w[i - 4], w[i - 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[i - 1], w[i - 2], 4));
                w[i] = _mm_sha256msg2_epu32(x, w[i - 1]);
            }
            __m128i msg = _mm_add_epi32(
                w[i], _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kernels::kSha256K[4 * i])));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }

    tmp = _mm_shuffle_epi32(s0, 0x1B);
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, tmp, 8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), s0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), s1);
}

} // namespace autolien::ledger

#else

namespace autolien::ledger {
// Never selected: sha256_shani_supported() is false off x86.
void sha256_compress_shani(std::uint32_t state[8], const std::uint8_t* data, std::size_t nblocks) noexcept {
    sha256_compress_portable(state, data, nblocks);
}
} // namespace autolien::ledger

#endif
