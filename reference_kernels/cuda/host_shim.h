// Lets g++ compile lif.cu, unchanged, as host C++ so its kernels can be tested without a GPU.
//
// Usage: include this header before lif.cu (host_launch.cpp does; or
// `g++ -x c++ -include host_shim.h lif.cu`). The CUDA qualifiers become plain C++, and the
// built-in index variables become globals that a serial launcher (host_launch.cpp) sets while
// it walks every block and thread. Running threads one after another is a faithful model of
// these kernels only because they use no shared memory, no __syncthreads and no warp
// intrinsics: each thread reads and writes its own neurons.
#ifndef REFERENCE_KERNELS_CUDA_HOST_SHIM_H
#define REFERENCE_KERNELS_CUDA_HOST_SHIM_H

#ifdef __CUDACC__
#error "host_shim.h is for host compilers only; nvcc and NVRTC compile lif.cu directly"
#endif

#include <cmath>   // expf, fabsf: the names lif.cu calls (the CUDA math library has them too)
#include <math.h>  // ... and in the global namespace, as in device code

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// Register and occupancy hints for ptxas; a serial host launch has nothing to bound.
#define __launch_bounds__(...)
// lif.cu's per-lane loops have constant trip counts that g++ unrolls at -O2 by itself, and g++
// would warn about CUDA's `#pragma unroll`.
#define LIF_UNROLL
// __restrict__ is a g++ extension already.

// The launch geometry a CUDA thread sees. Single-threaded serial launches only.
struct LifHostDim3 {
  unsigned int x, y, z;
};
static LifHostDim3 threadIdx = {0, 0, 0};
static LifHostDim3 blockIdx = {0, 0, 0};
static LifHostDim3 blockDim = {1, 1, 1};
static LifHostDim3 gridDim = {1, 1, 1};

#endif  // REFERENCE_KERNELS_CUDA_HOST_SHIM_H
