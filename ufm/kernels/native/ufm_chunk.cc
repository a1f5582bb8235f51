// One chunk of the many-seed UFM optimiser on CPU: every step of every seed in one fused pass.
//
// The UFM objective (docs/theory.md section 1; Zhu et al. 2021, arXiv 2105.02375)
//   f(W, H, b) = g(W H + b 1^T) + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 (+ lambda_b/2 ||b||^2)
// with g the mean cross-entropy over class-major columns (N = n K) or 1/(2N) ||Z - Y||^2, and
// its gradient G = grad_Z g, grad_W = G H^T + lambda_W W, grad_H = W^T G + lambda_H H,
// grad_b = G 1 (+ lambda_b b). Plain gradient descent or heavy-ball momentum, as optax.sgd does
// it: t <- g + beta t, p <- p + (-lr) t.
//
// The step rule per seed is the one of ufm.optimize's plain path (ufm/optim/optimize.py): the
// value and gradient at the current point set the status (non-finite -> NAN, |f| or ||grad f||
// above the threshold -> DIVERGED, ||grad f|| <= tol -> CONVERGED); the point moves only while
// RUNNING and below max_steps. After every record_every steps the value and gradient norm at the
// current point are recorded.
//
// Why a native kernel (issue 15): on XLA:CPU the per-seed products are 10 x 10 by 10 x N and
// the softmax is a separate loop over the (seeds, K, N) logits; the step runs at about 20% of
// the machine's matmul rate. Here one seed's whole chunk runs while its parameters stay in
// cache, one pass over the columns per step computes logits, softmax, loss, all three gradients
// and the candidate update (blocks of B columns, the inner loops over the block vectorise),
// and a seed that has stopped costs nothing. Seeds are independent: each XLA CPU device (one per
// core) runs the kernel on its own shard of seeds.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// ufm.optim.Status codes (MAX_STEPS = 0 is set by ufm.optimize after the last chunk)
constexpr int8_t kConverged = 1, kDiverged = 2, kNan = 3, kRunning = 4;

// SIMD vectors of 64 bytes (GCC/Clang vector extensions: one AVX-512 register, two AVX2 ones):
// one vector holds the same entry of L consecutive columns.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float v __attribute__((vector_size(64)));
  typedef int32_t vi __attribute__((vector_size(64)));
  static constexpr int L = 16;
};
template <>
struct Vec<double> {
  typedef double v __attribute__((vector_size(64)));
  typedef int64_t vi __attribute__((vector_size(64)));
  static constexpr int L = 8;
};

template <typename V>
inline V load(const void* p) {
  V out;
  std::memcpy(&out, p, sizeof out);
  return out;
}
template <typename V>
inline void store(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename V, typename S>
inline V splat(S a) {
  return V{} + a;
}

// exp for x <= 0 (softmax arguments) on a vector: a degree-6 polynomial fitted to exp on
// |r| <= ln 2 / 2 (fit error 1.9e-9 relative, below float32 rounding) in float and a degree-13
// Taylor polynomial in double, after the reduction x = k ln 2 + r (ln 2 split in two parts),
// times 2^k (AVX-512's
// scalef, which also gives the subnormals and 0 on underflow; else built from the exponent
// bits, 0 below the smallest normal's logarithm); NaN stays NaN.
inline Vec<float>::v exp_neg(Vec<float>::v x) {
  typedef Vec<float>::v V;
  const V magic = splat<V>(12582912.0f);  // 1.5 2^23: adding it rounds to an integer
#if defined(__AVX512F__)
  const V lo = splat<V>(-104.0f);  // exp(-104) is below float's smallest subnormal
#else
  const V lo = splat<V>(-87.33654f), zero = splat<V>(0.0f);
#endif
  V xc = x < lo ? lo : x;
  V k = (xc * 1.44269504088896341f + magic) - magic;
  V r = xc - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  V p = splat<V>(1.3829421950504184e-3f);  // degree-6 fit of exp on |r| <= ln 2 / 2
  p = p * r + 8.374771103262901e-3f;
  p = p * r + 4.16683591902256e-2f;
  p = p * r + 1.666642129421234e-1f;
  p = p * r + 4.9999991059303284e-1f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
#if defined(__AVX512F__)
  return (V)_mm512_scalef_ps((__m512)p, (__m512)k);  // p 2^k, 0 on underflow, NaN stays NaN
#else
  typedef Vec<float>::vi VI;
  VI ki = __builtin_convertvector(k, VI);
  VI bits = (ki + 127) << 23;
  V out = p * reinterpret_cast<V&>(bits);
  return x < lo ? zero : out;
#endif
}

inline Vec<double>::v exp_neg(Vec<double>::v x) {
  typedef Vec<double>::v V;
  const V magic = splat<V>(6755399441055744.0);  // 1.5 2^52
#if defined(__AVX512F__)
  const V lo = splat<V>(-746.0);  // exp(-746) is below double's smallest subnormal
#else
  const V lo = splat<V>(-708.3964185322641), zero = splat<V>(0.0);
#endif
  V xc = x < lo ? lo : x;
  V k = (xc * 1.4426950408889634 + magic) - magic;
  V r = xc - k * 6.93145751953125E-1;
  r = r - k * 1.42860682030941723212E-6;
  V p = splat<V>(1.0 / 6227020800.0);
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
#if defined(__AVX512F__)
  return (V)_mm512_scalef_pd((__m512d)p, (__m512d)k);
#else
  typedef Vec<double>::vi VI;
  VI ki = __builtin_convertvector(k, VI);
  VI bits = (ki + 1023) << 52;
  V out = p * reinterpret_cast<V&>(bits);
  return x < lo ? zero : out;
#endif
}

// log of softmax denominators s in [1, K] (Cephes' logf on a vector); NaN stays NaN.
inline Vec<float>::v log_denominator(Vec<float>::v x) {
  typedef Vec<float>::v V;
  typedef Vec<float>::vi VI;
  VI bits = reinterpret_cast<VI&>(x);
  VI e = ((bits >> 23) & 0xff) - 126;
  VI mb = (bits & 0x807fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  V m = reinterpret_cast<V&>(mb);
  auto small = m < 0.707106781186547524f;
  V ef = __builtin_convertvector(small ? e - 1 : e, V);
  V t = small ? m + m - 1.0f : m - 1.0f;
  V z = t * t;
  V y = splat<V>(7.0376836292E-2f);
  y = y * t - 1.1514610310E-1f;
  y = y * t + 1.1676998740E-1f;
  y = y * t - 1.2420140846E-1f;
  y = y * t + 1.4249322787E-1f;
  y = y * t - 1.6668057665E-1f;
  y = y * t + 2.0000714765E-1f;
  y = y * t - 2.4999993993E-1f;
  y = y * t + 3.3333331174E-1f;
  y = y * t * z;
  y += -2.12194440e-4f * ef;
  y += -0.5f * z;
  V out = t + y;
  out += 0.693359375f * ef;
  return x != x ? x : out;
}

inline Vec<double>::v log_denominator(Vec<double>::v x) {
  for (int q = 0; q < Vec<double>::L; ++q) x[q] = std::log(x[q]);
  return x;
}

template <typename T>
inline bool finite(T v) {
  return std::isfinite(v);
}

struct Config {
  int64_t K, d, n, N, Np;  // Np: N padded to a multiple of the vector length
  bool ce, has_b, reg_b, momentum;
  double lr, beta;
};

// Work buffers of one seed: the point, its candidate successor and their momentum traces; H and
// its trace are padded to Np columns (zeros, masked out of every sum).
template <typename T>
struct Seed {
  typedef typename Vec<T>::v V;
  std::vector<T> W, H, b, tW, tH, tb;        // current point and trace
  std::vector<T> W1, H1, b1, tW1, tH1, tb1;  // candidate point and trace
  std::vector<V> gW;                         // K d vector accumulators of G H^T
  std::vector<V> gb;                         // K vector accumulators of G 1
  std::vector<typename Vec<T>::vi> labels;   // class of every column (blocks of L)
  std::vector<int64_t> block_class;          // the class of a block's columns if they share one
                                             // (else -1)
  explicit Seed(const Config& c)
      : W(c.K * c.d), H(c.d * c.Np, T(0)), b(c.K, T(0)), tW(c.K * c.d, T(0)),
        tH(c.d * c.Np, T(0)), tb(c.K, T(0)), W1(c.K * c.d), H1(c.d * c.Np, T(0)), b1(c.K),
        tW1(c.K * c.d), tH1(c.d * c.Np, T(0)), tb1(c.K), gW(c.K * c.d), gb(c.K),
        labels(c.Np / Vec<T>::L), block_class(c.Np / Vec<T>::L) {
    constexpr int L = Vec<T>::L;
    for (int64_t i = 0; i < c.Np; ++i) labels[i / L][i % L] = i < c.N ? i / c.n : -1;
    for (int64_t blk = 0; blk < c.Np / L; ++blk) {
      const int64_t first = blk * L, last = first + L - 1;
      block_class[blk] = last < c.N && first / c.n == last / c.n ? first / c.n : -1;
    }
  }
};

template <typename V>
inline typename std::remove_reference<decltype(V{}[0])>::type hsum(V v) {
  typename std::remove_reference<decltype(V{}[0])>::type out = 0;
  for (size_t q = 0; q < sizeof(V) / sizeof(out); ++q) out += v[q];
  return out;
}

// One pass at the current point: the value, the gradient norm and the candidate point (and
// trace) one optimiser step away.
// D > 0: the feature dimension d as a compile-time constant (the loops over it unroll and the
// feature vectors of a block stay in registers); D = 0: any d.
template <typename T, int D>
void evaluate(const Config& c, Seed<T>& s, T lW, T lH, T lb, T invN, T& value, T& gnorm) {
  typedef typename Vec<T>::v V;
  typedef typename Vec<T>::vi VI;
  constexpr int L = Vec<T>::L;
  const int64_t K = c.K, d = D > 0 ? D : c.d, N = c.N, Np = c.Np;
  const T lr = static_cast<T>(-c.lr), beta = static_cast<T>(c.beta);
  const V zero = splat<V>(T(0)), one = splat<V>(T(1));
  std::fill(s.gW.begin(), s.gW.end(), zero);
  std::fill(s.gb.begin(), s.gb.end(), zero);
  V fit_acc = zero, hh_acc = zero, gh_acc = zero;
  V z[64], g[64], h[D > 0 ? D : 64], gh[D > 0 ? D : 64];
  typedef typename std::remove_reference<decltype(VI{}[0])>::type I;
  VI lane;
  for (int q = 0; q < L; ++q) lane[q] = q;
  const T* W = s.W.data();
  // one block of L columns; only the last block, if it holds padding, masks its columns
  auto block = [&](int64_t c0, auto masked) {
    constexpr bool M = decltype(masked)::value;
    for (int64_t j = 0; j < d; ++j) h[j] = load<V>(&s.H[j * Np + c0]);
    // logits z = W h (+ b)
    for (int64_t k = 0; k < K; ++k) {
      V acc = c.has_b ? splat<V>(s.b[k]) : zero;
      for (int64_t j = 0; j < d; ++j) acc += W[k * d + j] * h[j];
      z[k] = acc;
    }
    const auto valid_mask = (lane + static_cast<I>(c0)) < static_cast<I>(N);
    auto keep = [&](V a) {
      if constexpr (M) {
        return valid_mask ? a : zero;
      } else {
        return a;
      }
    };
    VI label = s.labels[c0 / L];
    const int64_t cls = s.block_class[c0 / L];  // >= 0: every column of the block in class cls
    if (c.ce) {
      V m = z[0];
      for (int64_t k = 1; k < K; ++k) m = z[k] > m ? z[k] : m;
      V ssum = zero, ztrue = zero;
      for (int64_t k = 0; k < K; ++k) {
        V e = exp_neg(z[k] - m);
        g[k] = e;
        ssum += e;
        if (cls < 0) ztrue += label == static_cast<I>(k) ? z[k] : zero;
      }
      if (cls >= 0) ztrue = z[cls];
      V inv = one / ssum;
      V term = m + log_denominator(ssum) - ztrue;
      fit_acc += keep(term);
      if (cls >= 0) {
        for (int64_t k = 0; k < K; ++k) g[k] = (g[k] * inv - (k == cls ? one : zero)) * invN;
      } else {
        for (int64_t k = 0; k < K; ++k) {
          V p = g[k] * inv - (label == static_cast<I>(k) ? one : zero);
          g[k] = keep(p * invN);
        }
      }
    } else {
      for (int64_t k = 0; k < K; ++k) {
        V r = z[k] - (label == static_cast<I>(k) ? one : zero);
        fit_acc += keep(r * r);
        g[k] = keep(r * invN);
      }
    }
    // grad_W += G h^T, grad_b += G 1, grad_H = W^T G + lambda_H H in one pass over the classes
    for (int64_t j = 0; j < d; ++j) gh[j] = lH * h[j];
    for (int64_t k = 0; k < K; ++k) {
      const V gk = g[k];
      V* acc = &s.gW[k * d];
      const T* wk = W + k * d;
      for (int64_t j = 0; j < d; ++j) {
        acc[j] += gk * h[j];
        gh[j] += wk[j] * gk;
      }
      if (c.has_b) s.gb[k] += gk;
    }
    // the candidate columns
    for (int64_t j = 0; j < d; ++j) {
      V hv = h[j];
      V gv = keep(gh[j]);
      hh_acc += hv * hv;
      gh_acc += gv * gv;
      const int64_t o = j * Np + c0;
      if (c.momentum) {
        V t = gv + beta * load<V>(&s.tH[o]);
        store(&s.tH1[o], t);
        store(&s.H1[o], hv + t * lr);
      } else {
        store(&s.H1[o], hv + gv * lr);
      }
    }
  };
  const int64_t full = N / L * L;
  for (int64_t c0 = 0; c0 < full; c0 += L) block(c0, std::false_type{});
  if (full < Np) block(full, std::true_type{});
  T fit = hsum(fit_acc), hh = hsum(hh_acc), ghh = hsum(gh_acc);
  T ww = 0, gww = 0;
  for (int64_t i = 0; i < K * d; ++i) {
    T gv = hsum(s.gW[i]) + lW * W[i];
    ww += W[i] * W[i];
    gww += gv * gv;
    if (c.momentum) {
      T t = gv + beta * s.tW[i];
      s.tW1[i] = t;
      s.W1[i] = W[i] + t * lr;
    } else {
      s.W1[i] = W[i] + gv * lr;
    }
  }
  T bb = 0, gbb = 0;
  if (c.has_b) {
    for (int64_t k = 0; k < K; ++k) {
      T gsum = hsum(s.gb[k]);
      T gv = c.reg_b ? gsum + lb * s.b[k] : gsum;
      bb += s.b[k] * s.b[k];
      gbb += gv * gv;
      if (c.momentum) {
        T t = gv + beta * s.tb[k];
        s.tb1[k] = t;
        s.b1[k] = s.b[k] + t * lr;
      } else {
        s.b1[k] = s.b[k] + gv * lr;
      }
    }
  }
  const T half = T(0.5);
  value = c.ce ? fit * invN : half * fit * invN;
  value = value + half * lW * ww + half * lH * hh;
  if (c.has_b && c.reg_b) value = value + half * lb * bb;
  gnorm = std::sqrt(gww + ghh + gbb);
}

template <typename T>
using EvalFn = void (*)(const Config&, Seed<T>&, T, T, T, T, T&, T&);

template <typename T>
EvalFn<T> evaluator(int64_t d) {
  switch (d) {
    case 1: return evaluate<T, 1>;
    case 2: return evaluate<T, 2>;
    case 3: return evaluate<T, 3>;
    case 4: return evaluate<T, 4>;
    case 5: return evaluate<T, 5>;
    case 6: return evaluate<T, 6>;
    case 7: return evaluate<T, 7>;
    case 8: return evaluate<T, 8>;
    case 9: return evaluate<T, 9>;
    case 10: return evaluate<T, 10>;
    case 11: return evaluate<T, 11>;
    case 12: return evaluate<T, 12>;
    case 16: return evaluate<T, 16>;
    default: return evaluate<T, 0>;
  }
}

template <typename T>
void accept(const Config& c, Seed<T>& s) {
  std::swap(s.W, s.W1);
  std::swap(s.H, s.H1);
  if (c.has_b) std::swap(s.b, s.b1);
  if (c.momentum) {
    std::swap(s.tW, s.tW1);
    std::swap(s.tH, s.tH1);
    if (c.has_b) std::swap(s.tb, s.tb1);
  }
}

template <ffi::DataType DT>
ffi::Error Chunk(ffi::Buffer<DT> W, ffi::Buffer<DT> H, ffi::Buffer<DT> b, ffi::Buffer<DT> tW,
                 ffi::Buffer<DT> tH, ffi::Buffer<DT> tb, ffi::Buffer<DT> loss,
                 ffi::Buffer<DT> gnorm, ffi::Buffer<ffi::S8> status,
                 ffi::Buffer<ffi::S32> steps, ffi::Buffer<DT> lambdas, ffi::Buffer<DT> limits,
                 ffi::Buffer<ffi::S32> max_steps_buf, int64_t n, int64_t ce, int64_t has_b,
                 int64_t reg_b, int64_t momentum, double lr, double beta, int64_t num_records,
                 int64_t record_every, ffi::ResultBuffer<DT> W_out,
                 ffi::ResultBuffer<DT> H_out, ffi::ResultBuffer<DT> b_out,
                 ffi::ResultBuffer<DT> tW_out, ffi::ResultBuffer<DT> tH_out,
                 ffi::ResultBuffer<DT> tb_out, ffi::ResultBuffer<DT> loss_out,
                 ffi::ResultBuffer<DT> gnorm_out, ffi::ResultBuffer<ffi::S8> status_out,
                 ffi::ResultBuffer<ffi::S32> steps_out, ffi::ResultBuffer<DT> rec_loss,
                 ffi::ResultBuffer<DT> rec_gnorm) {
  using T = ffi::NativeType<DT>;
  auto wd = W.dimensions();
  auto hd = H.dimensions();
  if (wd.size() != 3 || hd.size() != 3) return ffi::Error::InvalidArgument("W, H: rank 3");
  Config c;
  const int64_t S = wd[0];
  c.K = wd[1];
  c.d = wd[2];
  c.N = hd[2];
  c.n = n;
  if (hd[0] != S || hd[1] != c.d || c.N != c.K * n || c.K > 64 || c.d > 64)
    return ffi::Error::InvalidArgument("ufm_chunk: inconsistent shapes (or K, d > 64)");
  c.Np = (c.N + Vec<T>::L - 1) / Vec<T>::L * Vec<T>::L;
  c.ce = ce != 0;
  c.has_b = has_b != 0;
  c.reg_b = reg_b != 0;
  c.momentum = momentum != 0;
  c.lr = lr;
  c.beta = beta;
  const T lW = lambdas.typed_data()[0], lH = lambdas.typed_data()[1],
          lb = lambdas.typed_data()[2];
  const T tol = limits.typed_data()[0], threshold = limits.typed_data()[1];
  const int32_t max_steps = max_steps_buf.typed_data()[0];
  const T invN = static_cast<T>(1.0 / static_cast<double>(c.N));
  const int64_t K = c.K, d = c.d, N = c.N, Np = c.Np, R = num_records;

  Seed<T> s(c);
  const EvalFn<T> eval = evaluator<T>(c.d);
  for (int64_t i = 0; i < S; ++i) {
    // load the seed (H padded to Np columns)
    std::memcpy(s.W.data(), W.typed_data() + i * K * d, sizeof(T) * K * d);
    for (int64_t j = 0; j < d; ++j)
      std::memcpy(&s.H[j * Np], H.typed_data() + (i * d + j) * N, sizeof(T) * N);
    if (c.has_b) std::memcpy(s.b.data(), b.typed_data() + i * K, sizeof(T) * K);
    if (c.momentum) {
      std::memcpy(s.tW.data(), tW.typed_data() + i * K * d, sizeof(T) * K * d);
      for (int64_t j = 0; j < d; ++j)
        std::memcpy(&s.tH[j * Np], tH.typed_data() + (i * d + j) * N, sizeof(T) * N);
      if (c.has_b) std::memcpy(s.tb.data(), tb.typed_data() + i * K, sizeof(T) * K);
    }
    T cur_loss = loss.typed_data()[i], cur_gnorm = gnorm.typed_data()[i];
    int8_t st = status.typed_data()[i];
    int32_t nsteps = steps.typed_data()[i];
    // the value at the current point, known while the point has not moved since
    bool known = false;
    T value = 0, gn = 0;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t t = 0; t < record_every; ++t) {
        bool active = st == kRunning;
        if (!active) break;  // a stopped seed keeps its point: the rest of the block is a no-op
        if (!known) {
          eval(c, s, lW, lH, lb, invN, value, gn);
          known = true;
        }
        bool fin = finite(value) && finite(gn);
        int8_t ns;
        if (!fin)
          ns = kNan;
        else if (std::abs(value) > threshold || gn > threshold)
          ns = kDiverged;
        else if (gn <= tol)
          ns = kConverged;
        else
          ns = kRunning;
        st = ns;
        bool move = st == kRunning && nsteps < max_steps;
        if (fin) cur_loss = value, cur_gnorm = gn;
        if (move) {
          accept(c, s);
          ++nsteps;
          known = false;
        }
      }
      if (!known) {
        eval(c, s, lW, lH, lb, invN, value, gn);
        known = true;
      }
      rec_loss->typed_data()[i * R + r] = value;
      rec_gnorm->typed_data()[i * R + r] = gn;
    }
    std::memcpy(W_out->typed_data() + i * K * d, s.W.data(), sizeof(T) * K * d);
    for (int64_t j = 0; j < d; ++j)
      std::memcpy(H_out->typed_data() + (i * d + j) * N, &s.H[j * Np], sizeof(T) * N);
    if (c.has_b) std::memcpy(b_out->typed_data() + i * K, s.b.data(), sizeof(T) * K);
    if (c.momentum) {
      std::memcpy(tW_out->typed_data() + i * K * d, s.tW.data(), sizeof(T) * K * d);
      for (int64_t j = 0; j < d; ++j)
        std::memcpy(tH_out->typed_data() + (i * d + j) * N, &s.tH[j * Np], sizeof(T) * N);
      if (c.has_b) std::memcpy(tb_out->typed_data() + i * K, s.tb.data(), sizeof(T) * K);
    }
    loss_out->typed_data()[i] = cur_loss;
    gnorm_out->typed_data()[i] = cur_gnorm;
    status_out->typed_data()[i] = st;
    steps_out->typed_data()[i] = nsteps;
  }
  return ffi::Error::Success();
}

}  // namespace

#define UFM_BIND(DT)                                                                   \
  ffi::Ffi::Bind()                                                                     \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<ffi::S8>>()                                                     \
      .Arg<ffi::Buffer<ffi::S32>>()                                                    \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<DT>>()                                                          \
      .Arg<ffi::Buffer<ffi::S32>>()                                                    \
      .Attr<int64_t>("n")                                                              \
      .Attr<int64_t>("ce")                                                             \
      .Attr<int64_t>("has_b")                                                          \
      .Attr<int64_t>("reg_b")                                                          \
      .Attr<int64_t>("momentum")                                                       \
      .Attr<double>("lr")                                                              \
      .Attr<double>("beta")                                                            \
      .Attr<int64_t>("num_records")                                                    \
      .Attr<int64_t>("record_every")                                                   \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<ffi::S8>>()                                                     \
      .Ret<ffi::Buffer<ffi::S32>>()                                                    \
      .Ret<ffi::Buffer<DT>>()                                                          \
      .Ret<ffi::Buffer<DT>>()

// UFM_PART=32 or 64 compiles one of the two handlers (build.py compiles both parts at once, one
// per core, and links them); without it, both.
#if !defined(UFM_PART) || UFM_PART == 32
XLA_FFI_DEFINE_HANDLER_SYMBOL(UfmChunkF32, Chunk<ffi::F32>, UFM_BIND(ffi::F32));
#endif
#if !defined(UFM_PART) || UFM_PART == 64
XLA_FFI_DEFINE_HANDLER_SYMBOL(UfmChunkF64, Chunk<ffi::F64>, UFM_BIND(ffi::F64));
#endif
