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
#include "winograd_f4_tiles.h"

namespace {

void check(const at::Tensor& map, const at::Tensor& tiles, int64_t r0, const char* name) {
  TORCH_CHECK(map.dim() == 4 && tiles.dim() == 5 && tiles.size(0) == 36, name, ": expected a (N, H, W, C) map "
              "and (36, N, R, TW, C) tiles");
  TORCH_CHECK(map.scalar_type() == at::kFloat && tiles.scalar_type() == at::kFloat, name, ": float32 only");
  TORCH_CHECK(map.is_contiguous() && tiles.is_contiguous(), name, ": contiguous tensors only");
  TORCH_CHECK(map.size(0) == tiles.size(1) && map.size(3) == tiles.size(4), name, ": batch or channels differ");
  TORCH_CHECK(tiles.size(3) == (map.size(2) + 3) / 4 && r0 >= 0 && r0 + tiles.size(2) <= (map.size(1) + 3) / 4,
              name, ": the tiles do not fit the map");
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

}  // namespace

// x (N, H, W, C) -> v (36, N, R, TW, C): tile rows r0 .. r0 + R of the input padded by 1
void input_transform(const at::Tensor& x, at::Tensor& v, int64_t r0) {
  check(x, v, r0, "input_transform");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t R = v.size(2), TW = v.size(3), S = N * R * TW * C;
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  std::vector<float> zeros(C, 0.f);
  const float* zp = zeros.data();
  at::parallel_for(0, N * R * TW, 1, [&](int64_t b, int64_t e) {
    float d[36][L], o[36][L];
    const float* src[36];
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      for (int i = 0; i < 6; ++i) {
        const int64_t y = 4 * (r0 + r) + i - 1;
        for (int j = 0; j < 6; ++j) {
          const int64_t xx = 4 * t + j - 1;
          src[i * 6 + j] = (y >= 0 && y < H && xx >= 0 && xx < W) ? xp + ((n * H + y) * W + xx) * C : zp;
        }
      }
      float* dst = vp + tile * C;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int l = (int)std::min<int64_t>(L, C - c0);
        for (int k = 0; k < 36; ++k) load(src[k], c0, l, d[k]);
        input_tf(d, o);
        for (int k = 0; k < 36; ++k) store(o[k], l, dst + k * S + c0);
      }
    }
  });
}

// m (36, N, R, TW, K) -> out (N, H, W, K), tile rows r0 .. r0 + R
void output_transform(const at::Tensor& m, at::Tensor& out, int64_t r0) {
  check(out, m, r0, "output_transform");
  const int64_t N = out.size(0), H = out.size(1), W = out.size(2), K = out.size(3);
  const int64_t R = m.size(2), TW = m.size(3), S = N * R * TW * K;
  const float* mp = m.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, N * R * TW, 1, [&](int64_t b, int64_t e) {
    float d[36][L], o[16][L];
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      const float* src = mp + tile * K;
      for (int64_t c0 = 0; c0 < K; c0 += L) {
        const int l = (int)std::min<int64_t>(L, K - c0);
        for (int k = 0; k < 36; ++k) load(src + k * S, c0, l, d[k]);
        output_tf(d, o);
        for (int i = 0; i < 4; ++i) {
          const int64_t y = 4 * (r0 + r) + i;
          if (y >= H) break;
          for (int j = 0; j < 4; ++j) {
            const int64_t xx = 4 * t + j;
            if (xx >= W) break;
            float* dst = op + ((n * H + y) * W + xx) * K + c0;
            store(o[i * 4 + j], l, dst);
          }
        }
      }
    }
  });
}

// dy (N, H, W, K) -> w (36, N, R, TW, K)
void grad_output_transform(const at::Tensor& dy, at::Tensor& w, int64_t r0) {
  check(dy, w, r0, "grad_output_transform");
  const int64_t N = dy.size(0), H = dy.size(1), W = dy.size(2), K = dy.size(3);
  const int64_t R = w.size(2), TW = w.size(3), S = N * R * TW * K;
  const float* gp = dy.data_ptr<float>();
  float* wp = w.data_ptr<float>();
  std::vector<float> zeros(K, 0.f);
  const float* zp = zeros.data();
  at::parallel_for(0, N * R * TW, 1, [&](int64_t b, int64_t e) {
    float d[16][L], o[36][L];
    const float* src[16];
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t t = tile % TW, r = (tile / TW) % R, n = tile / (TW * R);
      for (int i = 0; i < 4; ++i) {
        const int64_t y = 4 * (r0 + r) + i;
        for (int j = 0; j < 4; ++j) {
          const int64_t xx = 4 * t + j;
          src[i * 4 + j] = (y < H && xx < W) ? gp + ((n * H + y) * W + xx) * K : zp;
        }
      }
      float* dst = wp + tile * K;
      for (int64_t c0 = 0; c0 < K; c0 += L) {
        const int l = (int)std::min<int64_t>(L, K - c0);
        for (int k = 0; k < 16; ++k) load(src[k], c0, l, d[k]);
        grad_output_tf(d, o);
        for (int k = 0; k < 36; ++k) store(o[k], l, dst + k * S + c0);
      }
    }
  });
}

// z (36, N, R, TW, C) -> dx (N, H, W, C) += the tiles' input gradients (overlapping by 2)
void grad_input_transform(const at::Tensor& z, at::Tensor& dx, int64_t r0) {
  check(dx, z, r0, "grad_input_transform");
  const int64_t N = dx.size(0), H = dx.size(1), W = dx.size(2), C = dx.size(3);
  const int64_t R = z.size(2), TW = z.size(3), S = N * R * TW * C;
  const float* zp = z.data_ptr<float>();
  float* xp = dx.data_ptr<float>();
  for (int parity = 0; parity < 2; ++parity) {  // tile rows two apart never overlap
    const int64_t first = ((r0 + parity) % 2 == 0) ? 0 : 1;  // local r with (r0 + r) % 2 == parity
    const int64_t rows = first < R ? (R - first + 1) / 2 : 0;
    at::parallel_for(0, N * rows, 1, [&](int64_t b, int64_t e) {
      float d[36][L], o[36][L];
      for (int64_t item = b; item < e; ++item) {
        const int64_t r = first + 2 * (item % rows), n = item / rows;
        for (int64_t t = 0; t < TW; ++t) {
          const float* src = zp + ((n * R + r) * TW + t) * C;
          for (int64_t c0 = 0; c0 < C; c0 += L) {
            const int l = (int)std::min<int64_t>(L, C - c0);
            for (int k = 0; k < 36; ++k) load(src + k * S, c0, l, d[k]);
            grad_input_tf(d, o);
            for (int i = 0; i < 6; ++i) {
              const int64_t y = 4 * (r0 + r) + i - 1;
              if (y < 0 || y >= H) continue;
              for (int j = 0; j < 6; ++j) {
                const int64_t xx = 4 * t + j - 1;
                if (xx < 0 || xx >= W) continue;
                float* dst = xp + ((n * H + y) * W + xx) * C + c0;
                add(o[i * 6 + j], l, dst);
              }
            }
          }
        }
      }
    });
  }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("input_transform", &input_transform, "map (N, H, W, C) -> tiles B^T d B of tile rows r0 ..");
  m.def("output_transform", &output_transform, "products -> their 4x4 outputs A^T m A, written to the map");
  m.def("grad_output_transform", &grad_output_transform, "output gradient -> tiles A dy A^T");
  m.def("grad_input_transform", &grad_input_transform, "products -> B z B^T, added to the map's gradient");
}
