// The per-sample sums of the UFM block-arrow Schur complement S(sigma) (cross-entropy, float64).
//
// Notation of ufm/systems/ufm/structure.py (docs/theory.md section 3.8): for every sample i,
// with h = h_i, g = g_i (the logit gradient over N), p = p_i (softmax), q = W^T p,
//   D_i - sigma I = (W^T diag(p) W - q q^T) / N + (lambda_H - sigma) I,   C_i = its inverse,
//   V = W C_i, Cq = C_i q, U = diag(p) (V - 1 Cq^T) / N,
//   R = diag(p) (W C_i W^T - s 1^T - 1 s^T + q^T C_i q) diag(p) / N^2,  s = W Cq,
// and over the samples
//   T1[(k<=l), (j<=m)] = sum_i R[k,l] h_j h_m,   T2[(k,m), (j,l)] = sum_i U[k,m] h_j g_l,
//   T3[(k<=l), (j<=m)] = sum_i g_k g_l C_i[j,m], Wb1[(k,l), j] = sum_i R[k,l] h_j,
//   Wb2[k, (l,m)] = sum_i g_k U[l,m],            bb[k,l] = sum_i R[k,l],
// and, by a second handler, (D_i - sigma I)^{-1} y_i for given y_i. The inputs come in chunks
// (num_chunks, rows, c) with the samples on the last axis, zero-padded (a padded sample adds
// nothing). The XLA version is UFMBlockArrow._schur_ce's lax.scan; they agree to rounding.
//
// Why a native kernel (issue 15): one evaluation at N = 10^5, K = d = 10 is about 4e9 flops,
// most of them in the sample-axis products; XLA:CPU ran it at about 14 GFLOP/s on one core (the
// Gauss-Jordan inverses and the triangle packing are separate loops over (d, d, c) arrays) and
// does not share it between cores. Here eight samples sit in one 64-byte vector: D_i, its
// Cholesky factor, C_i, V, U and R stay in registers and L1 per group of eight, the products
// over the samples are register-blocked (4 x 4 accumulators of 8 lanes), and the chunks are
// split over the cores the process may use (threads with private accumulators, summed at the
// end; UFM_NATIVE_THREADS caps their number, passed in by the caller).

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

typedef double v8 __attribute__((vector_size(64)));
constexpr int L = 8;

inline v8 ld(const double* p) {
  v8 o;
  std::memcpy(&o, p, sizeof o);
  return o;
}
inline void st(double* p, v8 v) { std::memcpy(p, &v, sizeof v); }
inline v8 splat(double a) { return v8{} + a; }
inline double hsum(v8 v) {
  double s = 0.0;
  for (int l = 0; l < L; ++l) s += v[l];
  return s;
}

// acc[r * lda + s] += sum_t X[r * cp + t] Y[s * cp + t] over t < cp (a multiple of L): the
// products over the sample axis, in blocks of MR x NR accumulators of L lanes. The empty asm
// statements keep the loaded vectors in registers (GCC would otherwise fold the loads into the
// multiply-adds and load each vector NR or MR times).
// UFM_KEEP_IN_REGISTER(v) is that statement: one AVX-512 register holds a v8; without AVX-512 a
// v8 spans two registers and the statement is left out.
#if defined(__AVX512F__)
#define UFM_KEEP_IN_REGISTER(v) asm("" : "+v"(v))
#else
#define UFM_KEEP_IN_REGISTER(v) (void)0
#endif

template <int MR, int NR>
inline void tile(const double* X, const double* Y, ptrdiff_t cp, double* acc, ptrdiff_t lda) {
  v8 a[MR][NR] = {};
  for (ptrdiff_t t = 0; t < cp; t += L) {
    v8 x[MR], y[NR];
#pragma GCC unroll 8
    for (int u = 0; u < MR; ++u) {
      x[u] = ld(X + u * cp + t);
      UFM_KEEP_IN_REGISTER(x[u]);
    }
#pragma GCC unroll 8
    for (int w = 0; w < NR; ++w) {
      y[w] = ld(Y + w * cp + t);
      UFM_KEEP_IN_REGISTER(y[w]);
    }
#pragma GCC unroll 8
    for (int u = 0; u < MR; ++u)
#pragma GCC unroll 8
      for (int w = 0; w < NR; ++w) a[u][w] += x[u] * y[w];
  }
  for (int u = 0; u < MR; ++u)
    for (int w = 0; w < NR; ++w) acc[u * lda + w] += hsum(a[u][w]);
}

template <int MR>
inline void row_block(const double* X, const double* Y, int S, ptrdiff_t cp, double* acc,
                      ptrdiff_t lda) {
  int s = 0;
  for (; s + 4 <= S; s += 4) tile<MR, 4>(X, Y + s * cp, cp, acc + s, lda);
  for (; s < S; ++s) tile<MR, 1>(X, Y + s * cp, cp, acc + s, lda);
}

void gemm_nt(const double* X, int R, const double* Y, int S, int cp, double* acc, int lda) {
  int r = 0;
  for (; r + 4 <= R; r += 4) row_block<4>(X + r * ptrdiff_t(cp), Y, S, cp, acc + r * ptrdiff_t(lda), lda);
  for (; r < R; ++r) row_block<1>(X + r * ptrdiff_t(cp), Y, S, cp, acc + r * ptrdiff_t(lda), lda);
}

struct Sizes {
  int K, d, c, cp, nK, nd;
};

// One thread's sums (the layout of the outputs) and work buffers (rows of cp samples).
struct Work {
  std::vector<double> T1, T2, T3, Wb1, Wb2, bb;
  std::vector<double> h, g, p, U, HG, Rp, HH, GG, Cp, Rf;
  std::vector<v8> q, D, Li, Cv, V, Cq, sv;
  explicit Work(const Sizes& z) {
    const int K = z.K, d = z.d, cp = z.cp;
    T1.assign(z.nK * z.nd, 0.0);
    T2.assign(K * d * d * K, 0.0);
    T3.assign(z.nK * z.nd, 0.0);
    Wb1.assign(K * K * d, 0.0);
    Wb2.assign(K * K * d, 0.0);
    bb.assign(K * K, 0.0);
    h.assign(d * cp, 0.0);
    g.assign(K * cp, 0.0);
    p.assign(K * cp, 0.0);
    U.assign(K * d * cp, 0.0);
    HG.assign(d * K * cp, 0.0);
    Rp.assign(z.nK * cp, 0.0);
    HH.assign(z.nd * cp, 0.0);
    GG.assign(z.nK * cp, 0.0);
    Cp.assign(z.nd * cp, 0.0);
    Rf.assign(K * K * cp, 0.0);
    q.resize(d);
    D.resize(d * d);
    Li.resize(d * d);
    Cv.resize(d * d);
    V.resize(K * d);
    Cq.resize(d);
    sv.resize(K);
  }
};

// q = W^T p and the Cholesky factor of D_i - sigma I (lower, in place in D: row b, column a <=
// b) of eight samples (lanes); p holds their K probabilities. A padding lane (p = 0: a softmax
// sums to one) gets the identity, whatever the sign of the shift (sigma may exceed lambda_H
// when every D_i - lambda_H I is definite, d < K), so that it stays finite and adds nothing.
inline void factor(const Sizes& z, const double* W, const double* WWp, double shift, double inv_n,
                   const v8* p, v8* q, v8* D) {
  const int K = z.K, d = z.d;
  v8 psum = {};
  for (int k = 0; k < K; ++k) psum += p[k];
  v8 diag;
  for (int l = 0; l < L; ++l) diag[l] = psum[l] == 0.0 ? 1.0 : shift;
  for (int a = 0; a < d; ++a) {
    v8 s = {};
    for (int k = 0; k < K; ++k) s += W[k * d + a] * p[k];
    q[a] = s;
  }
  // (sum_k p_k W_ka W_kb - q_a q_b) / N + shift delta_ab
  for (int a = 0, ab = 0; a < d; ++a) {
    for (int b = a; b < d; ++b, ++ab) {
      v8 s = {};
      const double* ww = WWp + ab * K;
      for (int k = 0; k < K; ++k) s += ww[k] * p[k];
      v8 v = (s - q[a] * q[b]) * inv_n;
      if (a == b) v += diag;
      D[b * d + a] = v;
    }
  }
  for (int j = 0; j < d; ++j) {
    v8 s = D[j * d + j];
    for (int k = 0; k < j; ++k) s -= D[j * d + k] * D[j * d + k];
    v8 ljj;
    for (int l = 0; l < L; ++l) ljj[l] = std::sqrt(s[l]);
    D[j * d + j] = ljj;
    v8 inv = 1.0 / ljj;
    for (int i = j + 1; i < d; ++i) {
      v8 r = D[i * d + j];
      for (int k = 0; k < j; ++k) r -= D[i * d + k] * D[j * d + k];
      D[i * d + j] = r * inv;
    }
  }
}

// The per-sample quantities of eight samples (lanes) at offset t of the chunk buffers.
void group(const Sizes& z, const double* W, const double* WWp, double shift, double inv_n,
           Work& w, int t) {
  const int K = z.K, d = z.d, cp = z.cp;
  v8* q = w.q.data();
  v8* D = w.D.data();
  v8* Li = w.Li.data();
  v8* C = w.Cv.data();
  v8* V = w.V.data();
  v8* Cq = w.Cq.data();
  v8* sv = w.sv.data();
  v8 p[64];
  for (int k = 0; k < K; ++k) p[k] = ld(&w.p[k * cp + t]);
  factor(z, W, WWp, shift, inv_n, p, q, D);
  // L^{-1} (lower) and C = L^{-T} L^{-1}
  for (int j = 0; j < d; ++j) {
    Li[j * d + j] = 1.0 / D[j * d + j];
    for (int i = j + 1; i < d; ++i) {
      v8 s = {};
      for (int k = j; k < i; ++k) s += D[i * d + k] * Li[k * d + j];
      Li[i * d + j] = -s / D[i * d + i];
    }
  }
  for (int a = 0; a < d; ++a) {
    for (int b = a; b < d; ++b) {
      v8 s = {};
      for (int k = b; k < d; ++k) s += Li[k * d + a] * Li[k * d + b];
      C[a * d + b] = s;
      C[b * d + a] = s;
    }
  }
  for (int a = 0; a < d; ++a) {
    v8 s = {};
    for (int b = 0; b < d; ++b) s += C[a * d + b] * q[b];
    Cq[a] = s;
  }
  v8 tq = {};
  for (int a = 0; a < d; ++a) tq += q[a] * Cq[a];
  for (int k = 0; k < K; ++k) {
    v8 s = {};
    for (int a = 0; a < d; ++a) s += W[k * d + a] * Cq[a];
    sv[k] = s;
    const v8 pk = p[k] * inv_n;
    for (int m = 0; m < d; ++m) {
      v8 v = {};
      for (int a = 0; a < d; ++a) v += W[k * d + a] * C[a * d + m];
      V[k * d + m] = v;
      st(&w.U[(k * d + m) * cp + t], pk * (v - Cq[m]));
    }
  }
  // R = diag(p) (V W^T - s 1^T - 1 s^T + t) diag(p) / N^2 (symmetric), full and packed
  const double inv_n2 = inv_n * inv_n;
  for (int k = 0, kl = 0; k < K; ++k) {
    for (int l = k; l < K; ++l, ++kl) {
      v8 s = {};
      for (int m = 0; m < d; ++m) s += V[k * d + m] * W[l * d + m];
      v8 r = p[k] * p[l] * (s - sv[k] - sv[l] + tq) * inv_n2;
      st(&w.Rp[kl * cp + t], r);
      st(&w.Rf[(k * K + l) * cp + t], r);
      st(&w.Rf[(l * K + k) * cp + t], r);
    }
  }
  v8 h[64], g[64];
  for (int a = 0; a < d; ++a) h[a] = ld(&w.h[a * cp + t]);
  for (int k = 0; k < K; ++k) g[k] = ld(&w.g[k * cp + t]);
  for (int j = 0; j < d; ++j)
    for (int l = 0; l < K; ++l) st(&w.HG[(j * K + l) * cp + t], h[j] * g[l]);
  for (int j = 0, jm = 0; j < d; ++j)
    for (int m = j; m < d; ++m, ++jm) {
      st(&w.HH[jm * cp + t], h[j] * h[m]);
      st(&w.Cp[jm * cp + t], C[j * d + m]);
    }
  for (int k = 0, kl = 0; k < K; ++k)
    for (int l = k; l < K; ++l, ++kl) st(&w.GG[kl * cp + t], g[k] * g[l]);
}

// Chunks [c0, c1) into w's sums.
void run_chunks(const Sizes& z, const double* W, const double* WWp, double shift, double inv_n,
                const double* Hc, const double* Gc, const double* Pc, Work& w, int64_t c0,
                int64_t c1) {
  const int K = z.K, d = z.d, c = z.c, cp = z.cp;
  for (int64_t ch = c0; ch < c1; ++ch) {
    for (int a = 0; a < d; ++a) std::memcpy(&w.h[a * cp], Hc + (ch * d + a) * c, c * 8);
    for (int k = 0; k < K; ++k) {
      std::memcpy(&w.g[k * cp], Gc + (ch * K + k) * c, c * 8);
      std::memcpy(&w.p[k * cp], Pc + (ch * K + k) * c, c * 8);
    }
    for (int t = 0; t < cp; t += L) group(z, W, WWp, shift, inv_n, w, t);
    gemm_nt(w.U.data(), K * d, w.HG.data(), d * K, cp, w.T2.data(), d * K);
    gemm_nt(w.Rp.data(), z.nK, w.HH.data(), z.nd, cp, w.T1.data(), z.nd);
    gemm_nt(w.GG.data(), z.nK, w.Cp.data(), z.nd, cp, w.T3.data(), z.nd);
    gemm_nt(w.Rf.data(), K * K, w.h.data(), d, cp, w.Wb1.data(), d);
    gemm_nt(w.g.data(), K, w.U.data(), K * d, cp, w.Wb2.data(), K * d);
    for (int kl = 0; kl < K * K; ++kl) {
      v8 s = {};
      for (int t = 0; t < cp; t += L) s += ld(&w.Rf[kl * cp + t]);
      w.bb[kl] += hsum(s);
    }
  }
}

// Threads for num_chunks chunks: the cores this process may use, at most max_threads (from
// UFM_NATIVE_THREADS, read by the Python caller: getenv here could race with a setenv on the
// Python thread while the call runs asynchronously).
int num_threads(int64_t num_chunks, int64_t max_threads) {
  int64_t n = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (max_threads >= 1) n = std::min(n, max_threads);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, num_chunks)));
}

// task(i, c0, c1) on nt contiguous ranges of the chunks, range 0 on the calling thread.
template <typename F>
void parallel_chunks(int64_t nc, int nt, F task) {
  std::vector<std::thread> threads;
  for (int i = 1; i < nt; ++i) threads.emplace_back(task, i, nc * i / nt, nc * (i + 1) / nt);
  task(0, int64_t(0), nc / nt);
  for (auto& th : threads) th.join();
}

// Sizes from W (K, d) and a chunked input (num_chunks, rows, c); false if inconsistent.
bool sizes_of(ffi::Span<const int64_t> wd, ffi::Span<const int64_t> xd, Sizes& z, int64_t& nc) {
  if (wd.size() != 2 || xd.size() != 3) return false;
  z.K = static_cast<int>(wd[0]);
  z.d = static_cast<int>(wd[1]);
  nc = xd[0];
  z.c = static_cast<int>(xd[2]);
  z.cp = (z.c + L - 1) / L * L;
  z.nK = z.K * (z.K + 1) / 2;
  z.nd = z.d * (z.d + 1) / 2;
  return z.K >= 1 && z.d >= 1 && z.K <= 64 && z.d <= 64;
}

// W_ka W_kb for a <= b (packed), K contiguous per pair
std::vector<double> pair_products(const Sizes& z, const double* W) {
  std::vector<double> WWp(z.nd * z.K);
  for (int a = 0, ab = 0; a < z.d; ++a)
    for (int b = a; b < z.d; ++b, ++ab)
      for (int k = 0; k < z.K; ++k) WWp[ab * z.K + k] = W[k * z.d + a] * W[k * z.d + b];
  return WWp;
}

ffi::Error Schur(ffi::Buffer<ffi::F64> Wb, ffi::Buffer<ffi::F64> Hc, ffi::Buffer<ffi::F64> Gc,
                 ffi::Buffer<ffi::F64> Pc, ffi::Buffer<ffi::F64> scalars, int64_t max_threads,
                 ffi::ResultBuffer<ffi::F64> T1, ffi::ResultBuffer<ffi::F64> T2,
                 ffi::ResultBuffer<ffi::F64> T3, ffi::ResultBuffer<ffi::F64> Wb1,
                 ffi::ResultBuffer<ffi::F64> Wb2, ffi::ResultBuffer<ffi::F64> bb) {
  Sizes z;
  int64_t nc;
  auto gd = Gc.dimensions();
  auto pd = Pc.dimensions();
  if (!sizes_of(Wb.dimensions(), Hc.dimensions(), z, nc) || Hc.dimensions()[1] != z.d ||
      gd.size() != 3 || pd.size() != 3 || gd[0] != nc || gd[1] != z.K || gd[2] != z.c ||
      pd[0] != nc || pd[1] != z.K || pd[2] != z.c)
    return ffi::Error::InvalidArgument("ufm_schur: inconsistent shapes (or K, d > 64)");
  const double* W = Wb.typed_data();
  const double shift = scalars.typed_data()[0], inv_n = scalars.typed_data()[1];
  const std::vector<double> WWp = pair_products(z, W);
  const int nt = num_threads(nc, max_threads);
  std::vector<Work> work;
  work.reserve(nt);
  for (int i = 0; i < nt; ++i) work.emplace_back(z);
  parallel_chunks(nc, nt, [&](int i, int64_t c0, int64_t c1) {
    run_chunks(z, W, WWp.data(), shift, inv_n, Hc.typed_data(), Gc.typed_data(),
               Pc.typed_data(), work[i], c0, c1);
  });
  auto total = [&](std::vector<double> Work::*field, double* out) {
    const size_t size = (work[0].*field).size();
    std::memcpy(out, (work[0].*field).data(), size * 8);
    for (int i = 1; i < nt; ++i)
      for (size_t j = 0; j < size; ++j) out[j] += (work[i].*field)[j];
  };
  total(&Work::T1, T1->typed_data());
  total(&Work::T2, T2->typed_data());
  total(&Work::T3, T3->typed_data());
  total(&Work::Wb1, Wb1->typed_data());
  total(&Work::Wb2, Wb2->typed_data());
  total(&Work::bb, bb->typed_data());
  return ffi::Error::Success();
}

// (D_i - sigma I)^{-1} y_i for every sample, chunked like Pc: the factor again (cheaper than
// storing d^2 numbers per sample and reading them back), then two triangular solves.
ffi::Error Cinv(ffi::Buffer<ffi::F64> Wb, ffi::Buffer<ffi::F64> Pc, ffi::Buffer<ffi::F64> Yc,
                ffi::Buffer<ffi::F64> scalars, int64_t max_threads,
                ffi::ResultBuffer<ffi::F64> out) {
  Sizes z;
  int64_t nc;
  auto yd = Yc.dimensions();
  if (!sizes_of(Wb.dimensions(), Pc.dimensions(), z, nc) || Pc.dimensions()[1] != z.K ||
      yd.size() != 3 || yd[0] != nc || yd[1] != z.d || yd[2] != z.c)
    return ffi::Error::InvalidArgument("ufm_cinv: inconsistent shapes (or K, d > 64)");
  const double* W = Wb.typed_data();
  const double shift = scalars.typed_data()[0], inv_n = scalars.typed_data()[1];
  const std::vector<double> WWp = pair_products(z, W);
  const int K = z.K, d = z.d, c = z.c;
  const double* P = Pc.typed_data();
  const double* Y = Yc.typed_data();
  double* X = out->typed_data();
  parallel_chunks(nc, num_threads(nc, max_threads), [&](int, int64_t c0, int64_t c1) {
    std::vector<v8> q(d), D(d * d);
    v8 p[64], y[64];
    double buf[64][L];
    for (int64_t ch = c0; ch < c1; ++ch) {
      for (int t = 0; t < c; t += L) {
        const int m = std::min(L, c - t);  // lanes in use (zero-padded tail)
        for (int k = 0; k < K; ++k) {
          std::memset(buf[0], 0, sizeof buf[0]);
          std::memcpy(buf[0], P + (ch * K + k) * c + t, m * 8);
          p[k] = ld(buf[0]);
        }
        for (int a = 0; a < d; ++a) {
          std::memset(buf[0], 0, sizeof buf[0]);
          std::memcpy(buf[0], Y + (ch * d + a) * c + t, m * 8);
          y[a] = ld(buf[0]);
        }
        factor(z, W, WWp.data(), shift, inv_n, p, q.data(), D.data());
        for (int i = 0; i < d; ++i) {  // L z = y
          v8 r = y[i];
          for (int k = 0; k < i; ++k) r -= D[i * d + k] * y[k];
          y[i] = r / D[i * d + i];
        }
        for (int i = d - 1; i >= 0; --i) {  // L^T x = z
          v8 r = y[i];
          for (int k = i + 1; k < d; ++k) r -= D[k * d + i] * y[k];
          y[i] = r / D[i * d + i];
        }
        for (int a = 0; a < d; ++a) {
          st(buf[a], y[a]);
          std::memcpy(X + (ch * d + a) * c + t, buf[a], m * 8);
        }
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(UfmSchurF64, Schur,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Attr<int64_t>("max_threads")
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(UfmCinvF64, Cinv,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Attr<int64_t>("max_threads")
                                  .Ret<ffi::Buffer<ffi::F64>>());
