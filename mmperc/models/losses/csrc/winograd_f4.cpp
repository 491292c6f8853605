// Winograd F(4x4, 3x3) tile transforms for mmperc's loss network (CPU, float32), bound as
// mmperc.models.losses._winograd_f4 and driven by winograd_f4.py, which runs the matrix products
// between them (torch.bmm). Tensors are channels-innermost: a map (N, H, W, C), tiles
// (36, N, R, TW, C) for the tile rows r0 .. r0 + R of the map, which is padded by one pixel
// (reads outside it are zero). Each transform is one pass over a block's tiles, L channels at
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

// The sizes of a map (N, H, W, C) and of its tiles (36, N, R, TW, C), and the stride between
// the tiles' 36 positions, once the two are checked to fit
struct Sizes {
  int64_t N, H, W, C, R, TW, stride;
};

Sizes checked_sizes(const at::Tensor& map, const at::Tensor& tiles, int64_t r0, const char* name) {
  TORCH_CHECK(map.dim() == 4 && tiles.dim() == 5 && tiles.size(0) == 36, name, ": expected a (N, H, W, C) map "
              "and (36, N, R, TW, C) tiles");
  TORCH_CHECK(map.scalar_type() == at::kFloat && tiles.scalar_type() == at::kFloat, name, ": float32 only");
  TORCH_CHECK(map.is_contiguous() && tiles.is_contiguous(), name, ": contiguous tensors only");
  TORCH_CHECK(map.size(0) == tiles.size(1) && map.size(3) == tiles.size(4), name, ": batch or channels differ");
  TORCH_CHECK(tiles.size(3) == (map.size(2) + 3) / 4 && r0 >= 0 && r0 + tiles.size(2) <= (map.size(1) + 3) / 4,
              name, ": the tiles do not fit the map");
  const int64_t N = map.size(0), H = map.size(1), W = map.size(2), C = map.size(3);
  const int64_t R = tiles.size(2), TW = tiles.size(3);
  return {N, H, W, C, R, TW, N * R * TW * C};
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

// What a pass over tiles reads and writes: a map (N, H, W, C) at mp, tiles (36, N, R, TW, C) at
// tp (their positions stride apart) from tile row r0 on, each tile's pixels from (4 * row - offset,
// 4 * column - offset); for tiles_to_map with ADD, the tile rows first, first + step, ... (rows of
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

// map -> tiles, tiles begin .. end: each tile's S x S pixels, zero outside the map, transformed by
// tf into 36 values per channel
template <int S, Transform tf>
MMPERC_INLINE void map_to_tiles_range(const Pass& p, int64_t begin, int64_t end) {
  const auto [N, H, W, C, R, TW, stride] = p.s;
  float d[S * S][L], o[36][L];
  const float* src[S * S];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    for (int i = 0; i < S; ++i) {
      const int64_t y = 4 * (p.r0 + r) + i - p.offset;
      for (int j = 0; j < S; ++j) {
        const int64_t x = 4 * t + j - p.offset;
        src[i * S + j] = (y >= 0 && y < H && x >= 0 && x < W) ? p.mp_in + ((n * H + y) * W + x) * C : p.zeros;
      }
    }
    float* dst = p.tp + tile * C;
    for (int64_t c0 = 0; c0 < C; c0 += L) {
      const int l = (int)lanes(c0, C);
      for (int k = 0; k < S * S; ++k) load(src[k], c0, l, d[k]);
      tf(d, o);
      for (int k = 0; k < 36; ++k) store(o[k], l, dst + k * stride + c0);
    }
  }
}

// tiles -> map, items begin .. end of (batch, tile row): tf gives each tile's S x S pixels, written
// (or with ADD, added) where they fall inside the map, the tiles of a row in turn (they overlap)
template <int S, Transform tf, bool ADD>
MMPERC_INLINE void tiles_to_map_range(const Pass& p, int64_t begin, int64_t end) {
  const auto [N, H, W, C, R, TW, stride] = p.s;
  float d[36][L], o[S * S][L];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = p.first + p.step * (item % p.rows), n = item / p.rows;
    for (int64_t t = 0; t < TW; ++t) {
      const float* src = p.tp_in + ((n * R + r) * TW + t) * C;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int l = (int)lanes(c0, C);
        for (int k = 0; k < 36; ++k) load(src + k * stride, c0, l, d[k]);
        tf(d, o);
        for (int i = 0; i < S; ++i) {
          const int64_t y = 4 * (p.r0 + r) + i - p.offset;
          if (y < 0 || y >= H) continue;
          for (int j = 0; j < S; ++j) {
            const int64_t x = 4 * t + j - p.offset;
            if (x < 0 || x >= W) continue;
            float* dst = p.mp + ((n * H + y) * W + x) * C + c0;
            if (ADD) add(o[i * S + j], l, dst); else store(o[i * S + j], l, dst);
          }
        }
      }
    }
  }
}

// tiles (products) -> pooled map, tiles begin .. end: each tile's 4x4 outputs A^T m A, and the ReLU
// and 2x2 max pooling of its four windows (inside the pooled map), with their codes when cp is set
MMPERC_INLINE void tiles_to_pooled_range(const Pass& p, int64_t begin, int64_t end) {
  const auto [N, H, W, K, R, TW, stride] = p.s;
  const int64_t Ho = H / 2, Wo = W / 2;
  float d[36][L], o[16][L], mx[L], k[L];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    const float* src = p.tp_in + tile * K;
    for (int64_t c0 = 0; c0 < K; c0 += L) {
      const int l = (int)lanes(c0, K);
      for (int q = 0; q < 36; ++q) load(src + q * stride, c0, l, d[q]);
      output_tf(d, o);
      for (int i = 0; i < 2; ++i) {
        const int64_t y = 2 * (p.r0 + r) + i;
        if (y >= Ho) continue;
        for (int j = 0; j < 2; ++j) {
          const int64_t x = 2 * t + j;
          if (x >= Wo) continue;
          const int w = 8 * i + 2 * j;  // the window's top left output in the tile
          window_max<L>(o[w], o[w + 1], o[w + 4], o[w + 5], mx, k);
          const int64_t at = ((n * Ho + y) * Wo + x) * K + c0;
          store_pooled<L>(mx, k, l, p.pp + at, p.cp ? p.cp + at : nullptr);
        }
      }
    }
  }
}

// pooled gradient and codes -> tiles, tiles begin .. end: A dy A^T of the output gradient dy's
// 4x4 tiles, dy made in the tile from its four windows (the pooled gradient at each code, 0 else)
MMPERC_INLINE void pooled_to_tiles_range(const Pass& p, int64_t begin, int64_t end) {
  const auto [N, H, W, K, R, TW, stride] = p.s;
  const int64_t Ho = H / 2, Wo = W / 2;
  float d[16][L], o[36][L];
  const float* gw[4];
  const uint8_t* cw[4];
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
    for (int i = 0; i < 2; ++i) {
      const int64_t y = 2 * (p.r0 + r) + i;
      for (int j = 0; j < 2; ++j) {
        const int64_t x = 2 * t + j;
        const bool inside = y < Ho && x < Wo;
        const int64_t at = ((n * Ho + y) * Wo + x) * K;
        gw[2 * i + j] = inside ? p.pp_in + at : p.zeros;
        cw[2 * i + j] = inside ? p.cp_in + at : p.none;
      }
    }
    float* dst = p.tp + tile * K;
    for (int64_t c0 = 0; c0 < K; c0 += L) {
      const int l = (int)lanes(c0, K);
      for (int q = 0; q < 4; ++q) {
        const int w = 8 * (q / 2) + 2 * (q % 2);
        if (l == L) {
          route<L>(gw[q] + c0, cw[q] + c0, d[w], d[w + 1], d[w + 4], d[w + 5]);
        } else {
          for (int e = 0; e < L; ++e) {
            const bool real = e < l;
            route<1>(real ? gw[q] + c0 + e : p.zeros, real ? cw[q] + c0 + e : p.none, d[w] + e, d[w + 1] + e,
                     d[w + 4] + e, d[w + 5] + e);
          }
        }
      }
      grad_output_tf(d, o);
      for (int q = 0; q < 36; ++q) store(o[q], l, dst + q * stride + c0);
    }
  }
}

// The passes, each built for two instruction sets (simd_levels.h)
MMPERC_LEVELS(input_tiles, Pass, (map_to_tiles_range<6, input_tf>(p, begin, end)))
MMPERC_LEVELS(grad_output_tiles, Pass, (map_to_tiles_range<4, grad_output_tf>(p, begin, end)))
MMPERC_LEVELS(output_map, Pass, (tiles_to_map_range<4, output_tf, false>(p, begin, end)))
MMPERC_LEVELS(grad_input_map, Pass, (tiles_to_map_range<6, grad_input_tf, true>(p, begin, end)))
MMPERC_LEVELS(pooled_output, Pass, tiles_to_pooled_range(p, begin, end))
MMPERC_LEVELS(grad_output_tiles_unpooled, Pass, pooled_to_tiles_range(p, begin, end))

using PassFn = void (*)(const Pass&, int64_t, int64_t);
using Range = const PassFn*;  // a pass's three versions

// map (N, H, W, C) -> tiles (36, N, R, TW, C), in parallel over tiles
void map_to_tiles(const at::Tensor& map, at::Tensor& tiles, int64_t r0, int64_t offset, const char* name, Range pass) {
  Pass p{};
  p.s = checked_sizes(map, tiles, r0, name);
  const std::vector<float> zeros(p.s.C, 0.f);
  p.mp_in = map.data_ptr<float>();
  p.tp = tiles.data_ptr<float>();
  p.r0 = r0;
  p.offset = offset;
  p.zeros = zeros.data();
  const PassFn run = pass[simd::simd_level()];
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

// tiles (36, N, R, TW, C) -> map (N, H, W, C), in parallel over rows of tiles (with ADD, rows of
// either parity in turn: tile rows two apart never overlap)
template <bool ADD>
void tiles_to_map(const at::Tensor& tiles, at::Tensor& map, int64_t r0, int64_t offset, const char* name, Range pass) {
  Pass p{};
  p.s = checked_sizes(map, tiles, r0, name);
  p.tp_in = tiles.data_ptr<float>();
  p.mp = map.data_ptr<float>();
  p.r0 = r0;
  p.offset = offset;
  p.step = ADD ? 2 : 1;
  const PassFn run = pass[simd::simd_level()];
  for (int parity = 0; parity < (ADD ? 2 : 1); ++parity) {
    p.first = ADD ? (r0 + parity) % 2 : 0;
    p.rows = p.first < p.s.R ? (p.s.R - p.first + p.step - 1) / p.step : 0;
    at::parallel_for(0, p.s.N * p.rows, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
  }
}

// The tiles (36, N, R, TW, K) of an H x W map, tile rows r0 .. r0 + R, and its 2x2 max pooling
// (N, H / 2, W / 2, K), contiguous, with its codes (uint8, the same shape) when given
Sizes checked_pooled(const at::Tensor& pooled, const at::Tensor* code, const at::Tensor& tiles, int64_t r0,
                     int64_t H, int64_t W, const char* name) {
  TORCH_CHECK(pooled.dim() == 4 && tiles.dim() == 5 && tiles.size(0) == 36, name, ": expected a (N, H / 2, W / 2, K) "
              "pooled map and (36, N, R, TW, K) tiles");
  TORCH_CHECK(pooled.scalar_type() == at::kFloat && tiles.scalar_type() == at::kFloat, name, ": float32 only");
  TORCH_CHECK(pooled.is_contiguous() && tiles.is_contiguous(), name, ": contiguous tensors only");
  TORCH_CHECK(pooled.size(0) == tiles.size(1) && pooled.size(3) == tiles.size(4), name, ": batch or channels differ");
  TORCH_CHECK(pooled.size(1) == H / 2 && pooled.size(2) == W / 2, name, ": the pooled map is not H x W pooled");
  TORCH_CHECK(tiles.size(3) == (W + 3) / 4 && r0 >= 0 && r0 + tiles.size(2) <= (H + 3) / 4, name,
              ": the tiles do not fit the map");
  if (code) {
    TORCH_CHECK(code->scalar_type() == at::kByte && code->is_contiguous() && code->sizes() == pooled.sizes(), name,
                ": the codes must be a contiguous uint8 tensor of the pooled map's shape");
  }
  const int64_t N = tiles.size(1), K = tiles.size(4), R = tiles.size(2), TW = tiles.size(3);
  return {N, H, W, K, R, TW, N * R * TW * K};
}

}  // namespace

// x (N, H, W, C) -> v = B^T d B of its 6x6 tiles (the map padded by 1), tile rows r0 .. r0 + R
void input_transform(const at::Tensor& x, at::Tensor& v, int64_t r0) {
  map_to_tiles(x, v, r0, 1, "input_transform", input_tiles);
}

// m (36, N, R, TW, K) -> out (N, H, W, K): the 4x4 outputs A^T m A of tile rows r0 .. r0 + R
void output_transform(const at::Tensor& m, at::Tensor& out, int64_t r0) {
  tiles_to_map<false>(m, out, r0, 0, "output_transform", output_map);
}

// dy (N, H, W, K) -> w = A dy A^T of its 4x4 tiles (36, N, R, TW, K)
void grad_output_transform(const at::Tensor& dy, at::Tensor& w, int64_t r0) {
  map_to_tiles(dy, w, r0, 0, "grad_output_transform", grad_output_tiles);
}

// z (36, N, R, TW, C) -> dx (N, H, W, C) += B z B^T, the tiles' input gradients (overlapping by 2)
void grad_input_transform(const at::Tensor& z, at::Tensor& dx, int64_t r0) {
  tiles_to_map<true>(z, dx, r0, 1, "grad_input_transform", grad_input_map);
}

// m (36, N, R, TW, K) -> relu(max_pool2d(out, 2, 2)) (N, H / 2, W / 2, K) of the 4x4 outputs
// A^T m A of tile rows r0 .. r0 + R, and with code each pooled output's code: a tile holds its
// four pooling windows whole, so the outputs themselves are never written
void output_transform_max_pool(const at::Tensor& m, at::Tensor& pooled, c10::optional<at::Tensor> code, int64_t r0,
                               int64_t H, int64_t W) {
  const at::Tensor* cd = code.has_value() ? &*code : nullptr;
  Pass p{};
  p.s = checked_pooled(pooled, cd, m, r0, H, W, "output_transform_max_pool");
  p.tp_in = m.data_ptr<float>();
  p.pp = pooled.data_ptr<float>();
  p.cp = cd ? cd->data_ptr<uint8_t>() : nullptr;
  p.r0 = r0;
  const PassFn run = pooled_output[simd::simd_level()];
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

// pooled gradient g (N, H / 2, W / 2, K) and codes -> w = A dy A^T of the 4x4 tiles (36, N, R, TW, K)
// of the output's gradient dy (N, H, W, K): g routed to each window's code, 0 elsewhere (and on
// the last row and column when H or W is odd), which is never written
void grad_output_transform_unpool(const at::Tensor& g, const at::Tensor& code, at::Tensor& w, int64_t r0, int64_t H,
                                  int64_t W) {
  Pass p{};
  p.s = checked_pooled(g, &code, w, r0, H, W, "grad_output_transform_unpool");
  const std::vector<float> zeros(p.s.C, 0.f);
  const std::vector<uint8_t> none(p.s.C, NO_GRADIENT);
  p.pp_in = g.data_ptr<float>();
  p.cp_in = code.data_ptr<uint8_t>();
  p.tp = w.data_ptr<float>();
  p.r0 = r0;
  p.zeros = zeros.data();
  p.none = none.data();
  const PassFn run = grad_output_tiles_unpooled[simd::simd_level()];
  at::parallel_for(0, p.s.N * p.s.R * p.s.TW, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("input_transform", &input_transform, "map (N, H, W, C) -> tiles B^T d B of tile rows r0 ..");
  m.def("output_transform", &output_transform, "products -> their 4x4 outputs A^T m A, written to the map");
  m.def("grad_output_transform", &grad_output_transform, "output gradient -> tiles A dy A^T");
  m.def("grad_input_transform", &grad_input_transform, "products -> B z B^T, added to the map's gradient");
  m.def("output_transform_max_pool", &output_transform_max_pool, "products -> relu(max_pool2d(A^T m A)) and codes",
        py::arg("m"), py::arg("pooled"), py::arg("code"), py::arg("r0"), py::arg("H"), py::arg("W"));
  m.def("grad_output_transform_unpool", &grad_output_transform_unpool,
        "pooled gradient and codes -> tiles A dy A^T of the output's gradient");
  m.def("simd_level", &simd::simd_level, "the instruction set the kernels run: 0 the x86-64 baseline, 1 x86-64-v3");
  m.def("set_simd_level", &simd::set_simd_level, "run the kernels of a lower instruction set (tests)");
}
