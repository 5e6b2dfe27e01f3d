// Shared-kernel configuration: the arithmetic that the C++ core, the CUDA
// kernels (NVRTC) and the FPGA HLS flow compile from one source.
//
// Rules for every header in this folder: no standard library, no exceptions,
// no dynamic memory, no recursion, constant loop bounds. Functions are marked
// AUTOLIEN_HD, which is __host__ __device__ under CUDA and nothing for a host
// compiler; tables are AUTOLIEN_TABLE (constant memory on the device).
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define AUTOLIEN_HD __host__ __device__ __forceinline__
#define AUTOLIEN_UNROLL _Pragma("unroll")
#else
#define AUTOLIEN_HD inline
#define AUTOLIEN_UNROLL
#endif

#if defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)
#define AUTOLIEN_TABLE __device__ __constant__ const
#else
#define AUTOLIEN_TABLE inline constexpr
#endif

// Math for the floating-point kernels (the KF step): CUDA's device functions,
// else the compiler builtins, so that no <cmath> is needed.
#if defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)
#define AUTOLIEN_SQRT(x) sqrt(x)
#define AUTOLIEN_EXP(x) exp(x)
#define AUTOLIEN_LOG(x) log(x)
#define AUTOLIEN_HYPOT(x, y) hypot(x, y)
#define AUTOLIEN_NAN __longlong_as_double(0x7ff8000000000000LL)
#else
#define AUTOLIEN_SQRT(x) __builtin_sqrt(x)
#define AUTOLIEN_EXP(x) __builtin_exp(x)
#define AUTOLIEN_LOG(x) __builtin_log(x)
#define AUTOLIEN_HYPOT(x, y) __builtin_hypot(x, y)
#define AUTOLIEN_NAN __builtin_nan("")
#endif

namespace autolien::kernels {

typedef unsigned char u8;
typedef unsigned int u32;
// The host's uint64_t (unsigned long on LP64 Linux) so that the core passes
// its arrays without casts; NVRTC has no such macro and takes the 64-bit type.
#if defined(__UINT64_TYPE__) && !defined(__CUDACC_RTC__)
typedef __UINT64_TYPE__ u64;
#else
typedef unsigned long long u64;
#endif

static_assert(sizeof(u32) == 4 && sizeof(u64) == 8, "32- and 64-bit words");

AUTOLIEN_HD bool is_finite(double x) {
    return (x - x) == 0.0; // NaN and +-inf give NaN
}
AUTOLIEN_HD double dmax(double a, double b) {
    return a > b ? a : b;
}
AUTOLIEN_HD double dclamp(double x, double lo, double hi) {
    return x < lo ? lo : (hi < x ? hi : x);
}

} // namespace autolien::kernels
