// Compiles the package's .cu kernels with the host C++ compiler, so that
// tests/test_gpu_kernels.py can check their logic (message assembly,
// sliding windows, the warp-cooperative entropy, the per-vehicle filter loop)
// on a machine without a GPU.
//
// shim_launch runs a kernel as a plain function once per (block, thread)
// index, one after the other. shim_launch_warps runs the 32 lanes of each warp
// as fibers (ucontext) that switch at every warp collective (__shfl_sync,
// __ballot_sync, __match_any_sync, __syncwarp), so that lanes exchange values
// as a warp does; a lane that leaves the kernel while others still wait in a
// collective (a divergent collective, undefined on a device) aborts the test.
// Other CUDA semantics (the memory model, FMA contraction) are not emulated -
// tests/test_gpu.py checks those on a device.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>

#define AUTOLIEN_HOST_SHIM 1
#define __device__
#define __global__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__

struct ShimDim3 {
    unsigned x = 0, y = 0, z = 0;
};
inline ShimDim3 blockIdx, threadIdx, blockDim;

template <typename T> inline T __ldg(const T* p) {
    return *p;
}
using std::isnan;

// Dynamic shared memory: blocks run one after the other, so one buffer.
inline unsigned int autolien_dyn_shared[1 << 16];

// Runs `body` for every thread of a 1-D grid of `blocks` x `threads`.
template <typename F> void shim_launch(unsigned blocks, unsigned threads, F body) {
    blockDim.x = threads;
    for (unsigned b = 0; b < blocks; ++b) {
        blockIdx.x = b;
        for (unsigned t = 0; t < threads; ++t) {
            threadIdx.x = t;
            body();
        }
    }
}

// ------------------------------------------------------------ warp fibers

struct ShimWarp {
    ucontext_t sched{};
    ucontext_t lane[32]{};
    bool done[32]{};
    unsigned long long slot[32]{};
    unsigned base = 0; // threadIdx.x of lane 0
    int cur = 0;
    void (*entry)(void*) = nullptr;
    void* arg = nullptr;
};
inline ShimWarp shim_warp;
inline constexpr std::size_t kShimStack = 256 * 1024;
inline char shim_stacks[32][kShimStack];

inline void shim_yield() {
    swapcontext(&shim_warp.lane[shim_warp.cur], &shim_warp.sched);
}

inline void shim_lane_main() {
    shim_warp.entry(shim_warp.arg);
    shim_warp.done[shim_warp.cur] = true; // returns to uc_link: the scheduler
}

// getcontext returns twice: kept apart so that no caller's variable lives
// across it.
__attribute__((noinline)) inline void shim_make_lane(int l) {
    shim_warp.done[l] = false;
    getcontext(&shim_warp.lane[l]);
    shim_warp.lane[l].uc_stack.ss_sp = shim_stacks[l];
    shim_warp.lane[l].uc_stack.ss_size = kShimStack;
    shim_warp.lane[l].uc_link = &shim_warp.sched;
    makecontext(&shim_warp.lane[l], shim_lane_main, 0);
}

// Runs `body` for every thread, 32 lanes of a warp at a time as fibers.
template <typename F> void shim_launch_warps(unsigned blocks, unsigned threads, F body) {
    if (threads % 32 != 0) {
        std::fprintf(stderr, "shim_launch_warps: block size %u is not whole warps\n", threads);
        std::abort();
    }
    blockDim.x = threads;
    shim_warp.entry = [](void* p) { (*static_cast<F*>(p))(); };
    // The fibers use `body` only while this function runs.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
    shim_warp.arg = &body;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
    for (unsigned b = 0; b < blocks; ++b) {
        blockIdx.x = b;
        for (unsigned w = 0; w < threads / 32; ++w) {
            shim_warp.base = w * 32;
            for (int l = 0; l < 32; ++l)
                shim_make_lane(l);
            for (;;) {
                int running = 0;
                for (int l = 0; l < 32; ++l) {
                    if (shim_warp.done[l])
                        continue;
                    shim_warp.cur = l;
                    threadIdx.x = shim_warp.base + unsigned(l);
                    swapcontext(&shim_warp.sched, &shim_warp.lane[l]);
                    running += shim_warp.done[l] ? 0 : 1;
                }
                if (running == 0)
                    break;
                if (running != 32) {
                    std::fprintf(stderr, "shim: %d lanes wait in a warp collective the others left\n",
                                 running);
                    std::abort();
                }
            }
        }
    }
}

template <typename T> unsigned long long shim_bits(T v) {
    unsigned long long u = 0;
    std::memcpy(&u, &v, sizeof(T));
    return u;
}
template <typename T> T shim_from_bits(unsigned long long u) {
    T v;
    std::memcpy(&v, &u, sizeof(T));
    return v;
}

// Publish, let every lane publish, read, let every lane read.
template <typename T> T __shfl_sync(unsigned, T v, int src) {
    shim_warp.slot[shim_warp.cur] = shim_bits(v);
    shim_yield();
    const T r = shim_from_bits<T>(shim_warp.slot[src & 31]);
    shim_yield();
    return r;
}
template <typename T> T __shfl_up_sync(unsigned mask, T v, unsigned d) {
    const int src = shim_warp.cur - int(d);
    const T r = __shfl_sync(mask, v, src < 0 ? shim_warp.cur : src);
    return r;
}
inline unsigned __ballot_sync(unsigned, bool p) {
    shim_warp.slot[shim_warp.cur] = p ? 1u : 0u;
    shim_yield();
    unsigned m = 0;
    for (int l = 0; l < 32; ++l)
        m |= shim_warp.slot[l] ? 1u << l : 0u;
    shim_yield();
    return m;
}
inline unsigned __match_any_sync(unsigned, int v) {
    shim_warp.slot[shim_warp.cur] = shim_bits(v);
    shim_yield();
    unsigned m = 0;
    for (int l = 0; l < 32; ++l)
        m |= shim_warp.slot[l] == shim_bits(v) ? 1u << l : 0u;
    shim_yield();
    return m;
}
inline void __syncwarp(unsigned = 0xffffffffu) {
    shim_yield();
}
inline int __popc(unsigned v) {
    return __builtin_popcount(v);
}
inline int __clz(unsigned v) {
    return v ? __builtin_clz(v) : 32;
}
