// Fused multi-step neuron (LIF, IF, PLIF; CUBA and ALIF at the end) forward and backward (BPTT)
// kernels in CUDA C.
//
// The same algorithm as the Triton kernels and the contract of reference_kernels/fused.py:
// a contiguous [T, N] layout (element (t, n) at t*N + n), the time loop inside the thread with
// the membrane V in registers, float32 arithmetic for every storage dtype. The equations are
// those of kernelprof/lif.py.
//
// Like the Triton backend, forward saves the margin H - theta for backward rather than H:
// stored in fp16/bf16, H near the threshold (~1) keeps only 2^-11 / 2^-8 absolute precision,
// while the margin keeps that precision relative to its own, small, size. The surrogate is a
// function of the margin and dV/dS = V_r - H = (V_r - theta) - margin, so backward gets both
// without ever rounding H. Against the float64 oracle, bf16 gradients computed from a saved H
// fell outside atol = rtol = 1e-2 (T >= 4, with a V gradient); from the margin they stay inside.
// Backward takes the spike S from the margin's sign bit (see lif_forward_impl for why that is
// exact), so no spike tensor is saved.
//
// Each kernel comes in two access paths (entry points at the end of the file):
//   * vector (`*_vec`): a thread owns LANES = 16 / sizeof(storage) consecutive neurons (4 for
//     float32, 8 for fp16/bf16) and moves each tensor's row slice with one 16-byte load or store
//     per step. The kernels are memory bound, and 128-bit accesses issue a quarter (float32) or
//     an eighth (16-bit) of the memory instructions of per-element ones. Launch it only when
//     N % LANES == 0 and every pointer is 16-byte aligned: then every row start t*N*sizeof is
//     aligned too (reference_kernels/cupy_lif.py decides, for the GPU and the host build alike);
//   * scalar: one neuron per thread, for any N and alignment.
// Both run the same per-neuron arithmetic, so they agree bit for bit.
//
// Each neuron is its own set of entry points (a template parameter, so LIF's kernels carry no
// register of the others'): lif_*, if_* and plif_*, all with one parameter list. PLIF reads k
// (float32: one value, or one per channel, the channel of flat neuron n being
// (n / k_inner) % k_channels) once per neuron before the time loop. Its backward accumulates
// gH[t] * (H[t] - V[t-1]) (decay_input; k times dH/dk) or -gH[t] * (V[t-1] - V_r) in registers
// over the time loop, V[t-1] from the margin of step t-1 that the loop prefetches anyway, and
// writes one float32 per thread (its neurons' sum, for one k) or per neuron (per-channel k),
// with 16-byte stores on the vector path; reference_kernels/fused.py reduces them. No [T, N]
// temporary and no read beyond LIF's.
//
// This file is compiled as is by three compilers, so it includes no header at all:
//   * NVRTC, through cupy.RawModule (reference_kernels/cupy_lif.py), on a CUDA machine;
//   * nvcc -cubin / -ptx (tests/test_cuda_source.py), to prove it builds for sm_80 and sm_90,
//     that the vector path really issues 128-bit accesses, and that it fits its launch bounds;
//   * g++ as host C++ after host_shim.h (host_launch.cpp), so the tests can run the very same
//     kernel bodies serially on a machine without a GPU.
// That is why the fp16/bf16 conversions below are inline PTX on the device and portable
// software on the host (cuda_fp16.h may be out of NVRTC's reach and does not exist for g++), and
// why only `unsigned short`, `unsigned int` and `long long` are used (no stdint.h).

// ---------------------------------------------------------------------------------------------
// Launch shape
// ---------------------------------------------------------------------------------------------

// Threads per block; cupy_lif.BLOCK_SIZE must be equal (a test checks), since a launch with more
// threads than __launch_bounds__ promises fails.
#define LIF_BLOCK_SIZE 256
// Resident blocks per SM that __launch_bounds__ asks the register allocator to allow: 64K
// registers per SM (sm_80 .. sm_90) / (256 threads x 4 blocks) caps a thread at 64 registers.
// That is 1024 resident threads, half the SM's thread slots, each with one 16-byte load per
// input tensor in flight ahead of its arithmetic (the next-step prefetch): 16-32 KiB of reads
// in flight per SM, about what Little's law asks of HBM3 (~4.8 TB/s x ~0.6 us over 132 SMs).
// A lower cap (8 blocks, 32 registers) would spill the vector backward's 8-lane state.
#define LIF_MIN_BLOCKS_PER_SM 4

// PLIF with one k per channel keeps k and dk's running sum per lane: 16 registers more per
// thread on the 16-bit vector path, which spilled at 64; its kernels ask for 3 blocks per SM
// (85 registers).
#define LIF_MIN_BLOCKS_PER_SM_CHANNELS 3

// CUBA and ALIF keep a second state and its adjoint per lane: 16 registers more per thread on
// the 16-bit vector path than LIF, so they too ask for 3 blocks per SM (85 registers).
#define LIF_MIN_BLOCKS_PER_SM_STATES 3

#define LIF_KERNEL_BOUNDED(MIN_BLOCKS) \
  extern "C" __global__ void __launch_bounds__(LIF_BLOCK_SIZE, MIN_BLOCKS)

// Full unrolling of the per-lane loops keeps the lane arrays in registers. host_shim.h defines
// it away (g++ does not know the pragma and unrolls such loops itself).
#ifndef LIF_UNROLL
#define LIF_UNROLL _Pragma("unroll")
#endif

// ---------------------------------------------------------------------------------------------
// Bit casts and fp16 / bf16 conversions (round to nearest even, subnormals, inf, NaN)
// ---------------------------------------------------------------------------------------------
//
// On the device each conversion is the one hardware instruction (inline PTX cvt, which rounds to
// nearest even, keeps subnormals and signed zeros, and never flushes since no .ftz is given). On
// the host (and for bf16 before sm_80, which has no cvt to bf16) it is the software version,
// which the tests check bitwise against PyTorch, exhaustively from 16 bits. The two agree on
// every number, infinity and signed zero; they may differ only in a NaN's payload and sign:
// cvt produces the canonical NaN (0x7fff in 16 bits), the software keeps the sign and the high
// payload bits. Nothing here depends on a NaN's bits (a NaN margin makes the gradient NaN
// whichever S its sign bit gives).

__host__ __device__ __forceinline__ unsigned int lif_float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  unsigned int u;
  __builtin_memcpy(&u, &f, sizeof(u));  // the defined way to type-pun on the host
  return u;
#endif
}

__host__ __device__ __forceinline__ float lif_bits_float(unsigned int u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  __builtin_memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// IEEE binary16 bits -> float (exact: every fp16 value is a float32 value).
__host__ __device__ __forceinline__ float lif_half_to_float(unsigned short h) {
#ifdef __CUDA_ARCH__
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
  const unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
  const unsigned int exponent = (h >> 10) & 0x1fu;
  unsigned int mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) {  // inf, or NaN with its payload kept
    return lif_bits_float(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent != 0) {  // normal: rebias the exponent from 15 to 127
    return lif_bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  }
  if (mantissa == 0) {
    return lif_bits_float(sign);  // +-0
  }
  // Subnormal (mantissa * 2^-24): normalise, so it becomes a normal float32.
  unsigned int shift = 0;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    ++shift;
  }
  return lif_bits_float(sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13));
#endif
}

// float -> IEEE binary16 bits, rounding to nearest even (overflow to inf, underflow to
// subnormals and zero, NaN stays a quiet NaN with the sign and high payload bits).
__host__ __device__ __forceinline__ unsigned short lif_float_to_half(float f) {
#ifdef __CUDA_ARCH__
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#else
  const unsigned int u = lif_float_bits(f);
  const unsigned int sign = (u >> 16) & 0x8000u;
  const unsigned int a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // inf or NaN
    const unsigned int nan_bits = a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u;
    return (unsigned short)(sign | 0x7c00u | nan_bits);
  }
  if (a >= 0x477ff000u) {  // >= 65520: halfway above the largest fp16 (65504), ties to inf
    return (unsigned short)(sign | 0x7c00u);
  }
  if (a >= 0x38800000u) {  // >= 2^-14: a normal fp16; rebias 127 -> 15 and drop 13 bits
    unsigned int h = (a - 0x38000000u) >> 13;
    const unsigned int rest = a & 0x1fffu;
    // A carry out of the mantissa correctly bumps the exponent.
    h += (unsigned int)(rest > 0x1000u || (rest == 0x1000u && (h & 1u)));
    return (unsigned short)(sign | h);
  }
  const unsigned int exponent = a >> 23;
  if (exponent < 102u) {  // < 2^-25: rounds to zero (float32 subnormals included)
    return (unsigned short)sign;
  }
  // Subnormal fp16: the value in units of 2^-24, i.e. the 24-bit significand shifted right by
  // 126 - exponent (14 .. 24 bits); rounding up to 0x400 yields the smallest normal, correctly.
  const unsigned int significand = (a & 0x7fffffu) | 0x800000u;
  const unsigned int shift = 126u - exponent;
  unsigned int h = significand >> shift;
  const unsigned int rest = significand & ((1u << shift) - 1u);
  const unsigned int halfway = 1u << (shift - 1u);
  h += (unsigned int)(rest > halfway || (rest == halfway && (h & 1u)));
  return (unsigned short)(sign | h);
#endif
}

// bfloat16 bits -> float (exact: bf16 is the upper half of a float32; a shift on every target).
__host__ __device__ __forceinline__ float lif_bf16_to_float(unsigned short b) {
  return lif_bits_float((unsigned int)b << 16);
}

// float -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN (the rounding add
// could otherwise carry a NaN payload into an infinity).
__host__ __device__ __forceinline__ unsigned short lif_float_to_bf16(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned short b;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
  return b;
#else
  const unsigned int u = lif_float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return (unsigned short)((u >> 16) | 0x0040u);
  }
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
}

// ---------------------------------------------------------------------------------------------
// Storage types: how a [T, N] element is held in memory and converted to/from float32
// ---------------------------------------------------------------------------------------------
//
// bits() / from_bits() move an element between its storage type and the low bits of an
// unsigned int, which is how the vector path packs lanes into 32-bit words; kBits is its width
// (the sign bit is bit kBits - 1).

struct LifF32 {
  typedef float storage;
  enum { kBits = 32 };
  static __host__ __device__ __forceinline__ float load(float v) { return v; }
  static __host__ __device__ __forceinline__ float store(float v) { return v; }
  static __host__ __device__ __forceinline__ unsigned int bits(float v) {
    return lif_float_bits(v);
  }
  static __host__ __device__ __forceinline__ float from_bits(unsigned int u) {
    return lif_bits_float(u);
  }
};

struct LifF16 {
  typedef unsigned short storage;  // IEEE binary16 bits
  enum { kBits = 16 };
  static __host__ __device__ __forceinline__ float load(unsigned short v) {
    return lif_half_to_float(v);
  }
  static __host__ __device__ __forceinline__ unsigned short store(float v) {
    return lif_float_to_half(v);
  }
  static __host__ __device__ __forceinline__ unsigned int bits(unsigned short v) { return v; }
  static __host__ __device__ __forceinline__ unsigned short from_bits(unsigned int u) {
    return (unsigned short)u;
  }
};

struct LifBF16 {
  typedef unsigned short storage;  // bfloat16 bits
  enum { kBits = 16 };
  static __host__ __device__ __forceinline__ float load(unsigned short v) {
    return lif_bf16_to_float(v);
  }
  static __host__ __device__ __forceinline__ unsigned short store(float v) {
    return lif_float_to_bf16(v);
  }
  static __host__ __device__ __forceinline__ unsigned int bits(unsigned short v) { return v; }
  static __host__ __device__ __forceinline__ unsigned short from_bits(unsigned int u) {
    return (unsigned short)u;
  }
};

// ---------------------------------------------------------------------------------------------
// Access paths: what one thread moves per tensor per step
// ---------------------------------------------------------------------------------------------
//
// A path has a `packet` type (what one access moves), kLanes neurons per packet, and lane
// accessors on raw bits. Packets are built up from zero(): put() ORs a lane's bits in, and +0.0
// is all-zero bits in every storage dtype, so a lane left alone reads as +0.0.

// One element per access.
template <class D>
struct LifScalarPath {
  typedef typename D::storage storage;
  typedef storage packet;
  enum { kLanes = 1 };
  static __device__ __forceinline__ packet zero() { return D::from_bits(0u); }
  static __device__ __forceinline__ packet load(const storage* __restrict__ p, long long i) {
    return p[i];
  }
  static __device__ __forceinline__ void store(storage* __restrict__ p, long long i, packet v) {
    p[i] = v;
  }
  static __device__ __forceinline__ unsigned int get(const packet& v, int) { return D::bits(v); }
  static __device__ __forceinline__ void put(packet& v, int, unsigned int bits) {
    v = D::from_bits(bits);
  }
};

// 16 bytes as four 32-bit words: a plain aligned struct rather than CUDA's uint4, which only
// exists where a CUDA header does (not for g++, and NVRTC would need vector_types.h).
struct alignas(16) LifPacket16 {
  unsigned int w[4];
};

// 16 bytes per access: 4 float32 lanes (one per word) or 8 16-bit lanes (two per word, lane 2j
// in the low half of word j: the little-endian order of the elements in memory).
template <class D>
struct LifVectorPath {
  typedef typename D::storage storage;
  typedef LifPacket16 packet;
  enum { kLanes = 16 / sizeof(storage), kPerWord = 32 / D::kBits };
  static __device__ __forceinline__ packet zero() {
    packet p = {{0u, 0u, 0u, 0u}};
    return p;
  }
  // `i` indexes elements and must be a multiple of kLanes (with the base 16-byte aligned).
  static __device__ __forceinline__ packet load(const storage* __restrict__ p, long long i) {
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const packet*>(p + i);  // one ld.global.v4
#else
    packet v;  // g++: memcpy, since reading float storage through unsigned ints breaks aliasing
    __builtin_memcpy(&v, p + i, sizeof(v));
    return v;
#endif
  }
  static __device__ __forceinline__ void store(storage* __restrict__ p, long long i, packet v) {
#ifdef __CUDA_ARCH__
    *reinterpret_cast<packet*>(p + i) = v;  // one st.global.v4
#else
    __builtin_memcpy(p + i, &v, sizeof(v));
#endif
  }
  static __device__ __forceinline__ unsigned int get(const packet& v, int lane) {
    if (kPerWord == 1) {
      return v.w[lane];
    }
    return (v.w[lane / kPerWord] >> (D::kBits * (lane % kPerWord))) & 0xffffu;
  }
  static __device__ __forceinline__ void put(packet& v, int lane, unsigned int bits) {
    if (kPerWord == 1) {
      v.w[lane] = bits;
    } else {
      v.w[lane / kPerWord] |= bits << (D::kBits * (lane % kPerWord));
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Surrogate derivatives at x = H - theta; ids as SURROGATE_ID in kernelprof/lif.py
// ---------------------------------------------------------------------------------------------

__host__ __device__ __forceinline__ float lif_surrogate_grad(float x, int surrogate, float alpha) {
  switch (surrogate) {
    case 0: {  // sigmoid: alpha * sig(alpha x) * (1 - sig(alpha x))
      const float sig = 1.0f / (1.0f + expf(-alpha * x));
      return alpha * sig * (1.0f - sig);
    }
    case 1: {  // atan: (alpha / 2) / (1 + (pi/2 * alpha * x)^2)
      const float z = 1.57079632679489662f * alpha * x;
      return (alpha * 0.5f) / (1.0f + z * z);
    }
    case 2: {  // superspike: 1 / (1 + alpha |x|)^2
      const float d = 1.0f + alpha * fabsf(x);
      return 1.0f / (d * d);
    }
    case 3:  // piecewise_exp: (alpha / 2) * exp(-alpha |x|)
      return (alpha * 0.5f) * expf(-alpha * fabsf(x));
    default:  // unreachable: the loader validates the id
      return 0.0f;
  }
}

// a * b rounded once, never contracted with a following add into an fma: PLIF's charge
// v + d * k then rounds as PyTorch's eager arithmetic does, so float32 results match bit for bit.
__host__ __device__ __forceinline__ float lif_mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// Neurons (template parameter of the kernels): ids as NEURON_ID in reference_kernels/model.py.
#define LIF_NEURON_LIF 0
#define LIF_NEURON_IF 1
#define LIF_NEURON_PLIF 2           // one k
#define LIF_NEURON_PLIF_CHANNELS 3  // one k per channel (entry points plifc_*)

// H[t] from V[t-1] and X[t] (the charge of reference_kernels/model.py).
template <int NEURON>
__host__ __device__ __forceinline__ float lif_charge(float v, float x, float v_rest, float tau,
                                                     float k, int decay_input) {
  if (NEURON == LIF_NEURON_IF) {
    return v + x;
  }
  if (NEURON == LIF_NEURON_PLIF || NEURON == LIF_NEURON_PLIF_CHANNELS) {
    return decay_input ? v + lif_mul_rn(x - (v - v_rest), k) : v - lif_mul_rn(v - v_rest, k) + x;
  }
  // Same operation order and true division as the model, so float32 results match PyTorch.
  return decay_input ? v + (x - (v - v_rest)) / tau : v - (v - v_rest) / tau + x;
}

// V[t] after the step's reset: hard to V_r, or soft, subtracting the step's threshold.
__host__ __device__ __forceinline__ float lif_reset(float h, bool fire, float theta,
                                                    float v_reset, int soft_reset) {
  return soft_reset ? (fire ? h - theta : h) : (fire ? v_reset : h);
}

// The margin H - theta that forward saves. Backward reads S as "the margin's sign bit is
// clear". In float32 that is exact: H and theta are floats, so fl(H - theta) is negative
// exactly when H < theta (a difference of two floats is 0 only when they are equal), and
// rounding to fp16/bf16 keeps the sign even where a tiny negative margin becomes -0.0 (which
// `>= 0` would misread as a spike). The one float32 difference with the wrong sign is H = -0.0
// against theta = +0.0: a spike whose margin is -0.0. fabsf on a fired margin (>= 0 or that
// -0.0) changes only that case, to +0.0, and equals the oracle's margin as a value.
__host__ __device__ __forceinline__ float lif_margin(float h, float theta, bool fire) {
  const float d = h - theta;
  return fire ? fabsf(d) : d;
}

// PLIF's k of neuron `neuron` (flat index in a row), per channel.
__device__ __forceinline__ float lif_channel_k(const float* __restrict__ k, long long neuron,
                                               long long k_channels, long long k_inner) {
  return k[(neuron / k_inner) % k_channels];
}

// Writes a thread's P::kLanes float32 values at out[offset ...]: 16-byte stores on the vector
// path (offset a multiple of 4 there), one element on the scalar one.
template <class P>
struct LifStoreF32 {
  static __device__ __forceinline__ void store(float* __restrict__ out, long long offset,
                                               const float* values) {
    LIF_UNROLL
    for (int j = 0; j < P::kLanes; j += 4) {
      LifPacket16 packet;
      LIF_UNROLL
      for (int w = 0; w < 4; ++w) {
        packet.w[w] = lif_float_bits(values[j + w]);
      }
#ifdef __CUDA_ARCH__
      *reinterpret_cast<LifPacket16*>(out + offset + j) = packet;  // one st.global.v4
#else
      __builtin_memcpy(out + offset + j, &packet, sizeof(packet));
#endif
    }
  }
};

template <class D>
struct LifStoreF32<LifScalarPath<D> > {
  static __device__ __forceinline__ void store(float* __restrict__ out, long long offset,
                                               const float* values) {
    out[offset] = values[0];
  }
};

// ---------------------------------------------------------------------------------------------
// Forward: H, S, V over T steps; writes each of spikes, H - theta and V whose pointer is given
// ---------------------------------------------------------------------------------------------
//
// A null `spikes` serves a pass that only recomputes the margin for backward; a null `margin`
// a memory-lean forward that saves X instead; a null `v_out` a caller that does not return V.

template <class D, class P, int NEURON>
__device__ __forceinline__ void lif_forward_impl(
    const typename D::storage* __restrict__ x, typename D::storage* __restrict__ spikes,
    typename D::storage* __restrict__ margin_out, typename D::storage* __restrict__ v_out,
    const float* __restrict__ decay_k, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input, long long k_channels, long long k_inner) {
  typedef typename P::packet Packet;
  const int lanes = P::kLanes;
  if (steps <= 0) {
    return;
  }
  // Soft reset decays towards 0 and starts there; hard reset towards V_r (kernelprof.lif).
  const float v_rest = soft_reset ? 0.0f : v_reset;
  const bool per_channel = NEURON == LIF_NEURON_PLIF_CHANNELS;
  const float k0 = NEURON == LIF_NEURON_PLIF ? decay_k[0] : 0.0f;  // one k: loaded once
  const unsigned int one = D::bits(D::store(1.0f));
  const long long packets = n / lanes;  // the vector path is launched only when lanes | n
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < packets; i += stride) {
    float v[lanes];
    float kk[lanes];  // PLIF's k per lane (unused, and optimised away, for the others)
    LIF_UNROLL
    for (int k = 0; k < lanes; ++k) {
      v[k] = v_rest;
      kk[k] = per_channel ? lif_channel_k(decay_k, i * lanes + k, k_channels, k_inner) : k0;
    }
    long long offset = i * lanes;
    Packet x_raw = P::load(x, offset);
    for (int t = 0; t < steps; ++t, offset += n) {
      // Issue the next step's load before this step's arithmetic: the loads of a thread are
      // independent of its recurrence, so keeping one in flight hides memory latency.
      Packet x_next = P::zero();
      if (t + 1 < steps) {
        x_next = P::load(x, offset + n);
      }
      Packet s_out = P::zero(), m_out = P::zero(), v_new = P::zero();
      LIF_UNROLL
      for (int k = 0; k < lanes; ++k) {
        const float xt = D::load(D::from_bits(P::get(x_raw, k)));
        const float h = lif_charge<NEURON>(v[k], xt, v_rest, tau, kk[k], decay_input);
        const bool fire = h >= v_threshold;  // Heaviside(0) = 1
        v[k] = lif_reset(h, fire, v_threshold, v_reset, soft_reset);
        const float margin = lif_margin(h, v_threshold, fire);
        if (fire) {
          P::put(s_out, k, one);  // 0.0 is the zero() bits already
        }
        P::put(m_out, k, D::bits(D::store(margin)));
        P::put(v_new, k, D::bits(D::store(v[k])));
      }
      if (spikes != nullptr) {
        P::store(spikes, offset, s_out);
      }
      if (margin_out != nullptr) {
        P::store(margin_out, offset, m_out);
      }
      if (v_out != nullptr) {
        P::store(v_out, offset, v_new);
      }
      x_raw = x_next;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward: the reverse-time BPTT loop of kernelprof.lif from the saved margin
// ---------------------------------------------------------------------------------------------

template <class D, class P, int NEURON>
__device__ __forceinline__ void lif_backward_impl(
    const typename D::storage* __restrict__ grad_spikes,
    const typename D::storage* __restrict__ grad_v,
    const typename D::storage* __restrict__ margin, typename D::storage* __restrict__ grad_x,
    const float* __restrict__ decay_k, float* __restrict__ dk_partials, long long n, int steps,
    float tau, float v_threshold, float v_reset, int soft_reset, int decay_input,
    int detach_reset, int surrogate, float alpha, long long k_channels, long long k_inner) {
  typedef typename P::packet Packet;
  const int lanes = P::kLanes;
  const bool plif = NEURON == LIF_NEURON_PLIF || NEURON == LIF_NEURON_PLIF_CHANNELS;
  const bool per_channel = NEURON == LIF_NEURON_PLIF_CHANNELS;
  const long long thread = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  float thread_dk = 0.0f;  // PLIF with one k: this thread's share of dk
  if (steps <= 0) {
    if (plif && !per_channel) {
      dk_partials[thread] = 0.0f;
    }
    return;
  }
  const float k0 = NEURON == LIF_NEURON_PLIF ? decay_k[0] : 0.0f;  // one k: loaded once
  // dH[t+1]/dV[t]: 1 - 1/tau (LIF), 1 (IF); PLIF's 1 - k is per lane below
  const float decay = NEURON == LIF_NEURON_IF ? 1.0f : 1.0f - 1.0f / tau;
  const float v_rest = soft_reset ? 0.0f : v_reset;
  const float reset_gap = v_reset - v_threshold;  // V_r - H = reset_gap - margin (hard reset)
  const long long packets = n / lanes;
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = thread; i < packets; i += stride) {
    float kk[lanes];  // PLIF's k per lane (all k0 for one k)
    float dk[lanes];  // PLIF per channel: this lane's sum over t (one k sums into thread_dk)
    LIF_UNROLL
    for (int k = 0; k < lanes; ++k) {
      kk[k] = per_channel ? lif_channel_k(decay_k, i * lanes + k, k_channels, k_inner) : k0;
      dk[k] = 0.0f;
    }
    long long offset = (long long)(steps - 1) * n + i * lanes;
    Packet margin_raw = P::load(margin, offset);
    Packet gs_raw = P::load(grad_spikes, offset);
    Packet gv_raw = grad_v != nullptr ? P::load(grad_v, offset) : P::zero();
    float grad_h_next[lanes];  // gH[T] = 0
    LIF_UNROLL
    for (int k = 0; k < lanes; ++k) {
      grad_h_next[k] = 0.0f;
    }
    for (int t = steps - 1; t >= 0; --t, offset -= n) {
      // Prefetch step t-1 (independent of the recurrence) before computing step t.
      Packet margin_prev = P::zero(), gs_prev = P::zero(), gv_prev = P::zero();
      if (t > 0) {
        margin_prev = P::load(margin, offset - n);
        gs_prev = P::load(grad_spikes, offset - n);
        if (grad_v != nullptr) {
          gv_prev = P::load(grad_v, offset - n);
        }
      }
      Packet gx_out = P::zero();
      LIF_UNROLL
      for (int k = 0; k < lanes; ++k) {
        const unsigned int m_bits = P::get(margin_raw, k);
        const float m = D::load(D::from_bits(m_bits));
        // S from the sign bit of the stored bits, not from the value: see lif_forward_impl.
        const bool fired = (m_bits >> (D::kBits - 1)) == 0u;
        const float s = fired ? 1.0f : 0.0f;
        const float grad_v_total =
            D::load(D::from_bits(P::get(gv_raw, k))) +
            grad_h_next[k] * (plif ? 1.0f - kk[k] : decay);
        float grad_s_total = D::load(D::from_bits(P::get(gs_raw, k)));
        if (!detach_reset) {
          const float dv_ds = soft_reset ? -v_threshold : reset_gap - m;
          grad_s_total += grad_v_total * dv_ds;
        }
        const float dv_dh = soft_reset ? 1.0f : 1.0f - s;
        const float sg = lif_surrogate_grad(m, surrogate, alpha);
        const float grad_h = grad_s_total * sg + grad_v_total * dv_dh;
        float grad_x_k = grad_h;
        if (NEURON == LIF_NEURON_LIF && decay_input) {
          grad_x_k = grad_h / tau;
        } else if (plif && decay_input) {
          grad_x_k = grad_h * kk[k];
        }
        if (plif) {
          // V[t-1] from step t-1's margin (prefetched), V_rest before the first step
          float v_prev = v_rest;
          if (t > 0) {
            const unsigned int p_bits = P::get(margin_prev, k);
            const float h_prev = D::load(D::from_bits(p_bits)) + v_threshold;
            const bool fired_prev = (p_bits >> (D::kBits - 1)) == 0u;
            v_prev = soft_reset ? (fired_prev ? h_prev - v_threshold : h_prev)
                                : (fired_prev ? v_reset : h_prev);
          }
          const float h = m + v_threshold;
          const float term = decay_input ? grad_h * (h - v_prev) : -grad_h * (v_prev - v_rest);
          if (per_channel) {
            dk[k] += term;
          } else {
            thread_dk += term;
          }
        }
        P::put(gx_out, k, D::bits(D::store(grad_x_k)));
        grad_h_next[k] = grad_h;
      }
      P::store(grad_x, offset, gx_out);
      margin_raw = margin_prev;
      gs_raw = gs_prev;
      gv_raw = gv_prev;
    }
    if (per_channel) {
      LifStoreF32<P>::store(dk_partials, i * lanes, dk);  // per neuron
    }
  }
  if (plif && !per_channel) {
    dk_partials[thread] = thread_dk;  // every thread of the grid writes its share (maybe 0)
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points: {lif,if,plif}_{forward,backward}_{f32,f16,bf16}[_vec] (unmangled names for
// cupy.RawModule.get_function and for the host build), one parameter list for every neuron
// (k and dk_partials are read and written only by plif_* and plifc_*)
// ---------------------------------------------------------------------------------------------

#define LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, NAME, D, PATH)                             \
  LIF_KERNEL_BOUNDED(MIN_BLOCKS) PREFIX##_forward_##NAME(                                                          \
      const D::storage* __restrict__ x, D::storage* __restrict__ spikes,                       \
      D::storage* __restrict__ margin, D::storage* __restrict__ v_out,                         \
      const float* __restrict__ k, long long n, int steps, float tau, float v_threshold,       \
      float v_reset, int soft_reset, int decay_input, long long k_channels,                    \
      long long k_inner) {                                                                     \
    lif_forward_impl<D, PATH<D>, NEURON>(x, spikes, margin, v_out, k, n, steps, tau,           \
                                         v_threshold, v_reset, soft_reset, decay_input,        \
                                         k_channels, k_inner);                                 \
  }                                                                                            \
  LIF_KERNEL_BOUNDED(MIN_BLOCKS) PREFIX##_backward_##NAME(                                                         \
      const D::storage* __restrict__ grad_spikes, const D::storage* __restrict__ grad_v,       \
      const D::storage* __restrict__ margin, D::storage* __restrict__ grad_x,                  \
      const float* __restrict__ k, float* __restrict__ dk_partials, long long n, int steps,    \
      float tau, float v_threshold, float v_reset, int soft_reset, int decay_input,            \
      int detach_reset, int surrogate, float alpha, long long k_channels,                      \
      long long k_inner) {                                                                     \
    lif_backward_impl<D, PATH<D>, NEURON>(grad_spikes, grad_v, margin, grad_x, k, dk_partials, \
                                          n, steps, tau, v_threshold, v_reset, soft_reset,     \
                                          decay_input, detach_reset, surrogate, alpha,         \
                                          k_channels, k_inner);                                \
  }

#define LIF_NEURON_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS)                      \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, f32, LifF32, LifScalarPath)       \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, f16, LifF16, LifScalarPath)       \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, bf16, LifBF16, LifScalarPath)     \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, f32_vec, LifF32, LifVectorPath)   \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, f16_vec, LifF16, LifVectorPath)   \
  LIF_ENTRY_POINTS(PREFIX, NEURON, MIN_BLOCKS, bf16_vec, LifBF16, LifVectorPath)

LIF_NEURON_ENTRY_POINTS(lif, LIF_NEURON_LIF, LIF_MIN_BLOCKS_PER_SM)
LIF_NEURON_ENTRY_POINTS(if, LIF_NEURON_IF, LIF_MIN_BLOCKS_PER_SM)
LIF_NEURON_ENTRY_POINTS(plif, LIF_NEURON_PLIF, LIF_MIN_BLOCKS_PER_SM)
LIF_NEURON_ENTRY_POINTS(plifc, LIF_NEURON_PLIF_CHANNELS, LIF_MIN_BLOCKS_PER_SM_CHANNELS)

// ---------------------------------------------------------------------------------------------
// The two-state neurons: CUBA (a synaptic current I) and ALIF (an adaptive threshold A)
// ---------------------------------------------------------------------------------------------
//
// The contract of reference_kernels/fused_states.py and the algorithm of the Triton kernels
// (triton_lif.py, _states_*): V and the second state in registers over T; forward writes S and
// the margin H - theta[t] once per step (S from its sign bit in backward, as above), ALIF's
// theta[t] when `theta_out` is given (the reset's gradient needs it unless detach_reset), and V
// with the state when `v_out` is given; backward carries gH and gI (CUBA) or gA_d (ALIF) in
// reverse time, reading dS (and dV, the state's gradient, theta) and writing dX once per step.
// Both products of the state's recurrence round once (lif_mul_rn), as in PyTorch's eager
// arithmetic: I = d_syn I + X, theta = theta0 + beta_a (d_a A).

#define LIF_NEURON_CUBA 4
#define LIF_NEURON_ALIF 5

template <class D, class P, int NEURON>
__device__ __forceinline__ void states_forward_impl(
    const typename D::storage* __restrict__ x, typename D::storage* __restrict__ spikes,
    typename D::storage* __restrict__ margin_out, typename D::storage* __restrict__ theta_out,
    typename D::storage* __restrict__ v_out, typename D::storage* __restrict__ state_out,
    long long n, int steps, float tau, float v_threshold, float v_reset, int soft_reset,
    int decay_input, float state_decay, float beta_a) {
  typedef typename P::packet Packet;
  const int lanes = P::kLanes;
  if (steps <= 0) {
    return;
  }
  const float v_rest = soft_reset ? 0.0f : v_reset;
  const unsigned int one = D::bits(D::store(1.0f));
  const long long packets = n / lanes;
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < packets; i += stride) {
    float v[lanes];
    float state[lanes];  // I (CUBA) or A (ALIF), from 0
    LIF_UNROLL
    for (int k = 0; k < lanes; ++k) {
      v[k] = v_rest;
      state[k] = 0.0f;
    }
    long long offset = i * lanes;
    Packet x_raw = P::load(x, offset);
    for (int t = 0; t < steps; ++t, offset += n) {
      Packet x_next = P::zero();
      if (t + 1 < steps) {
        x_next = P::load(x, offset + n);
      }
      Packet s_out = P::zero(), m_out = P::zero(), th_out = P::zero(), v_new = P::zero(),
             st_new = P::zero();
      LIF_UNROLL
      for (int k = 0; k < lanes; ++k) {
        const float xt = D::load(D::from_bits(P::get(x_raw, k)));
        float theta = v_threshold, h, adapted = 0.0f;
        if (NEURON == LIF_NEURON_CUBA) {
          state[k] = lif_mul_rn(state[k], state_decay) + xt;
          h = lif_charge<LIF_NEURON_LIF>(v[k], state[k], v_rest, tau, 0.0f, decay_input);
        } else {
          adapted = lif_mul_rn(state[k], state_decay);
          theta = v_threshold + lif_mul_rn(beta_a, adapted);
          h = lif_charge<LIF_NEURON_LIF>(v[k], xt, v_rest, tau, 0.0f, decay_input);
        }
        const bool fire = h >= theta;
        v[k] = lif_reset(h, fire, theta, v_reset, soft_reset);
        if (NEURON == LIF_NEURON_ALIF) {
          state[k] = adapted + (fire ? 1.0f : 0.0f);
        }
        const float margin = lif_margin(h, theta, fire);
        if (fire) {
          P::put(s_out, k, one);
        }
        P::put(m_out, k, D::bits(D::store(margin)));
        P::put(th_out, k, D::bits(D::store(theta)));
        P::put(v_new, k, D::bits(D::store(v[k])));
        P::put(st_new, k, D::bits(D::store(state[k])));
      }
      if (spikes != nullptr) {
        P::store(spikes, offset, s_out);
      }
      if (margin_out != nullptr) {
        P::store(margin_out, offset, m_out);
      }
      if (theta_out != nullptr) {
        P::store(theta_out, offset, th_out);
      }
      if (v_out != nullptr) {
        P::store(v_out, offset, v_new);
        P::store(state_out, offset, st_new);
      }
      x_raw = x_next;
    }
  }
}

template <class D, class P, int NEURON>
__device__ __forceinline__ void states_backward_impl(
    const typename D::storage* __restrict__ grad_spikes,
    const typename D::storage* __restrict__ grad_v,
    const typename D::storage* __restrict__ grad_state,
    const typename D::storage* __restrict__ margin,
    const typename D::storage* __restrict__ theta_in, typename D::storage* __restrict__ grad_x,
    long long n, int steps, float tau, float v_threshold, float v_reset, int soft_reset,
    int decay_input, int detach_reset, int surrogate, float alpha, float state_decay,
    float beta_a, int detach_adaptation) {
  typedef typename P::packet Packet;
  const int lanes = P::kLanes;
  if (steps <= 0) {
    return;
  }
  const float decay = 1.0f - 1.0f / tau;  // dH[t+1]/dV[t]
  const long long packets = n / lanes;
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < packets; i += stride) {
    float grad_h_next[lanes], grad_state_next[lanes];  // gH[t+1], gI[t+1] or gA_d[t+1]
    LIF_UNROLL
    for (int k = 0; k < lanes; ++k) {
      grad_h_next[k] = 0.0f;
      grad_state_next[k] = 0.0f;
    }
    long long offset = (long long)(steps - 1) * n + i * lanes;
    Packet margin_raw = P::load(margin, offset);
    Packet gs_raw = P::load(grad_spikes, offset);
    for (int t = steps - 1; t >= 0; --t, offset -= n) {
      Packet margin_prev = P::zero(), gs_prev = P::zero();
      if (t > 0) {
        margin_prev = P::load(margin, offset - n);
        gs_prev = P::load(grad_spikes, offset - n);
      }
      const Packet gv_raw = grad_v != nullptr ? P::load(grad_v, offset) : P::zero();
      const Packet gst_raw = grad_state != nullptr ? P::load(grad_state, offset) : P::zero();
      const Packet th_raw = theta_in != nullptr ? P::load(theta_in, offset) : P::zero();
      Packet gx_out = P::zero();
      LIF_UNROLL
      for (int k = 0; k < lanes; ++k) {
        const unsigned int m_bits = P::get(margin_raw, k);
        const float m = D::load(D::from_bits(m_bits));
        const bool fired = (m_bits >> (D::kBits - 1)) == 0u;
        const float s = fired ? 1.0f : 0.0f;
        const float theta =
            theta_in != nullptr ? D::load(D::from_bits(P::get(th_raw, k))) : v_threshold;
        const float grad_v_total =
            grad_h_next[k] * decay + D::load(D::from_bits(P::get(gv_raw, k)));
        const float grad_state_in = D::load(D::from_bits(P::get(gst_raw, k)));
        float grad_s = D::load(D::from_bits(P::get(gs_raw, k)));
        float grad_a = 0.0f;
        if (NEURON == LIF_NEURON_ALIF) {  // A[t] = A_d[t] + S[t]: A's adjoint reaches S[t]
          grad_a = grad_state_next[k] * state_decay + grad_state_in;
          grad_s += grad_a;
        }
        if (!detach_reset) {
          grad_s += grad_v_total * (soft_reset ? -theta : v_reset - (m + theta));
        }
        const float grad_m = grad_s * lif_surrogate_grad(m, surrogate, alpha);
        const float grad_h = grad_m + grad_v_total * (soft_reset ? 1.0f : 1.0f - s);
        const float grad_in = decay_input ? grad_h / tau : grad_h;
        float grad_x_k;
        if (NEURON == LIF_NEURON_ALIF) {
          const float grad_theta = soft_reset ? -grad_m - grad_v_total * s : -grad_m;
          grad_state_next[k] = detach_adaptation ? 0.0f : grad_theta * beta_a + grad_a;
          grad_x_k = grad_in;
        } else {  // CUBA: I[t] feeds H[t] and, decayed, I[t+1]
          grad_x_k = grad_in + grad_state_next[k] * state_decay + grad_state_in;
          grad_state_next[k] = grad_x_k;
        }
        P::put(gx_out, k, D::bits(D::store(grad_x_k)));
        grad_h_next[k] = grad_h;
      }
      P::store(grad_x, offset, gx_out);
      margin_raw = margin_prev;
      gs_raw = gs_prev;
    }
  }
}

// Entry points {cuba,alif}_{forward,backward}_{f32,f16,bf16}[_vec]: their own parameter list
// (the state's outputs, gradients and parameters instead of PLIF's k).
#define LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, NAME, D, PATH)                                 \
  LIF_KERNEL_BOUNDED(LIF_MIN_BLOCKS_PER_SM_STATES) PREFIX##_forward_##NAME(                    \
      const D::storage* __restrict__ x, D::storage* __restrict__ spikes,                       \
      D::storage* __restrict__ margin, D::storage* __restrict__ theta,                         \
      D::storage* __restrict__ v_out, D::storage* __restrict__ state_out, long long n,         \
      int steps, float tau, float v_threshold, float v_reset, int soft_reset, int decay_input, \
      float state_decay, float beta_a) {                                                       \
    states_forward_impl<D, PATH<D>, NEURON>(x, spikes, margin, theta, v_out, state_out, n,     \
                                            steps, tau, v_threshold, v_reset, soft_reset,      \
                                            decay_input, state_decay, beta_a);                 \
  }                                                                                            \
  LIF_KERNEL_BOUNDED(LIF_MIN_BLOCKS_PER_SM_STATES) PREFIX##_backward_##NAME(                   \
      const D::storage* __restrict__ grad_spikes, const D::storage* __restrict__ grad_v,       \
      const D::storage* __restrict__ grad_state, const D::storage* __restrict__ margin,        \
      const D::storage* __restrict__ theta, D::storage* __restrict__ grad_x, long long n,      \
      int steps, float tau, float v_threshold, float v_reset, int soft_reset, int decay_input, \
      int detach_reset, int surrogate, float alpha, float state_decay, float beta_a,           \
      int detach_adaptation) {                                                                 \
    states_backward_impl<D, PATH<D>, NEURON>(grad_spikes, grad_v, grad_state, margin, theta,   \
                                             grad_x, n, steps, tau, v_threshold, v_reset,      \
                                             soft_reset, decay_input, detach_reset, surrogate, \
                                             alpha, state_decay, beta_a, detach_adaptation);   \
  }

#define LIF_STATES_NEURON_ENTRY_POINTS(PREFIX, NEURON)                 \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, f32, LifF32, LifScalarPath)     \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, f16, LifF16, LifScalarPath)     \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, bf16, LifBF16, LifScalarPath)   \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, f32_vec, LifF32, LifVectorPath) \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, f16_vec, LifF16, LifVectorPath) \
  LIF_STATES_ENTRY_POINTS(PREFIX, NEURON, bf16_vec, LifBF16, LifVectorPath)

LIF_STATES_NEURON_ENTRY_POINTS(cuba, LIF_NEURON_CUBA)
LIF_STATES_NEURON_ENTRY_POINTS(alif, LIF_NEURON_ALIF)
