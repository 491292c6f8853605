// Winograd F(4x4, 3x3) tile transforms for mmperc's loss network (CPU, float32), bound as
// mmperc.models.losses._winograd_f4 and driven by winograd_f4.py, which runs the matrix products
// between them (torch.bmm). Tensors are channels-innermost: a map (N, H, W, C), tiles
// (36, N, R, TW, C) for the tile rows r0 .. r0 + R of the map, which is padded by one pixel
// (reads outside it are zero). Each transform is one pass over a block's tiles, L channels at
// a time, parallel over tiles.
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

inline void load(const float* __restrict src, int c0, int l, float* __restrict d) {
  if (l == L) { for (int c = 0; c < L; ++c) d[c] = src[c0 + c]; }
  else { for (int c = 0; c < L; ++c) d[c] = c < l ? src[c0 + c] : 0.f; }
}

inline void store(const float* __restrict o, int l, float* __restrict dst) {
  if (l == L) { for (int c = 0; c < L; ++c) dst[c] = o[c]; }
  else { for (int c = 0; c < l; ++c) dst[c] = o[c]; }
}

inline void add(const float* __restrict o, int l, float* __restrict dst) {
  if (l == L) { for (int c = 0; c < L; ++c) dst[c] += o[c]; }
  else { for (int c = 0; c < l; ++c) dst[c] += o[c]; }
}

using Transform = void (*)(const float (*)[L], float (*)[L]);

// map (N, H, W, C) -> tiles (36, N, R, TW, C): each tile's S x S pixels from (4 * row - offset,
// 4 * column - offset), zero outside the map, transformed by tf into 36 values per channel
template <int S, Transform tf>
void map_to_tiles(const at::Tensor& map, at::Tensor& tiles, int64_t r0, int64_t offset, const char* name) {
  const auto [N, H, W, C, R, TW, stride] = checked_sizes(map, tiles, r0, name);
  const float* mp = map.data_ptr<float>();
  float* tp = tiles.data_ptr<float>();
  const std::vector<float> zeros(C, 0.f);
  at::parallel_for(0, N * R * TW, 1, [&](int64_t begin, int64_t end) {
    float d[S * S][L], o[36][L];
    const float* src[S * S];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      for (int i = 0; i < S; ++i) {
        const int64_t y = 4 * (r0 + r) + i - offset;
        for (int j = 0; j < S; ++j) {
          const int64_t x = 4 * t + j - offset;
          src[i * S + j] = (y >= 0 && y < H && x >= 0 && x < W) ? mp + ((n * H + y) * W + x) * C : zeros.data();
        }
      }
      float* dst = tp + tile * C;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int l = (int)std::min<int64_t>(L, C - c0);
        for (int k = 0; k < S * S; ++k) load(src[k], c0, l, d[k]);
        tf(d, o);
        for (int k = 0; k < 36; ++k) store(o[k], l, dst + k * stride + c0);
      }
    }
  });
}

// tiles (36, N, R, TW, C) -> map (N, H, W, C): tf gives each tile's S x S pixels from (4 * row -
// offset, 4 * column - offset), written (or with ADD, added: tiles overlap, so tile rows of
// either parity run in turn) where they fall inside the map
template <int S, Transform tf, bool ADD>
void tiles_to_map(const at::Tensor& tiles, at::Tensor& map, int64_t r0, int64_t offset, const char* name) {
  const auto [N, H, W, C, R, TW, stride] = checked_sizes(map, tiles, r0, name);
  const float* tp = tiles.data_ptr<float>();
  float* mp = map.data_ptr<float>();
  for (int parity = 0; parity < (ADD ? 2 : 1); ++parity) {  // tile rows two apart never overlap
    const int64_t first = ADD ? (r0 + parity) % 2 : 0, step = ADD ? 2 : 1;
    const int64_t rows = first < R ? (R - first + step - 1) / step : 0;
    at::parallel_for(0, N * rows, 1, [&](int64_t begin, int64_t end) {
      float d[36][L], o[S * S][L];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t r = first + step * (item % rows), n = item / rows;
        for (int64_t t = 0; t < TW; ++t) {  // in turn: neighbouring tiles of a row overlap too
          const float* src = tp + ((n * R + r) * TW + t) * C;
          for (int64_t c0 = 0; c0 < C; c0 += L) {
            const int l = (int)std::min<int64_t>(L, C - c0);
            for (int k = 0; k < 36; ++k) load(src + k * stride, c0, l, d[k]);
            tf(d, o);
            for (int i = 0; i < S; ++i) {
              const int64_t y = 4 * (r0 + r) + i - offset;
              if (y < 0 || y >= H) continue;
              for (int j = 0; j < S; ++j) {
                const int64_t x = 4 * t + j - offset;
                if (x < 0 || x >= W) continue;
                float* dst = mp + ((n * H + y) * W + x) * C + c0;
                if (ADD) add(o[i * S + j], l, dst); else store(o[i * S + j], l, dst);
              }
            }
          }
        }
      }
    });
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
  map_to_tiles<6, input_tf>(x, v, r0, 1, "input_transform");
}

// m (36, N, R, TW, K) -> out (N, H, W, K): the 4x4 outputs A^T m A of tile rows r0 .. r0 + R
void output_transform(const at::Tensor& m, at::Tensor& out, int64_t r0) {
  tiles_to_map<4, output_tf, false>(m, out, r0, 0, "output_transform");
}

// dy (N, H, W, K) -> w = A dy A^T of its 4x4 tiles (36, N, R, TW, K)
void grad_output_transform(const at::Tensor& dy, at::Tensor& w, int64_t r0) {
  map_to_tiles<4, grad_output_tf>(dy, w, r0, 0, "grad_output_transform");
}

// z (36, N, R, TW, C) -> dx (N, H, W, C) += B z B^T, the tiles' input gradients (overlapping by 2)
void grad_input_transform(const at::Tensor& z, at::Tensor& dx, int64_t r0) {
  tiles_to_map<6, grad_input_tf, true>(z, dx, r0, 1, "grad_input_transform");
}

// m (36, N, R, TW, K) -> relu(max_pool2d(out, 2, 2)) (N, H / 2, W / 2, K) of the 4x4 outputs
// A^T m A of tile rows r0 .. r0 + R, and with code each pooled output's code: a tile holds its
// four pooling windows whole, so the outputs themselves are never written
void output_transform_max_pool(const at::Tensor& m, at::Tensor& pooled, c10::optional<at::Tensor> code, int64_t r0,
                               int64_t H, int64_t W) {
  const at::Tensor* cd = code.has_value() ? &*code : nullptr;
  const auto [N, h, w, K, R, TW, stride] = checked_pooled(pooled, cd, m, r0, H, W, "output_transform_max_pool");
  const int64_t Ho = h / 2, Wo = w / 2;
  const float* tp = m.data_ptr<float>();
  float* pp = pooled.data_ptr<float>();
  uint8_t* cp = cd ? cd->data_ptr<uint8_t>() : nullptr;
  at::parallel_for(0, N * R * TW, 1, [&](int64_t begin, int64_t end) {
    float d[36][L], o[16][L], mx[L], k[L];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      const float* src = tp + tile * K;
      for (int64_t c0 = 0; c0 < K; c0 += L) {
        const int l = (int)std::min<int64_t>(L, K - c0);
        for (int q = 0; q < 36; ++q) load(src + q * stride, c0, l, d[q]);
        output_tf(d, o);
        for (int i = 0; i < 2; ++i) {
          const int64_t y = 2 * (r0 + r) + i;
          if (y >= Ho) continue;
          for (int j = 0; j < 2; ++j) {
            const int64_t x = 2 * t + j;
            if (x >= Wo) continue;
            const int p = 8 * i + 2 * j;  // the window's top left output in the tile
            window_max<L>(o[p], o[p + 1], o[p + 4], o[p + 5], mx, k);
            const int64_t at = ((n * Ho + y) * Wo + x) * K + c0;
            store_pooled<L>(mx, k, l, pp + at, cp ? cp + at : nullptr);
          }
        }
      }
    }
  });
}

// pooled gradient g (N, H / 2, W / 2, K) and codes -> w = A dy A^T of the 4x4 tiles (36, N, R, TW, K)
// of the output's gradient dy (N, H, W, K): g routed to each window's code, 0 elsewhere (and on
// the last row and column when H or W is odd), which is never written
void grad_output_transform_unpool(const at::Tensor& g, const at::Tensor& code, at::Tensor& w, int64_t r0, int64_t H,
                                  int64_t W) {
  const auto [N, h, wd, K, R, TW, stride] = checked_pooled(g, &code, w, r0, H, W, "grad_output_transform_unpool");
  const int64_t Ho = h / 2, Wo = wd / 2;
  const float* gp = g.data_ptr<float>();
  const uint8_t* cp = code.data_ptr<uint8_t>();
  float* tp = w.data_ptr<float>();
  const std::vector<float> zeros(K, 0.f);
  const std::vector<uint8_t> none(K, NO_GRADIENT);
  at::parallel_for(0, N * R * TW, 1, [&](int64_t begin, int64_t end) {
    float d[16][L], o[36][L];
    const float* gw[4];
    const uint8_t* cw[4];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      for (int i = 0; i < 2; ++i) {
        const int64_t y = 2 * (r0 + r) + i;
        for (int j = 0; j < 2; ++j) {
          const int64_t x = 2 * t + j;
          const bool inside = y < Ho && x < Wo;
          const int64_t at = ((n * Ho + y) * Wo + x) * K;
          gw[2 * i + j] = inside ? gp + at : zeros.data();
          cw[2 * i + j] = inside ? cp + at : none.data();
        }
      }
      float* dst = tp + tile * K;
      for (int64_t c0 = 0; c0 < K; c0 += L) {
        const int l = (int)std::min<int64_t>(L, K - c0);
        for (int q = 0; q < 4; ++q) {
          const int p = 8 * (q / 2) + 2 * (q % 2);
          if (l == L) {
            route<L>(gw[q] + c0, cw[q] + c0, d[p], d[p + 1], d[p + 4], d[p + 5]);
          } else {
            for (int e = 0; e < L; ++e) {
              const bool real = e < l;
              route<1>(real ? gw[q] + c0 + e : zeros.data(), real ? cw[q] + c0 + e : none.data(), d[p] + e,
                       d[p + 1] + e, d[p + 4] + e, d[p + 5] + e);
            }
          }
        }
        grad_output_tf(d, o);
        for (int q = 0; q < 36; ++q) store(o[q], l, dst + q * stride + c0);
      }
    }
  });
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
}
