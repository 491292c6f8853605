// ReLU after a 2x2 max pooling (stride 2) for mmperc's loss network (CPU, float32), and its
// gradient, bound as mmperc.models.losses._max_pool_relu and driven by max_pool_relu.py. Maps are
// (N, C, H, W) tensors whose channels are innermost and whose pixels are dense along a row
// (channels-last, or a band of rows of a channels-last map); the batch and row strides are free.
// The forward records per output one byte, its code: the window's argmax (0..3, row-major) where
// the output is positive, else 4. That is all the gradient needs: PyTorch's pooling keeps an
// int64 argmax and the ReLU a bool mask, 9 bytes, and its backward zero-fills the input gradient
// before writing the winners; here every element is written once. Each pass is parallel over
// rows of windows, L channels at a time (fixed-length loops, which the compiler vectorises).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "max_pool_window.h"

namespace {

constexpr int L = 16;

void check_map(const at::Tensor& t, at::ScalarType type, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.scalar_type() == type, name, ": expected a 4-D ", c10::toString(type), " tensor");
  TORCH_CHECK(t.stride(1) == 1 && t.stride(3) == t.size(1), name,
              ": expected channels-last rows (channels innermost, pixels dense along a row)");
}

}  // namespace

// out = relu(max_pool2d(x, 2, 2)) (NaN stays NaN); with code, each output's code
void max_pool_relu(const at::Tensor& x, at::Tensor& out, c10::optional<at::Tensor> code) {
  check_map(x, at::kFloat, "max_pool_relu: x");
  check_map(out, at::kFloat, "max_pool_relu: out");
  const int64_t N = x.size(0), C = x.size(1), Ho = out.size(2), Wo = out.size(3);
  TORCH_CHECK(out.size(0) == N && out.size(1) == C && Ho == x.size(2) / 2 && Wo == x.size(3) / 2,
              "max_pool_relu: out ", out.sizes(), " is not x ", x.sizes(), " pooled");
  uint8_t* cp = nullptr;
  int64_t csn = 0, csh = 0;
  if (code.has_value()) {
    check_map(*code, at::kByte, "max_pool_relu: code");
    TORCH_CHECK(code->sizes() == out.sizes(), "max_pool_relu: code and out differ in shape");
    cp = code->data_ptr<uint8_t>();
    csn = code->stride(0);
    csh = code->stride(2);
  }
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t xsn = x.stride(0), xsh = x.stride(2), osn = out.stride(0), osh = out.stride(2);
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) {
    float m[L], k[L];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / Ho, i = item % Ho;
      const float* top = xp + n * xsn + 2 * i * xsh;
      float* o = op + n * osn + i * osh;
      uint8_t* cd = cp ? cp + n * csn + i * csh : nullptr;
      for (int64_t j = 0; j < Wo; ++j) {
        const float* a = top + 2 * j * C;
        const float* c = a + xsh;
        for (int64_t c0 = 0; c0 < C; c0 += L) {
          const int l = (int)std::min<int64_t>(L, C - c0);
          if (l == L) {
            window_max<L>(a + c0, a + C + c0, c + c0, c + C + c0, m, k);
          } else {
            for (int e = 0; e < l; ++e) window_max<1>(a + c0 + e, a + C + c0 + e, c + c0 + e, c + C + c0 + e, m + e, k + e);
          }
          store_pooled<L>(m, k, l, o + j * C + c0, cd ? cd + j * C + c0 : nullptr);
        }
      }
    }
  });
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
  const float* gp = grad.data_ptr<float>();
  const uint8_t* cp = code.data_ptr<uint8_t>();
  float* op = out.data_ptr<float>();
  const int64_t gsn = grad.stride(0), gsh = grad.stride(2), csn = code.stride(0), csh = code.stride(2);
  const int64_t osn = out.stride(0), osh = out.stride(2), pairs = (H + 1) / 2;
  at::parallel_for(0, N * pairs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / pairs, i = item % pairs;
      float* top = op + n * osn + 2 * i * osh;
      if (i == Ho) {  // the odd last row
        std::fill(top, top + W * C, 0.f);
        continue;
      }
      float* bottom = top + osh;
      const float* g = gp + n * gsn + i * gsh;
      const uint8_t* cd = cp + n * csn + i * csh;
      for (int64_t j = 0; j < Wo; ++j) {
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
      if (W % 2) {  // the odd last column
        std::fill(top + (W - 1) * C, top + W * C, 0.f);
        std::fill(bottom + (W - 1) * C, bottom + W * C, 0.f);
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("max_pool_relu", &max_pool_relu, "out = relu(max_pool2d(x, 2, 2)), with each output's code",
        py::arg("x"), py::arg("out"), py::arg("code") = py::none());
  m.def("max_pool_relu_backward", &max_pool_relu_backward, "the input gradient from the output's grad and codes");
}
