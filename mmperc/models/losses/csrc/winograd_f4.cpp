// Winograd F(4x4, 3x3) and F(2x2, 3x3) tile transforms for mmperc's loss network (CPU, float32),
// bound as mmperc.models.losses._winograd_f4 and driven by winograd_f4.py, which runs the matrix
// products between them (torch.bmm). Tensors are channels-innermost: a map (N, H, W, C), tiles
// (T * T, N, R, TW, C) of m x m outputs (T = m + 2) for the tile rows r0 .. r0 + R of the map, which
// is padded by one pixel (reads outside it are zero). Each transform is one pass over a block's tiles, L channels at
// a time, parallel over tiles; its work is built for AVX2 (x86-64-v3) and the baseline, and the
// CPU's runs (simd_levels.h).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

constexpr int L = 16;
#include "max_pool_window.h"
#include "winograd_f4_tiles.h"

namespace {

// The sizes of a map (N, H, W, C) and of its tiles (T * T, N, R, TW, C) of M x M outputs each
// (T = M + 2), and the stride between the tiles' T * T positions, once the two are checked to fit
struct Sizes {
  int64_t N, H, W, C, R, TW, stride;
};

// Checks a 4-D map (N, ., ., C; described by what) and its tiles of an H x W map fit each other
Sizes checked_tiles(const at::Tensor& map, const at::Tensor& tiles, int64_t r0, int64_t H, int64_t W, int64_t M,
                    const char* name, const char* what) {
  TORCH_CHECK(M == 2 || M == 4, name, ": tiles of 2 or 4 outputs, not ", M);
  TORCH_CHECK(map.dim() == 4 && tiles.dim() == 5 && tiles.size(0) == (M + 2) * (M + 2), name, ": expected ", what,
              " and (", (M + 2) * (M + 2), ", N, R, TW, C) tiles");
  TORCH_CHECK(map.scalar_type() == at::kFloat && tiles.scalar_type() == at::kFloat, name, ": float32 only");
  TORCH_CHECK(map.is_contiguous() && tiles.is_contiguous(), name, ": contiguous tensors only");
  TORCH_CHECK(map.size(0) == tiles.size(1) && map.size(3) == tiles.size(4), name, ": batch or channels differ");
  TORCH_CHECK(tiles.size(3) == (W + M - 1) / M && r0 >= 0 && r0 + tiles.size(2) <= (H + M - 1) / M, name,
              ": the tiles do not fit the map");
  const int64_t N = tiles.size(1), C = tiles.size(4), R = tiles.size(2), TW = tiles.size(3);
  return {N, H, W, C, R, TW, N * R * TW * C};
}

Sizes checked_sizes(const at::Tensor& map, const at::Tensor& tiles, int64_t r0, const char* name, int64_t M) {
  TORCH_CHECK(map.dim() == 4, name, ": expected a (N, H, W, C) map");
  return checked_tiles(map, tiles, r0, map.size(1), map.size(2), M, name, "a (N, H, W, C) map");
}

MMPERC_INLINE void load(const float* __restrict src, int c0, int l, float* __restrict d) {
  if (l == L) { for (int c = 0; c < L; ++c) d[c] = src[c0 + c]; }
  else { for (int c = 0; c < L; ++c) d[c] = c < l ? src[c0 + c] : 0.f; }
}

MMPERC_INLINE void store(const float* __restrict o, int l, float* __restrict dst) {
  if (l == L) { for (int c = 0; c < L; ++c) dst[c] = o[c]; }
  else { for (int c = 0; c < l; ++c) dst[c] = o[c]; }
}

MMPERC_INLINE void add(const float* __restrict o, int l, float* __restrict dst) {
  if (l == L) { for (int c = 0; c < L; ++c) dst[c] += o[c]; }
  else { for (int c = 0; c < l; ++c) dst[c] += o[c]; }
}

MMPERC_INLINE int64_t lanes(int64_t c0, int64_t C) { return C - c0 < L ? C - c0 : L; }

using Transform = void (*)(const float (*)[L], float (*)[L]);

// What a pass over tiles reads and writes: a map (N, H, W, C) at mp, tiles (T * T, N, R, TW, C) at
// tp (their positions stride apart) from tile row r0 on, each tile's pixels from (M * row - offset,
// M * column - offset); for tiles_to_map with ADD, the tile rows first, first + step, ... (rows of
// them); for the pooling passes, the pooled map (N, H / 2, W / 2, C) at pp and its codes at cp
struct Pass {
  Sizes s;
  const float* mp_in;
  float* mp;
  const float* tp_in;
  float* tp;
  int64_t r0, offset, first, step, rows;
  const float* zeros;
  const float* pp_in;
  float* pp;
  const uint8_t* cp_in;
  uint8_t* cp;
  const uint8_t* none;
};

// map -> tiles of M x M outputs, tiles begin .. end: each tile's S x S pixels, zero outside the map,
// transformed by tf into T * T values per channel
template <int M, int S, Transform tf>
MMPERC_INLINE void map_to_tiles_range(const Pass& p, int64_t begin, int64_t end) {
  constexpr int T = M + 2;
  const auto [N, H, W, C, R, TW, stride] = p.s;
  float d[S * S][L], o[T * T][L];
  const float* src[S * S];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    for (int i = 0; i < S; ++i) {
      const int64_t y = M * (p.r0 + r) + i - p.offset;
      for (int j = 0; j < S; ++j) {
        const int64_t x = M * t + j - p.offset;
        src[i * S + j] = (y >= 0 && y < H && x >= 0 && x < W) ? p.mp_in + ((n * H + y) * W + x) * C : p.zeros;
      }
    }
    float* dst = p.tp + tile * C;
    for (int64_t c0 = 0; c0 < C; c0 += L) {
      const int l = (int)lanes(c0, C);
      for (int k = 0; k < S * S; ++k) load(src[k], c0, l, d[k]);
      tf(d, o);
      for (int k = 0; k < T * T; ++k) store(o[k], l, dst + k * stride + c0);
    }
  }
}

// tiles of M x M outputs -> map, items begin .. end of (batch, tile row): tf gives each tile's S x S
// pixels, written (or with ADD, added) where they fall inside the map, the tiles of a row in turn
// (they overlap)
template <int M, int S, Transform tf, bool ADD>
MMPERC_INLINE void tiles_to_map_range(const Pass& p, int64_t begin, int64_t end) {
  constexpr int T = M + 2;
  const auto [N, H, W, C, R, TW, stride] = p.s;
  float d[T * T][L], o[S * S][L];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = p.first + p.step * (item % p.rows), n = item / p.rows;
    for (int64_t t = 0; t < TW; ++t) {
      const float* src = p.tp_in + ((n * R + r) * TW + t) * C;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int l = (int)lanes(c0, C);
        for (int k = 0; k < T * T; ++k) load(src + k * stride, c0, l, d[k]);
        tf(d, o);
        for (int i = 0; i < S; ++i) {
          const int64_t y = M * (p.r0 + r) + i - p.offset;
          if (y < 0 || y >= H) continue;
          for (int j = 0; j < S; ++j) {
            const int64_t x = M * t + j - p.offset;
            if (x < 0 || x >= W) continue;
            float* dst = p.mp + ((n * H + y) * W + x) * C + c0;
            if (ADD) add(o[i * S + j], l, dst); else store(o[i * S + j], l, dst);
          }
        }
      }
    }
  }
}

// tiles (products) -> pooled map, tiles begin .. end: each tile's M x M outputs A^T m A, and the
// ReLU and 2x2 max pooling of its (M / 2)^2 windows (inside the pooled map), with their codes when
// cp is set
template <int M, Transform tf>
MMPERC_INLINE void tiles_to_pooled_range(const Pass& p, int64_t begin, int64_t end) {
  constexpr int T = M + 2, V = M / 2;
  const auto [N, H, W, K, R, TW, stride] = p.s;
  const int64_t Ho = H / 2, Wo = W / 2;
  float d[T * T][L], o[M * M][L], mx[L], k[L];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    const float* src = p.tp_in + tile * K;
    for (int64_t c0 = 0; c0 < K; c0 += L) {
      const int l = (int)lanes(c0, K);
      for (int q = 0; q < T * T; ++q) load(src + q * stride, c0, l, d[q]);
      tf(d, o);
      for (int i = 0; i < V; ++i) {
        const int64_t y = V * (p.r0 + r) + i;
        if (y >= Ho) continue;
        for (int j = 0; j < V; ++j) {
          const int64_t x = V * t + j;
          if (x >= Wo) continue;
          const int w = 2 * M * i + 2 * j;  // the window's top left output in the tile
          window_max<L>(o[w], o[w + 1], o[w + M], o[w + M + 1], mx, k);
          const int64_t at = ((n * Ho + y) * Wo + x) * K + c0;
          store_pooled<L>(mx, k, l, p.pp + at, p.cp ? p.cp + at : nullptr);
        }
      }
    }
  }
}

// pooled gradient and codes -> tiles, tiles begin .. end: A dy A^T of the output gradient dy's
// M x M tiles, dy made in the tile from its (M / 2)^2 windows (the pooled gradient at each code, 0
// elsewhere)
template <int M, Transform tf>
MMPERC_INLINE void pooled_to_tiles_range(const Pass& p, int64_t begin, int64_t end) {
  constexpr int T = M + 2, V = M / 2;
  const auto [N, H, W, K, R, TW, stride] = p.s;
  const int64_t Ho = H / 2, Wo = W / 2;
  float d[M * M][L], o[T * T][L];
  const float* gw[V * V];
  const uint8_t* cw[V * V];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    for (int i = 0; i < V; ++i) {
      const int64_t y = V * (p.r0 + r) + i;
      for (int j = 0; j < V; ++j) {
        const int64_t x = V * t + j;
        const bool inside = y < Ho && x < Wo;
        const int64_t at = ((n * Ho + y) * Wo + x) * K;
        gw[V * i + j] = inside ? p.pp_in + at : p.zeros;
        cw[V * i + j] = inside ? p.cp_in + at : p.none;
      }
    }
    float* dst = p.tp + tile * K;
    for (int64_t c0 = 0; c0 < K; c0 += L) {
      const int l = (int)lanes(c0, K);
      for (int q = 0; q < V * V; ++q) {
        const int w = 2 * M * (q / V) + 2 * (q % V);
        if (l == L) {
          route<L>(gw[q] + c0, cw[q] + c0, d[w], d[w + 1], d[w + M], d[w + M + 1]);
        } else {
          for (int e = 0; e < L; ++e) {
            const bool real = e < l;
            route<1>(real ? gw[q] + c0 + e : p.zeros, real ? cw[q] + c0 + e : p.none, d[w] + e, d[w + 1] + e,
                     d[w + M] + e, d[w + M + 1] + e);
          }
        }
      }
      tf(d, o);
      for (int q = 0; q < T * T; ++q) store(o[q], l, dst + q * stride + c0);
    }
  }
}

// The passes of F(4x4, 3x3) (index 1) and F(2x2, 3x3) (index 0), each built for two instruction
// sets (simd_levels.h)
#define MMPERC_PASSES(name, f2, f4)          \
  MMPERC_LEVELS(name##_f2, Pass, (f2))       \
  MMPERC_LEVELS(name##_f4, Pass, (f4))       \
  const PassFn* const name[2] = {name##_f2, name##_f4};

using PassFn = void (*)(const Pass&, int64_t, int64_t);
MMPERC_PASSES(input_tiles, (map_to_tiles_range<2, 4, input_tf2>(p, begin, end)),
              (map_to_tiles_range<4, 6, input_tf>(p, begin, end)))
MMPERC_PASSES(grad_output_tiles, (map_to_tiles_range<2, 2, grad_output_tf2>(p, begin, end)),
              (map_to_tiles_range<4, 4, grad_output_tf>(p, begin, end)))
MMPERC_PASSES(output_map, (tiles_to_map_range<2, 2, output_tf2, false>(p, begin, end)),
              (tiles_to_map_range<4, 4, output_tf, false>(p, begin, end)))
MMPERC_PASSES(grad_input_map, (tiles_to_map_range<2, 4, grad_input_tf2, true>(p, begin, end)),
              (tiles_to_map_range<4, 6, grad_input_tf, true>(p, begin, end)))
MMPERC_PASSES(pooled_output, (tiles_to_pooled_range<2, output_tf2>(p, begin, end)),
              (tiles_to_pooled_range<4, output_tf>(p, begin, end)))
MMPERC_PASSES(grad_output_tiles_unpooled, (pooled_to_tiles_range<2, grad_output_tf2>(p, begin, end)),
              (pooled_to_tiles_range<4, grad_output_tf>(p, begin, end)))

// A pass's versions: [F(2x2, 3x3), F(4x4, 3x3)][instruction set]
using Passes = const PassFn* const*;

// The version of a pass for tiles of m outputs, on this CPU
PassFn version(Passes pass, int64_t m) { return pass[m == 4][simd::simd_level()]; }

// map (N, H, W, C) -> tiles (T * T, N, R, TW, C), in parallel over tiles
void map_to_tiles(const at::Tensor& map, at::Tensor& tiles, int64_t r0, int64_t offset, int64_t m, const char* name,
                  Passes pass) {
  Pass p{};
  p.s = checked_sizes(map, tiles, r0, name, m);
  const std::vector<float> zeros(p.s.C, 0.f);
  p.mp_in = map.data_ptr<float>();
  p.tp = tiles.data_ptr<float>();
  p.r0 = r0;
  p.offset = offset;
  p.zeros = zeros.data();
  const PassFn run = version(pass, m);
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

// tiles (T * T, N, R, TW, C) -> map (N, H, W, C), in parallel over rows of tiles (with ADD, rows of
// either parity in turn: tile rows two apart never overlap)
template <bool ADD>
void tiles_to_map(const at::Tensor& tiles, at::Tensor& map, int64_t r0, int64_t offset, int64_t m, const char* name,
                  Passes pass) {
  Pass p{};
  p.s = checked_sizes(map, tiles, r0, name, m);
  p.tp_in = tiles.data_ptr<float>();
  p.mp = map.data_ptr<float>();
  p.r0 = r0;
  p.offset = offset;
  p.step = ADD ? 2 : 1;
  const PassFn run = version(pass, m);
  for (int parity = 0; parity < (ADD ? 2 : 1); ++parity) {
    p.first = ADD ? (r0 + parity) % 2 : 0;
    p.rows = p.first < p.s.R ? (p.s.R - p.first + p.step - 1) / p.step : 0;
    at::parallel_for(0, p.s.N * p.rows, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
  }
}

// The tiles (T * T, N, R, TW, K) of an H x W map, tile rows r0 .. r0 + R, and its 2x2 max pooling
// (N, H / 2, W / 2, K), contiguous, with its codes (uint8, the same shape) when given
Sizes checked_pooled(const at::Tensor& pooled, const at::Tensor* code, const at::Tensor& tiles, int64_t r0,
                     int64_t H, int64_t W, int64_t M, const char* name) {
  const Sizes s = checked_tiles(pooled, tiles, r0, H, W, M, name, "a (N, H / 2, W / 2, K) pooled map");
  TORCH_CHECK(pooled.size(1) == H / 2 && pooled.size(2) == W / 2, name, ": the pooled map is not H x W pooled");
  if (code) {
    TORCH_CHECK(code->scalar_type() == at::kByte && code->is_contiguous() && code->sizes() == pooled.sizes(), name,
                ": the codes must be a contiguous uint8 tensor of the pooled map's shape");
  }
  return s;
}

}  // namespace

// Each takes the tile rows r0 .. r0 + R of a map, in tiles of m x m outputs (m = 4: F(4x4, 3x3), 6x6
// inputs; m = 2: F(2x2, 3x3), 4x4 inputs), T = m + 2.

// x (N, H, W, C) -> v = B^T d B of its T x T tiles (T * T, N, R, TW, C) (the map padded by 1)
void input_transform(const at::Tensor& x, at::Tensor& v, int64_t r0, int64_t m) {
  map_to_tiles(x, v, r0, 1, m, "input_transform", input_tiles);
}

// products (T * T, N, R, TW, K) -> out (N, H, W, K): the m x m outputs A^T m A of each tile
void output_transform(const at::Tensor& products, at::Tensor& out, int64_t r0, int64_t m) {
  tiles_to_map<false>(products, out, r0, 0, m, "output_transform", output_map);
}

// dy (N, H, W, K) -> w = A dy A^T of its m x m tiles (T * T, N, R, TW, K)
void grad_output_transform(const at::Tensor& dy, at::Tensor& w, int64_t r0, int64_t m) {
  map_to_tiles(dy, w, r0, 0, m, "grad_output_transform", grad_output_tiles);
}

// z (T * T, N, R, TW, C) -> dx (N, H, W, C) += B z B^T, the tiles' input gradients (overlapping by 2)
void grad_input_transform(const at::Tensor& z, at::Tensor& dx, int64_t r0, int64_t m) {
  tiles_to_map<true>(z, dx, r0, 1, m, "grad_input_transform", grad_input_map);
}

// products (T * T, N, R, TW, K) -> relu(max_pool2d(out, 2, 2)) (N, H / 2, W / 2, K) of the m x m
// outputs A^T m A, and with code each pooled output's code: a tile holds its pooling windows
// whole, so the outputs themselves are never written
void output_transform_max_pool(const at::Tensor& products, at::Tensor& pooled, c10::optional<at::Tensor> code,
                               int64_t r0, int64_t H, int64_t W, int64_t m) {
  const at::Tensor* cd = code.has_value() ? &*code : nullptr;
  Pass p{};
  p.s = checked_pooled(pooled, cd, products, r0, H, W, m, "output_transform_max_pool");
  p.tp_in = products.data_ptr<float>();
  p.pp = pooled.data_ptr<float>();
  p.cp = cd ? cd->data_ptr<uint8_t>() : nullptr;
  p.r0 = r0;
  const PassFn run = version(pooled_output, m);
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

// pooled gradient g (N, H / 2, W / 2, K) and codes -> w = A dy A^T of the m x m tiles of the output's
// gradient dy (N, H, W, K): g routed to each window's code, 0 elsewhere (and on the last row and
// column when H or W is odd), which is never written
void grad_output_transform_unpool(const at::Tensor& g, const at::Tensor& code, at::Tensor& w, int64_t r0, int64_t H,
                                  int64_t W, int64_t m) {
  Pass p{};
  p.s = checked_pooled(g, &code, w, r0, H, W, m, "grad_output_transform_unpool");
  const std::vector<float> zeros(p.s.C, 0.f);
  const std::vector<uint8_t> none(p.s.C, NO_GRADIENT);
  p.pp_in = g.data_ptr<float>();
  p.cp_in = code.data_ptr<uint8_t>();
  p.tp = w.data_ptr<float>();
  p.r0 = r0;
  p.zeros = zeros.data();
  p.none = none.data();
  const PassFn run = version(grad_output_tiles_unpooled, m);
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using py::arg;
  m.def("input_transform", &input_transform, "map (N, H, W, C) -> tiles B^T d B of tile rows r0 ..", arg("x"),
        arg("v"), arg("r0"), arg("m") = 4);
  m.def("output_transform", &output_transform, "products -> their outputs A^T m A, written to the map",
        arg("products"), arg("out"), arg("r0"), arg("m") = 4);
  m.def("grad_output_transform", &grad_output_transform, "output gradient -> tiles A dy A^T", arg("dy"), arg("w"),
        arg("r0"), arg("m") = 4);
  m.def("grad_input_transform", &grad_input_transform, "products -> B z B^T, added to the map's gradient", arg("z"),
        arg("dx"), arg("r0"), arg("m") = 4);
  m.def("output_transform_max_pool", &output_transform_max_pool, "products -> relu(max_pool2d(A^T m A)) and codes",
        arg("products"), arg("pooled"), arg("code"), arg("r0"), arg("H"), arg("W"), arg("m") = 4);
  m.def("grad_output_transform_unpool", &grad_output_transform_unpool,
        "pooled gradient and codes -> tiles A dy A^T of the output's gradient", arg("g"), arg("code"), arg("w"),
        arg("r0"), arg("H"), arg("W"), arg("m") = 4);
  m.def("simd_level", &simd::simd_level, "the instruction set the kernels run: 0 the x86-64 baseline, 1 x86-64-v3");
  m.def("set_simd_level", &simd::set_simd_level, "run the kernels of a lower instruction set (tests)");
}
