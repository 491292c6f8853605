// One 2x2 window of a max pooling and its gradient, n channels at a time, for max_pool_relu.cpp
// and for the F(4x4, 3x3) output transform that pools its tiles (winograd_f4.cpp). The code of a
// pooled output is where its gradient goes: the window's argmax (0..3, row-major) where the
// output (after the ReLU) is positive, else NO_GRADIENT. Fixed-length loops: vectorised (in each
// clone of the kernels that call them: simd_levels.h).
#pragma once

#include "simd_levels.h"

#include <cstdint>
#include <cstring>

constexpr uint8_t NO_GRADIENT = 4;

// m: the first maximum of a, b, c, d (NaN wins, as in PyTorch's max_pool2d), k: its position
template <int n>
MMPERC_INLINE void window_max(const float* __restrict a, const float* __restrict b, const float* __restrict c,
                       const float* __restrict d, float* __restrict m, float* __restrict k) {
  for (int e = 0; e < n; ++e) {
    float v = a[e], p = 0.f;
    const bool tb = b[e] > v || b[e] != b[e];
    v = tb ? b[e] : v;
    p = tb ? 1.f : p;
    const bool tc = c[e] > v || c[e] != c[e];
    v = tc ? c[e] : v;
    p = tc ? 2.f : p;
    const bool td = d[e] > v || d[e] != d[e];
    v = td ? d[e] : v;
    p = td ? 3.f : p;
    m[e] = v;
    k[e] = p;
  }
}

// The ReLU of the l <= n maxima m with their positions k: written to out, and the codes to code
// (when not null)
template <int n>
MMPERC_INLINE void store_pooled(const float* __restrict m, const float* __restrict k, int l, float* __restrict out,
                         uint8_t* __restrict code) {
  if (code) {
    for (int e = 0; e < l; ++e) code[e] = m[e] > 0.f ? (uint8_t)(int)k[e] : NO_GRADIENT;
  }
  for (int e = 0; e < l; ++e) out[e] = (m[e] > 0.f || m[e] != m[e]) ? m[e] : 0.f;
}

// a, b, c, d: g where the code is 0, 1, 2, 3, else 0 (selected on the bits: integer operations,
// which the compiler vectorises here, where float selects stay branches)
template <int n>
MMPERC_INLINE void route(const float* __restrict g, const uint8_t* __restrict code, float* __restrict a,
                  float* __restrict b, float* __restrict c, float* __restrict d) {
  uint32_t bits[n], out[4][n];
  std::memcpy(bits, g, sizeof(bits));
#pragma omp simd
  for (int e = 0; e < n; ++e) {
    const uint32_t k = code[e];
    out[0][e] = bits[e] & (0u - (uint32_t)(k == 0));
    out[1][e] = bits[e] & (0u - (uint32_t)(k == 1));
    out[2][e] = bits[e] & (0u - (uint32_t)(k == 2));
    out[3][e] = bits[e] & (0u - (uint32_t)(k == 3));
  }
  std::memcpy(a, out[0], sizeof(bits));
  std::memcpy(b, out[1], sizeof(bits));
  std::memcpy(c, out[2], sizeof(bits));
  std::memcpy(d, out[3], sizeof(bits));
}
