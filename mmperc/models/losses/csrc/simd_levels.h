// Building the kernels for the CPU they run on, with one portable binary. MMPERC_LEVELS(name, Args,
// body) defines name(const Args& p, int64_t begin, int64_t end) { body } twice, for the x86-64
// baseline (SSE2) and for x86-64-v3 (AVX2, FMA), and name's table of the two; the helpers the body
// calls are MMPERC_INLINE, so that each version has its own copy of their arithmetic, vectorised
// for its instruction set. simd_level() is the version the kernels run: 1 where the CPU has
// x86-64-v3, else 0; set_simd_level(0) runs the baseline anyway (tests run both). Measured on a
// Xeon with AVX-512 (2 cores, the transforms and pooling of 64 -> 128 and 128 -> 256 layers):
// x86-64-v3 17-20% faster than the baseline; x86-64-v4 (AVX-512) no faster than x86-64-v3, so it is
// not built. Elsewhere (clang, other architectures, GCC before 12) both are the same baseline code.
#pragma once

#include <torch/extension.h>

#define MMPERC_INLINE inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define MMPERC_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define MMPERC_HAS_LEVELS 1
#else
#define MMPERC_TARGET_V3
#define MMPERC_HAS_LEVELS 0
#endif

#define MMPERC_LEVELS(name, Args, body)                                                   \
  void name##_v1(const Args& p, int64_t begin, int64_t end) { body; }                     \
  MMPERC_TARGET_V3 void name##_v3(const Args& p, int64_t begin, int64_t end) { body; }    \
  void (*const name[2])(const Args&, int64_t, int64_t) = {name##_v1, name##_v3};

namespace simd {

// The best version the CPU runs: 0 (baseline) or 1 (x86-64-v3)
inline int cpu_level() {
#if MMPERC_HAS_LEVELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v3")) return 1;
#endif
  return 0;
}

inline int& level() {
  static int current = cpu_level();
  return current;
}

inline int simd_level() { return level(); }

inline void set_simd_level(int value) {
  TORCH_CHECK(value >= 0 && value <= cpu_level(), "set_simd_level: ", value, " is not in 0 .. ", cpu_level(),
              " (0: the x86-64 baseline, 1: x86-64-v3; at most this CPU's)");
  level() = value;
}

}  // namespace simd
