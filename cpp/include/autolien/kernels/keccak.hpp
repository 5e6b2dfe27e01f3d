// Keccak-f[1600] (FIPS 202 3.3, 24 rounds), shared by the CPU core, the CUDA
// kernels and the FPGA kernel. Lanes are little-endian 64-bit words,
// st[x + 5 y].
#pragma once

#include "autolien/kernels/config.hpp"

namespace autolien::kernels {

AUTOLIEN_TABLE u64 kKeccakRC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};

AUTOLIEN_HD u64 keccak_rotl(u64 x, int n) {
    return (x << n) | (x >> (64 - n));
}

// One round (theta, rho, pi, chi, iota with round constant rc), with rho
// and pi written out so that every lane index is a constant (registers on a
// GPU, wires in HLS, where the FPGA kernel pipelines one round per cycle).
AUTOLIEN_HD void keccak_round(u64 st[25], u64 rc) {
    {
        u64 bc[5];
        AUTOLIEN_UNROLL
        for (int i = 0; i < 5; ++i)
            bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
        AUTOLIEN_UNROLL
        for (int i = 0; i < 5; ++i) {
            const u64 t = bc[(i + 4) % 5] ^ keccak_rotl(bc[(i + 1) % 5], 1);
            AUTOLIEN_UNROLL
            for (int j = 0; j < 25; j += 5)
                st[j + i] ^= t;
        }
        // rho and pi: walk the pi cycle from lane 1.
        const u64 t = st[1];
        st[1] = keccak_rotl(st[6], 44);
        st[6] = keccak_rotl(st[9], 20);
        st[9] = keccak_rotl(st[22], 61);
        st[22] = keccak_rotl(st[14], 39);
        st[14] = keccak_rotl(st[20], 18);
        st[20] = keccak_rotl(st[2], 62);
        st[2] = keccak_rotl(st[12], 43);
        st[12] = keccak_rotl(st[13], 25);
        st[13] = keccak_rotl(st[19], 8);
        st[19] = keccak_rotl(st[23], 56);
        st[23] = keccak_rotl(st[15], 41);
        st[15] = keccak_rotl(st[4], 27);
        st[4] = keccak_rotl(st[24], 14);
        st[24] = keccak_rotl(st[21], 2);
        st[21] = keccak_rotl(st[8], 55);
        st[8] = keccak_rotl(st[16], 45);
        st[16] = keccak_rotl(st[5], 36);
        st[5] = keccak_rotl(st[3], 28);
        st[3] = keccak_rotl(st[18], 21);
        st[18] = keccak_rotl(st[17], 15);
        st[17] = keccak_rotl(st[11], 10);
        st[11] = keccak_rotl(st[7], 6);
        st[7] = keccak_rotl(st[10], 3);
        st[10] = keccak_rotl(t, 1);
        // chi
        AUTOLIEN_UNROLL
        for (int j = 0; j < 25; j += 5) {
            const u64 a0 = st[j], a1 = st[j + 1], a2 = st[j + 2], a3 = st[j + 3], a4 = st[j + 4];
            st[j] = a0 ^ (~a1 & a2);
            st[j + 1] = a1 ^ (~a2 & a3);
            st[j + 2] = a2 ^ (~a3 & a4);
            st[j + 3] = a3 ^ (~a4 & a0);
            st[j + 4] = a4 ^ (~a0 & a1);
        }
        // iota
        st[0] ^= rc;
    }
}

// The permutation.
AUTOLIEN_HD void keccak_f1600(u64 st[25]) {
    for (int round = 0; round < 24; ++round)
        keccak_round(st, kKeccakRC[round]);
}

} // namespace autolien::kernels
