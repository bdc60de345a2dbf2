// Host build of lif.cu for the tests: serial "launches" of its kernels and its fp16/bf16
// conversions, exported with C linkage for ctypes.
//
// Build: g++ -O2 -std=c++17 -shared -fPIC -o liblif_host.so host_launch.cpp
// lif.cu is included verbatim (the exact file CuPy compiles), after host_shim.h.
#include "host_shim.h"
#include "lif.cu"

namespace {

// Runs `kernel` for every (block, thread) of a 1-D grid, one after another, as a GPU would in
// some order. The kernels' grid-stride loops make any grid/block cover all N neurons.
template <class Kernel>
void launch_serial(unsigned int grid, unsigned int block, Kernel kernel) {
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned int b = 0; b < grid; ++b) {
    blockIdx = {b, 0, 0};
    for (unsigned int t = 0; t < block; ++t) {
      threadIdx = {t, 0, 0};
      kernel();
    }
  }
}

}  // namespace

// host_launch_{lif,if,plif,plifc}_{forward,backward}_NAME(grid, block, <the kernel's parameters>)
// for each entry point of lif.cu; null pointers pass through as in a GPU launch.
#define LIF_HOST_LAUNCHERS(PREFIX, NAME, S)                                                    \
  extern "C" void host_launch_##PREFIX##_forward_##NAME(                                       \
      unsigned int grid, unsigned int block, const S* x, S* spikes, S* margin, S* v_out,       \
      const float* k, long long n, int steps, float tau, float v_threshold, float v_reset,     \
      int soft_reset, int decay_input, long long k_channels, long long k_inner) {              \
    launch_serial(grid, block, [&] {                                                           \
      PREFIX##_forward_##NAME(x, spikes, margin, v_out, k, n, steps, tau, v_threshold,         \
                              v_reset, soft_reset, decay_input, k_channels, k_inner);          \
    });                                                                                        \
  }                                                                                            \
  extern "C" void host_launch_##PREFIX##_backward_##NAME(                                      \
      unsigned int grid, unsigned int block, const S* grad_spikes, const S* grad_v,            \
      const S* margin, S* grad_x, const float* k, float* dk_partials, long long n, int steps,   \
      float tau, float v_threshold, float v_reset, int soft_reset, int decay_input,            \
      int detach_reset, int surrogate, float alpha, long long k_channels, long long k_inner) { \
    launch_serial(grid, block, [&] {                                                           \
      PREFIX##_backward_##NAME(grad_spikes, grad_v, margin, grad_x, k, dk_partials, n, steps,  \
                               tau, v_threshold, v_reset, soft_reset, decay_input,             \
                               detach_reset, surrogate, alpha, k_channels, k_inner);           \
    });                                                                                        \
  }

#define LIF_HOST_NEURON(PREFIX)                      \
  LIF_HOST_LAUNCHERS(PREFIX, f32, float)             \
  LIF_HOST_LAUNCHERS(PREFIX, f16, unsigned short)    \
  LIF_HOST_LAUNCHERS(PREFIX, bf16, unsigned short)   \
  LIF_HOST_LAUNCHERS(PREFIX, f32_vec, float)         \
  LIF_HOST_LAUNCHERS(PREFIX, f16_vec, unsigned short) \
  LIF_HOST_LAUNCHERS(PREFIX, bf16_vec, unsigned short)

LIF_HOST_NEURON(lif)
LIF_HOST_NEURON(if)
LIF_HOST_NEURON(plif)
LIF_HOST_NEURON(plifc)

// host_launch_{cuba,alif}_{forward,backward}_NAME: the two-state entry points' parameters.
#define LIF_HOST_STATES_LAUNCHERS(PREFIX, NAME, S)                                             \
  extern "C" void host_launch_##PREFIX##_forward_##NAME(                                       \
      unsigned int grid, unsigned int block, const S* x, S* spikes, S* margin, S* theta,       \
      S* v_out, S* state_out, long long n, int steps, float tau, float v_threshold,            \
      float v_reset, int soft_reset, int decay_input, float state_decay, float beta_a) {       \
    launch_serial(grid, block, [&] {                                                           \
      PREFIX##_forward_##NAME(x, spikes, margin, theta, v_out, state_out, n, steps, tau,       \
                              v_threshold, v_reset, soft_reset, decay_input, state_decay,      \
                              beta_a);                                                         \
    });                                                                                        \
  }                                                                                            \
  extern "C" void host_launch_##PREFIX##_backward_##NAME(                                      \
      unsigned int grid, unsigned int block, const S* grad_spikes, const S* grad_v,            \
      const S* grad_state, const S* margin, const S* theta, S* grad_x, long long n, int steps, \
      float tau, float v_threshold, float v_reset, int soft_reset, int decay_input,            \
      int detach_reset, int surrogate, float alpha, float state_decay, float beta_a,           \
      int detach_adaptation) {                                                                 \
    launch_serial(grid, block, [&] {                                                           \
      PREFIX##_backward_##NAME(grad_spikes, grad_v, grad_state, margin, theta, grad_x, n,      \
                               steps, tau, v_threshold, v_reset, soft_reset, decay_input,      \
                               detach_reset, surrogate, alpha, state_decay, beta_a,            \
                               detach_adaptation);                                             \
    });                                                                                        \
  }

#define LIF_HOST_STATES_NEURON(PREFIX)                       \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, f32, float)              \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, f16, unsigned short)     \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, bf16, unsigned short)    \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, f32_vec, float)          \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, f16_vec, unsigned short) \
  LIF_HOST_STATES_LAUNCHERS(PREFIX, bf16_vec, unsigned short)

LIF_HOST_STATES_NEURON(cuba)
LIF_HOST_STATES_NEURON(alif)

// Element-wise access to the software conversions, so the tests can check them exhaustively.
extern "C" void host_half_to_float(const unsigned short* in, float* out, long long count) {
  for (long long i = 0; i < count; ++i) out[i] = lif_half_to_float(in[i]);
}
extern "C" void host_float_to_half(const float* in, unsigned short* out, long long count) {
  for (long long i = 0; i < count; ++i) out[i] = lif_float_to_half(in[i]);
}
extern "C" void host_bf16_to_float(const unsigned short* in, float* out, long long count) {
  for (long long i = 0; i < count; ++i) out[i] = lif_bf16_to_float(in[i]);
}
extern "C" void host_float_to_bf16(const float* in, unsigned short* out, long long count) {
  for (long long i = 0; i < count; ++i) out[i] = lif_float_to_bf16(in[i]);
}
