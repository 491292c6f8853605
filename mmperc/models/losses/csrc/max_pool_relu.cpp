// ReLU after a 2x2 max pooling (stride 2) for mmperc's loss network (CPU, float32), and its
// gradient, bound as mmperc.models.losses._max_pool_relu and driven by max_pool_relu.py. Maps are
// (N, C, H, W) tensors whose channels are innermost and whose pixels are dense along a row
// (channels-last, or a band of rows of a channels-last map); the batch and row strides are free.
// The forward records per output one byte, its code: the window's argmax (0..3, row-major) where
// the output is positive, else 4. That is all the gradient needs: PyTorch's pooling keeps an
// int64 argmax and the ReLU a bool mask, 9 bytes, and its backward zero-fills the input gradient
// before writing the winners; here every element is written once. Each pass is parallel over
// rows of windows, L channels at a time (fixed-length loops, which the compiler vectorises), and
// built for AVX2 (x86-64-v3) and the baseline: the CPU's runs (simd_levels.h).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>

#include "max_pool_window.h"

namespace {

constexpr int L = 16;

void check_map(const at::Tensor& t, at::ScalarType type, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.scalar_type() == type, name, ": expected a 4-D ", c10::toString(type), " tensor");
  TORCH_CHECK(t.stride(1) == 1 && t.stride(3) == t.size(1), name,
              ": expected channels-last rows (channels innermost, pixels dense along a row)");
}

// A pass over rows of windows: the full-resolution map (N, C, H, W) at xp / dx with its batch and
// row strides, the pooled one (N, C, H / 2, W / 2) at op / gp, the codes at cp / cd
struct Pass {
  int64_t C, H, W, Ho, Wo;
  const float* xp;
  float* dx;
  int64_t xsn, xsh;
  float* op;
  const float* gp;
  int64_t osn, osh;
  uint8_t* cp;
  const uint8_t* cd;
  int64_t csn, csh;
};

// The rows of windows begin .. end (of N * Ho) pooled
MMPERC_INLINE void pool_rows_range(const Pass& p, int64_t begin, int64_t end) {
  const int64_t C = p.C;
  float m[L], k[L];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t n = item / p.Ho, i = item % p.Ho;
    const float* top = p.xp + n * p.xsn + 2 * i * p.xsh;
    float* o = p.op + n * p.osn + i * p.osh;
    uint8_t* cd = p.cp ? p.cp + n * p.csn + i * p.csh : nullptr;
    for (int64_t j = 0; j < p.Wo; ++j) {
      const float* a = top + 2 * j * C;
      const float* c = a + p.xsh;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int l = (int)(C - c0 < L ? C - c0 : L);
        if (l == L) {
          window_max<L>(a + c0, a + C + c0, c + c0, c + C + c0, m, k);
        } else {
          for (int e = 0; e < l; ++e) {
            window_max<1>(a + c0 + e, a + C + c0 + e, c + c0 + e, c + C + c0 + e, m + e, k + e);
          }
        }
        store_pooled<L>(m, k, l, o + j * C + c0, cd ? cd + j * C + c0 : nullptr);
      }
    }
  }
}

// The rows begin .. end (of N * ceil(H / 2)) pairs of full-resolution rows written from the pooled
// gradient and codes
MMPERC_INLINE void unpool_rows_range(const Pass& p, int64_t begin, int64_t end) {
  const int64_t C = p.C, pairs = (p.H + 1) / 2;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t n = item / pairs, i = item % pairs;
    float* top = p.dx + n * p.xsn + 2 * i * p.xsh;
    if (i == p.Ho) {  // the odd last row
      for (int64_t e = 0; e < p.W * C; ++e) top[e] = 0.f;
      continue;
    }
    float* bottom = top + p.xsh;
    const float* g = p.gp + n * p.osn + i * p.osh;
    const uint8_t* cd = p.cd + n * p.csn + i * p.csh;
    for (int64_t j = 0; j < p.Wo; ++j) {
      float* a = top + 2 * j * C;
      float* c = bottom + 2 * j * C;
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int64_t at = j * C + c0;
        if (C - c0 >= L) {
          route<L>(g + at, cd + at, a + c0, a + C + c0, c + c0, c + C + c0);
        } else {
          for (int64_t e = c0; e < C; ++e) route<1>(g + j * C + e, cd + j * C + e, a + e, a + C + e, c + e, c + C + e);
        }
      }
    }
    if (p.W % 2) {  // the odd last column
      for (int64_t e = (p.W - 1) * C; e < p.W * C; ++e) top[e] = bottom[e] = 0.f;
    }
  }
}

// A pass's sizes and strides, from the full-resolution map, the pooled one and the codes
Pass shaped(const at::Tensor& full, const at::Tensor& pooled, const at::Tensor* code) {
  Pass p{};
  p.C = full.size(1);
  p.H = full.size(2);
  p.W = full.size(3);
  p.Ho = pooled.size(2);
  p.Wo = pooled.size(3);
  p.xsn = full.stride(0);
  p.xsh = full.stride(2);
  p.osn = pooled.stride(0);
  p.osh = pooled.stride(2);
  p.csn = code ? code->stride(0) : 0;
  p.csh = code ? code->stride(2) : 0;
  return p;
}

// Both, built for two instruction sets (simd_levels.h)
MMPERC_LEVELS(pool_rows, Pass, pool_rows_range(p, begin, end))
MMPERC_LEVELS(unpool_rows, Pass, unpool_rows_range(p, begin, end))

}  // namespace

// out = relu(max_pool2d(x, 2, 2)) (NaN stays NaN); with code, each output's code
void max_pool_relu(const at::Tensor& x, at::Tensor& out, c10::optional<at::Tensor> code) {
  check_map(x, at::kFloat, "max_pool_relu: x");
  check_map(out, at::kFloat, "max_pool_relu: out");
  const int64_t N = x.size(0), C = x.size(1), Ho = out.size(2), Wo = out.size(3);
  TORCH_CHECK(out.size(0) == N && out.size(1) == C && Ho == x.size(2) / 2 && Wo == x.size(3) / 2,
              "max_pool_relu: out ", out.sizes(), " is not x ", x.sizes(), " pooled");
  const at::Tensor* cd = code.has_value() ? &*code : nullptr;
  if (cd) {
    check_map(*cd, at::kByte, "max_pool_relu: code");
    TORCH_CHECK(cd->sizes() == out.sizes(), "max_pool_relu: code and out differ in shape");
  }
  Pass p = shaped(x, out, cd);
  p.cp = cd ? cd->data_ptr<uint8_t>() : nullptr;
  p.xp = x.data_ptr<float>();
  p.op = out.data_ptr<float>();
  const auto run = pool_rows[simd::simd_level()];
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

// The gradient w.r.t. x (out, N x C x H x W) of max_pool_relu from the output's grad and codes:
// every element of out is written, the last row and column that no window covers (odd H, W) 0
void max_pool_relu_backward(const at::Tensor& grad, const at::Tensor& code, at::Tensor& out) {
  check_map(grad, at::kFloat, "max_pool_relu_backward: grad");
  check_map(code, at::kByte, "max_pool_relu_backward: code");
  check_map(out, at::kFloat, "max_pool_relu_backward: out");
  const int64_t N = out.size(0), C = out.size(1), H = out.size(2), W = out.size(3), Ho = H / 2, Wo = W / 2;
  TORCH_CHECK(grad.sizes() == code.sizes() && grad.size(0) == N && grad.size(1) == C && grad.size(2) == Ho &&
              grad.size(3) == Wo, "max_pool_relu_backward: grad ", grad.sizes(), " and code ", code.sizes(),
              " are not out ", out.sizes(), " pooled");
  Pass p = shaped(out, grad, &code);
  p.dx = out.data_ptr<float>();
  p.gp = grad.data_ptr<float>();
  p.cd = code.data_ptr<uint8_t>();
  const auto run = unpool_rows[simd::simd_level()];
  at::parallel_for(0, N * ((H + 1) / 2), 1, [&](int64_t begin, int64_t end) { run(p, begin, end); });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("max_pool_relu", &max_pool_relu, "out = relu(max_pool2d(x, 2, 2)), with each output's code",
        py::arg("x"), py::arg("out"), py::arg("code") = py::none());
  m.def("max_pool_relu_backward", &max_pool_relu_backward, "the input gradient from the output's grad and codes");
  m.def("simd_level", &simd::simd_level, "the instruction set the kernels run: 0 the x86-64 baseline, 1 x86-64-v3");
  m.def("set_simd_level", &simd::set_simd_level, "run the kernels of a lower instruction set (tests)");
}
