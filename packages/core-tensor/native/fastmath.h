// Float math the kernels share: exp, the normal CDF and density, the exact GELU — branch-free, so
// loops over them vectorise. `static`: each file gets its own copy compiled for its own instruction
// set (the micro-kernel files include this too; no copy compiled for AVX-512 may be linked into
// code that runs on a CPU without it).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// Σ f(i) over i < n in double, in 16 partial sums: independent additions run at the adder's
// throughput instead of its latency, and vectorise.
template <class I, class F>
static inline double SumD(I n, F f) {
  double p[16] = {};
  I i = 0;
  for (; i + 16 <= n; i += 16)
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) p[l] += f(i + I(l));
  for (; i < n; i++) p[0] += f(i);
  double t = 0;
  for (double v : p) t += v;
  return t;
}

// exp in float: Cody–Waite range reduction and Cephes' degree-6 polynomial, relative error
// <= 1e-7 (about one ulp); branch-free, so loops over it vectorise (no libm call per element).
static inline float ExpFast(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : y * scale;
}

// The standard normal CDF Φ(x) and density φ(x) from one exp: Φ(−|x|) = erfc(|x|/√2)/2 by
// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7; no cancellation in the lower tail). x·Φ(x) is
// within 4.1e-7 and Φ(x) + x·φ(x) within 2.4e-7 of the exact values on [−12, 12].
static inline void NormalCdfPdf(float x, float& cdf, float& pdf) {
  const float a = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = ExpFast(-a * a);
  const float tail = 0.5f * poly * e;
  cdf = x >= 0 ? 1.0f - tail : tail;
  pdf = 0.398942280401432678f * e;
}

// The exact GELU x·Φ(x).
static inline float Gelu(float x) {
  float cdf, pdf;
  NormalCdfPdf(x, cdf, pdf);
  return x * cdf;
}
