// Compiles the package's .cu kernels with the host C++ compiler, so that
// tests/test_gpu_kernels.py can check their logic (message assembly,
// sliding windows, the per-vehicle filter loop) on a machine without a GPU.
// Each kernel becomes a plain function run once per (block, thread) index by
// the launch helpers below; CUDA semantics (memory model, FMA contraction)
// are not emulated - tests/test_gpu.py checks those on a device.
#pragma once

#include <cmath>
#include <cstring>

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
