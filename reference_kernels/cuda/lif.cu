// Fused multi-step LIF forward and backward (BPTT) kernels in CUDA C.
//
// The same algorithm as the Triton kernels and the contract of reference_kernels/fused.py:
// a contiguous [T, N] layout (element (t, n) at t*N + n), one thread per neuron (grid-stride
// loop over N), the time loop inside the thread with the membrane V in a register, float32
// arithmetic for every storage dtype. The equations are those of kernelprof/lif.py.
//
// Like the Triton backend, forward saves the margin H - theta for backward rather than H:
// stored in fp16/bf16, H near the threshold (~1) keeps only 2^-11 / 2^-8 absolute precision,
// while the margin keeps that precision relative to its own, small, size. The surrogate is a
// function of the margin and dV/dS = V_r - H = (V_r - theta) - margin, so backward gets both
// without ever rounding H. Against the float64 oracle, bf16 gradients computed from a saved H
// fell outside atol = rtol = 1e-2 (T >= 4, with a V gradient); from the margin they stay inside.
//
// This file is compiled as is by three compilers, so it includes no header at all:
//   * NVRTC, through cupy.RawModule (reference_kernels/cupy_lif.py), on a CUDA machine;
//   * nvcc -cubin (tests/test_cuda_source.py), to prove it builds for sm_80 and sm_90;
//   * g++ as host C++ after host_shim.h (host_launch.cpp), so the tests can run the very same
//     kernel bodies serially on a machine without a GPU.
// That is why the fp16/bf16 conversions below are portable software (cuda_fp16.h may be out of
// NVRTC's reach and does not exist for g++), and why only `unsigned short`, `unsigned int`,
// `unsigned char` and `long long` are used (no stdint.h).

// ---------------------------------------------------------------------------------------------
// Bit casts and software fp16 / bf16 conversions (round to nearest even, subnormals, inf, NaN)
// ---------------------------------------------------------------------------------------------

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
}

// float -> IEEE binary16 bits, rounding to nearest even (overflow to inf, underflow to
// subnormals and zero, NaN stays a quiet NaN with the sign and high payload bits).
__host__ __device__ __forceinline__ unsigned short lif_float_to_half(float f) {
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
}

// bfloat16 bits -> float (exact: bf16 is the upper half of a float32).
__host__ __device__ __forceinline__ float lif_bf16_to_float(unsigned short b) {
  return lif_bits_float((unsigned int)b << 16);
}

// float -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN (the rounding add
// could otherwise carry a NaN payload into an infinity).
__host__ __device__ __forceinline__ unsigned short lif_float_to_bf16(float f) {
  const unsigned int u = lif_float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return (unsigned short)((u >> 16) | 0x0040u);
  }
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// ---------------------------------------------------------------------------------------------
// Storage types: how a [T, N] element is held in memory and converted to/from float32
// ---------------------------------------------------------------------------------------------

struct LifF32 {
  typedef float storage;
  static __host__ __device__ __forceinline__ float load(float v) { return v; }
  static __host__ __device__ __forceinline__ float store(float v) { return v; }
};

struct LifF16 {
  typedef unsigned short storage;  // IEEE binary16 bits
  static __host__ __device__ __forceinline__ float load(unsigned short v) {
    return lif_half_to_float(v);
  }
  static __host__ __device__ __forceinline__ unsigned short store(float v) {
    return lif_float_to_half(v);
  }
};

struct LifBF16 {
  typedef unsigned short storage;  // bfloat16 bits
  static __host__ __device__ __forceinline__ float load(unsigned short v) {
    return lif_bf16_to_float(v);
  }
  static __host__ __device__ __forceinline__ unsigned short store(float v) {
    return lif_float_to_bf16(v);
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

// ---------------------------------------------------------------------------------------------
// Forward: H, S, V over T steps; writes spikes, H - theta, optionally uint8 spikes and V
// ---------------------------------------------------------------------------------------------

template <class D>
__device__ __forceinline__ void lif_forward_impl(
    const typename D::storage* __restrict__ x, typename D::storage* __restrict__ spikes,
    typename D::storage* __restrict__ margin_out, unsigned char* __restrict__ spikes_u8,
    typename D::storage* __restrict__ v_out, long long n, int steps, float tau,
    float v_threshold, float v_reset, int soft_reset, int decay_input) {
  typedef typename D::storage S;
  if (steps <= 0) {
    return;
  }
  // Soft reset decays towards 0 and starts there; hard reset towards V_r (kernelprof.lif).
  const float v_rest = soft_reset ? 0.0f : v_reset;
  const S one = D::store(1.0f);
  const S zero = D::store(0.0f);
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float v = v_rest;
    long long offset = i;
    S x_raw = x[offset];
    for (int t = 0; t < steps; ++t, offset += n) {
      // Issue the next step's load before this step's arithmetic: the loads of a thread are
      // independent of its recurrence, so keeping one in flight hides memory latency.
      S x_next = zero;
      if (t + 1 < steps) {
        x_next = x[offset + n];
      }
      const float xt = D::load(x_raw);
      // Same operation order and true division as kernelprof.lif.charge, so float32 results
      // match the PyTorch oracle bit for bit.
      const float h = decay_input ? v + (xt - (v - v_rest)) / tau : v - (v - v_rest) / tau + xt;
      const bool fire = h >= v_threshold;  // Heaviside(0) = 1
      if (soft_reset) {
        v = fire ? h - v_threshold : h;
      } else {
        v = fire ? v_reset : h;
      }
      spikes[offset] = fire ? one : zero;
      margin_out[offset] = D::store(h - v_threshold);
      if (spikes_u8 != nullptr) {
        spikes_u8[offset] = fire ? 1 : 0;
      }
      if (v_out != nullptr) {
        v_out[offset] = D::store(v);
      }
      x_raw = x_next;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward: the reverse-time BPTT loop of kernelprof.lif from the saved margin (and uint8 S)
// ---------------------------------------------------------------------------------------------

template <class D>
__device__ __forceinline__ void lif_backward_impl(
    const typename D::storage* __restrict__ grad_spikes,
    const typename D::storage* __restrict__ grad_v,
    const typename D::storage* __restrict__ margin, const unsigned char* __restrict__ spikes_u8,
    typename D::storage* __restrict__ grad_x, long long n, int steps, float tau,
    float v_threshold, float v_reset, int soft_reset, int decay_input, int detach_reset,
    int surrogate, float alpha) {
  typedef typename D::storage S;
  if (steps <= 0) {
    return;
  }
  const float decay = 1.0f - 1.0f / tau;  // dH[t+1]/dV[t]
  const float reset_gap = v_reset - v_threshold;  // V_r - H = reset_gap - margin (hard reset)
  const S zero = D::store(0.0f);
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    long long offset = (long long)(steps - 1) * n + i;
    S margin_raw = margin[offset];
    S gs_raw = grad_spikes[offset];
    S gv_raw = grad_v != nullptr ? grad_v[offset] : zero;
    unsigned char s_raw = spikes_u8 != nullptr ? spikes_u8[offset] : 0;
    float grad_h_next = 0.0f;  // gH[T] = 0
    for (int t = steps - 1; t >= 0; --t, offset -= n) {
      // Prefetch step t-1 (independent of the recurrence) before computing step t.
      S margin_prev = zero, gs_prev = zero, gv_prev = zero;
      unsigned char s_prev = 0;
      if (t > 0) {
        margin_prev = margin[offset - n];
        gs_prev = grad_spikes[offset - n];
        if (grad_v != nullptr) {
          gv_prev = grad_v[offset - n];
        }
        if (spikes_u8 != nullptr) {
          s_prev = spikes_u8[offset - n];
        }
      }
      const float m = D::load(margin_raw);
      // Half dtypes pass the forward's spikes: the margin rounded to fp16/bf16 can round to 0
      // from below. In float32, fl(H - theta) >= 0 exactly when H >= theta, so S is recomputed.
      const bool fired = spikes_u8 != nullptr ? s_raw != 0 : m >= 0.0f;
      const float s = fired ? 1.0f : 0.0f;
      const float grad_v_total = D::load(gv_raw) + grad_h_next * decay;
      float grad_s_total = D::load(gs_raw);
      if (!detach_reset) {
        const float dv_ds = soft_reset ? -v_threshold : reset_gap - m;
        grad_s_total += grad_v_total * dv_ds;
      }
      const float dv_dh = soft_reset ? 1.0f : 1.0f - s;
      const float sg = lif_surrogate_grad(m, surrogate, alpha);
      const float grad_h = grad_s_total * sg + grad_v_total * dv_dh;
      grad_x[offset] = D::store(decay_input ? grad_h / tau : grad_h);
      grad_h_next = grad_h;
      margin_raw = margin_prev;
      gs_raw = gs_prev;
      gv_raw = gv_prev;
      s_raw = s_prev;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points, one per storage dtype (unmangled names for cupy.RawModule.get_function)
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void lif_forward_f32(
    const float* __restrict__ x, float* __restrict__ spikes, float* __restrict__ margin,
    unsigned char* __restrict__ spikes_u8, float* __restrict__ v_out, long long n, int steps,
    float tau, float v_threshold, float v_reset, int soft_reset, int decay_input) {
  lif_forward_impl<LifF32>(x, spikes, margin, spikes_u8, v_out, n, steps, tau, v_threshold,
                           v_reset, soft_reset, decay_input);
}

extern "C" __global__ void lif_forward_f16(
    const unsigned short* __restrict__ x, unsigned short* __restrict__ spikes,
    unsigned short* __restrict__ margin, unsigned char* __restrict__ spikes_u8,
    unsigned short* __restrict__ v_out, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input) {
  lif_forward_impl<LifF16>(x, spikes, margin, spikes_u8, v_out, n, steps, tau, v_threshold,
                           v_reset, soft_reset, decay_input);
}

extern "C" __global__ void lif_forward_bf16(
    const unsigned short* __restrict__ x, unsigned short* __restrict__ spikes,
    unsigned short* __restrict__ margin, unsigned char* __restrict__ spikes_u8,
    unsigned short* __restrict__ v_out, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input) {
  lif_forward_impl<LifBF16>(x, spikes, margin, spikes_u8, v_out, n, steps, tau, v_threshold,
                            v_reset, soft_reset, decay_input);
}

extern "C" __global__ void lif_backward_f32(
    const float* __restrict__ grad_spikes, const float* __restrict__ grad_v,
    const float* __restrict__ margin, const unsigned char* __restrict__ spikes_u8,
    float* __restrict__ grad_x, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input, int detach_reset, int surrogate,
    float alpha) {
  lif_backward_impl<LifF32>(grad_spikes, grad_v, margin, spikes_u8, grad_x, n, steps, tau,
                            v_threshold, v_reset, soft_reset, decay_input, detach_reset,
                            surrogate, alpha);
}

extern "C" __global__ void lif_backward_f16(
    const unsigned short* __restrict__ grad_spikes, const unsigned short* __restrict__ grad_v,
    const unsigned short* __restrict__ margin, const unsigned char* __restrict__ spikes_u8,
    unsigned short* __restrict__ grad_x, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input, int detach_reset, int surrogate,
    float alpha) {
  lif_backward_impl<LifF16>(grad_spikes, grad_v, margin, spikes_u8, grad_x, n, steps, tau,
                            v_threshold, v_reset, soft_reset, decay_input, detach_reset,
                            surrogate, alpha);
}

extern "C" __global__ void lif_backward_bf16(
    const unsigned short* __restrict__ grad_spikes, const unsigned short* __restrict__ grad_v,
    const unsigned short* __restrict__ margin, const unsigned char* __restrict__ spikes_u8,
    unsigned short* __restrict__ grad_x, long long n, int steps, float tau, float v_threshold,
    float v_reset, int soft_reset, int decay_input, int detach_reset, int surrogate,
    float alpha) {
  lif_backward_impl<LifBF16>(grad_spikes, grad_v, margin, spikes_u8, grad_x, n, steps, tau,
                             v_threshold, v_reset, soft_reset, decay_input, detach_reset,
                             surrogate, alpha);
}
