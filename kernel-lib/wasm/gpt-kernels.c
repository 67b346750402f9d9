/*
 * gpt-kernels: the compute kernels of one GPT training step (forward and backward), compiled to
 * WebAssembly with 128-bit SIMD and run on the memory of @tensorflow/tfjs-backend-wasm.
 *
 * Why a module of our own: tfjs-wasm runs one kernel call per op, ~2,500 calls per update of the
 * reference model, and its fast matmul (XNNPACK) only takes 2-D untransposed products, so the
 * backward pass pays for explicit transposes and the attention for hundreds of tiny tiles. Here
 * every product, transposed or strided, goes through one packed GEMM, and LayerNorm, GELU,
 * softmax and cross-entropy are single passes. The TypeScript side (src/model/fused.ts)
 * orchestrates the calls; tensors stay where tfjs put them.
 *
 * Rules this file keeps, because it imports tfjs' memory instead of owning one:
 * - no static data and no shadow stack (no globals in memory, no address-taken locals):
 *   clang would place them at fixed low addresses that belong to tfjs. scripts/build-wasm.mjs
 *   rejects a build with a data section or a mutable global;
 * - every buffer, scratch included, is passed in by the caller (allocated with tfjs' malloc).
 *
 * All matrices are row-major float32. Pointers are byte offsets into the shared memory.
 * Build: `npm run build:wasm` (clang 19 + wasm-ld). The committed .wasm is the build output.
 * clang 19, because it puts constant address offsets into the load/store instructions
 * (`v128.load offset=16`); clang 16 emits a separate i32.add per access, which V8 turns into one
 * more integer instruction per load, and those compete with the multiply-adds for ports.
 */
#include <wasm_simd128.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------ */
/* Vector math                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* MADD(a, b, c) = a·b + c. The default build rounds the product and the sum separately (128-bit
 * SIMD has no fused multiply-add). Built with -DGMT_RELAXED -mrelaxed-simd (gpt-kernels-relaxed.wasm)
 * it is relaxed SIMD's f32x4.relaxed_madd, which V8 emits as one FMA instruction where the CPU has
 * one (x86-64 FMA3, arm64): fewer instructions per GEMM step and one rounding instead of two. On a
 * given machine either build is deterministic; the two differ from each other by float rounding. */
#ifdef GMT_RELAXED
typedef float f32x4_t __attribute__((vector_size(16)));
#define MADD(a, b, c) ((v128_t)__builtin_wasm_relaxed_madd_f32x4((f32x4_t)(a), (f32x4_t)(b), (f32x4_t)(c)))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

/* SWIZZLE(a, idx): bytes of a picked by idx. i8x16.swizzle must give 0 for an index ≥ 16, which V8
 * emits as a saturating add before pshufb; the relaxed build's relaxed_swizzle is pshufb alone,
 * and leaves such lanes implementation-defined. The one caller (the select's packing) puts them
 * past the packed entries, where they are never read, so both builds give the same results. */
#ifdef GMT_RELAXED
#define SWIZZLE(a, b) ((v128_t)__builtin_wasm_relaxed_swizzle_i8x16((__i8x16)(a), (__i8x16)(b)))
#else
#define SWIZZLE(a, b) wasm_i8x16_swizzle(a, b)
#endif

/* e^x for 4 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 Taylor polynomial (relative
 * error < 2e-7 on that interval), 2^n by building the exponent bits. Inputs are clamped to
 * [-87.3, 88.7] (e^88.7 rounds up to +inf, as it did before). n is rounded by adding 1.5·2^23, so
 * its integer value is in the low mantissa bits (same ties-to-even result as f32x4.nearest): one
 * add instead of V8's expansions of nearest and trunc_sat. pmin/pmax are single min/max
 * instructions; they differ from min/max only for NaN and ±0, which the clamp does not care about. */
INLINE v128_t exp4(v128_t x) {
  const v128_t magic = wasm_f32x4_splat(12582912.0f); /* 1.5·2^23 */
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(-87.3f)), wasm_f32x4_splat(88.7f));
  v128_t t = MADD(x, wasm_f32x4_splat(1.44269504088896341f), magic);
  v128_t n = wasm_f32x4_sub(t, magic);
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.0f / 720.0f);
  p = MADD(p, r, wasm_f32x4_splat(1.0f / 120.0f));
  p = MADD(p, r, wasm_f32x4_splat(1.0f / 24.0f));
  p = MADD(p, r, wasm_f32x4_splat(1.0f / 6.0f));
  p = MADD(p, r, wasm_f32x4_splat(0.5f));
  p = MADD(p, r, wasm_f32x4_splat(1.0f));
  p = MADD(p, r, wasm_f32x4_splat(1.0f));
  /* bits(t) = bits(magic) + n, and bits(magic) << 23 wraps to 0, so bits(t) << 23 = n << 23. */
  v128_t e = wasm_i32x4_add(wasm_i32x4_shl(t, 23), wasm_i32x4_splat(127 << 23));
  return wasm_f32x4_mul(p, e);
}

INLINE float exp1(float x) { return wasm_f32x4_extract_lane(exp4(wasm_f32x4_splat(x)), 0); }

/** Lane sum (l0 + l1) + (l2 + l3) and lane max of 4 floats. */
INLINE float hsum4(v128_t a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) + (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}
INLINE float hmax4(v128_t a) {
  float x = wasm_f32x4_extract_lane(a, 0), y = wasm_f32x4_extract_lane(a, 1), z = wasm_f32x4_extract_lane(a, 2), w = wasm_f32x4_extract_lane(a, 3);
  x = x > y ? x : y;
  z = z > w ? z : w;
  return x > z ? x : z;
}

/* ln x for x > 0 (scalar; used once per row): x = 2^e·m with m in [√½, √2), then
 * ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172, by its series to s^11. */
static float log1f_pos(float x) {
  union { float f; uint32_t u; } v = { x };
  int e = (int)((v.u >> 23) & 0xff) - 127;
  v.u = (v.u & 0x007fffff) | 0x3f800000; /* m in [1, 2) */
  float m = v.f;
  if (m > 1.41421356f) { m *= 0.5f; e += 1; }
  double s = ((double)m - 1.0) / ((double)m + 1.0), s2 = s * s;
  double t = s * (2.0 + s2 * (2.0 / 3 + s2 * (2.0 / 5 + s2 * (2.0 / 7 + s2 * (2.0 / 9 + s2 * (2.0 / 11))))));
  return (float)(t + e * 0.69314718055994531);
}

/* ------------------------------------------------------------------------------------------ */
/* GEMM: C[M,N] = (acc ? C : 0) + op(A)[M,K] · op(B)[K,N]                                       */
/* op(A)[i][k] = ta ? A[k·lda + i] : A[i·lda + k];  op(B)[k][j] = tb ? B[j·ldb + k] : B[k·ldb + j] */
/* Blocked like GotoBLAS: a K-block of B is packed into 8-column strips, one 4-row panel of A at */
/* a time; the inner loop is two loads of B, four broadcast loads of A and eight multiply-adds.  */
/* ------------------------------------------------------------------------------------------ */

/* Why 4×8 and not the 6×8 tile of native BLAS kernels: V8 keeps 15 SIMD registers and its
 * scheduler issues a step's loads before its multiply-adds, so 12 accumulators + 2 B + 6 A
 * spill, and a spilled accumulator puts a store→load round trip (~5 cycles) in its FMA chain.
 * 8 accumulators + 2 + 4 = 14 fit. Measured on the reference model's shapes: 4×8 runs the
 * GEMM 16% faster than 6×8 built the same way, 5×8 no faster than 6×8. */
#define MR 4
#define NR 8
#define KC 256

/** Scratch floats `gemm` needs for an output of N columns. */
EXPORT(gemm_scratch_floats) int gemm_scratch_floats(int n) {
  return KC * ((n + NR - 1) / NR) * NR + KC * MR + MR * NR;
}

#define ACC_ROW(i) v128_t c##i##0 = z, c##i##1 = z;
#define ACC_STEP(i) { v128_t a = wasm_v128_load32_splat(pa + (i)); c##i##0 = MADD(a, b0, c##i##0); c##i##1 = MADD(a, b1, c##i##1); }
#define ACC_STORE(i) if ((i) < mv) { float *c = C + (i) * ldc; \
    if (acc) { c##i##0 = wasm_f32x4_add(c##i##0, wasm_v128_load(c)); c##i##1 = wasm_f32x4_add(c##i##1, wasm_v128_load(c + 4)); } \
    wasm_v128_store(c, c##i##0); wasm_v128_store(c + 4, c##i##1); }

__attribute__((noinline)) static void micro_4x8(int kc, const float *pa, const float *pb, float *C, int ldc, int mv, int acc) {
  v128_t z = wasm_f32x4_splat(0.0f);
  ACC_ROW(0) ACC_ROW(1) ACC_ROW(2) ACC_ROW(3)
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(pb), b1 = wasm_v128_load(pb + 4);
    ACC_STEP(0) ACC_STEP(1) ACC_STEP(2) ACC_STEP(3)
    pb += NR;
    pa += MR;
  }
  ACC_STORE(0) ACC_STORE(1) ACC_STORE(2) ACC_STORE(3)
}

/* Triangular structure `gemm_tri` may exploit (the causal attention products):
 * TRI_C_LOWER: only C[i][j] with j ≤ i is wanted; 8-column strips wholly above the diagonal are
 *              not computed (left as they were);
 * TRI_A_LOWER: op(A)[i][k] = 0 for k > i, so row i only needs k ≤ i;
 * TRI_A_UPPER: op(A)[i][k] = 0 for k < i, so row i only needs k ≥ i.
 * The A modes skip the zero part of K per 4-row panel; the skipped entries of A are never read,
 * except inside a panel, where they must hold zeros. */
#define TRI_NONE 0
#define TRI_C_LOWER 1
#define TRI_A_LOWER 2
#define TRI_A_UPPER 3

static void gemm_tri(const float *A, int lda, int ta, const float *B, int ldb, int tb, float *C, int ldc,
                     int M, int N, int K, int acc, float *scratch, int tri) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = 0.0f;
    return;
  }
  int nstrips = (N + NR - 1) / NR;
  float *packB = scratch;
  float *packA = scratch + (size_t)KC * nstrips * NR;
  float *edge = packA + KC * MR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kc = K - k0 < KC ? K - k0 : KC;
    int accNow = acc || k0 > 0;
    for (int s = 0; s < nstrips; s++) {
      float *d = packB + (size_t)s * KC * NR;
      int j0 = s * NR, nv = N - j0 < NR ? N - j0 : NR;
      if (!tb && nv == NR) {
        for (int k = 0; k < kc; k++) {
          const float *src = B + (size_t)(k0 + k) * ldb + j0;
          wasm_v128_store(d + k * NR, wasm_v128_load(src));
          wasm_v128_store(d + k * NR + 4, wasm_v128_load(src + 4));
        }
      } else if (tb && nv == NR) {
        /* op(B)[k][j] = B[j·ldb + k]: 4×4 transposes of 8 rows' next 4 entries. */
        const float *r = B + (size_t)j0 * ldb + k0;
        int k = 0;
        for (; k + 4 <= kc; k += 4) {
          for (int h = 0; h < 2; h++) {
            const float *q = r + (size_t)(4 * h) * ldb + k;
            v128_t a0 = wasm_v128_load(q), a1 = wasm_v128_load(q + ldb), a2 = wasm_v128_load(q + 2 * (size_t)ldb), a3 = wasm_v128_load(q + 3 * (size_t)ldb);
            v128_t t0 = wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7);
            v128_t t2 = wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7);
            float *o = d + k * NR + 4 * h;
            wasm_v128_store(o, wasm_i64x2_shuffle(t0, t2, 0, 2));
            wasm_v128_store(o + NR, wasm_i64x2_shuffle(t0, t2, 1, 3));
            wasm_v128_store(o + 2 * NR, wasm_i64x2_shuffle(t1, t3, 0, 2));
            wasm_v128_store(o + 3 * NR, wasm_i64x2_shuffle(t1, t3, 1, 3));
          }
        }
        for (; k < kc; k++)
          for (int j = 0; j < NR; j++) d[k * NR + j] = r[(size_t)j * ldb + k];
      } else {
        for (int k = 0; k < kc; k++)
          for (int j = 0; j < NR; j++)
            d[k * NR + j] = j < nv ? (tb ? B[(size_t)(j0 + j) * ldb + k0 + k] : B[(size_t)(k0 + k) * ldb + j0 + j]) : 0.0f;
      }
    }
    for (int i0 = 0; i0 < M; i0 += MR) {
      int mv = M - i0 < MR ? M - i0 : MR;
      /* The part [kb, ke) of this K block that the panel's rows need. */
      int kb = 0, ke = kc;
      if (tri == TRI_A_LOWER && i0 + mv - k0 < ke) ke = i0 + mv - k0;
      if (tri == TRI_A_UPPER && i0 - k0 > kb) kb = i0 - k0;
      if (ke <= kb) {
        if (!accNow)
          for (int i = 0; i < mv; i++) for (int j = 0; j < N; j++) C[(size_t)(i0 + i) * ldc + j] = 0.0f;
        continue;
      }
      if (mv == MR && ta) {
        for (int k = kb; k < ke; k++) {
          const float *a = A + (size_t)(k0 + k) * lda + i0;
          float *o = packA + (k - kb) * MR;
          for (int i = 0; i < MR; i++) o[i] = a[i];
        }
      } else if (mv == MR) {
        for (int k = kb; k < ke; k++) {
          const float *a = A + (size_t)i0 * lda + k0 + k;
          float *o = packA + (k - kb) * MR;
          for (int i = 0; i < MR; i++) o[i] = a[(size_t)i * lda];
        }
      } else {
        for (int k = kb; k < ke; k++)
          for (int i = 0; i < MR; i++) {
            float v = i < mv ? (ta ? A[(size_t)(k0 + k) * lda + i0 + i] : A[(size_t)(i0 + i) * lda + k0 + k]) : 0.0f;
            packA[(k - kb) * MR + i] = v;
          }
      }
      for (int s = 0; s < nstrips; s++) {
        int j0 = s * NR, nv = N - j0 < NR ? N - j0 : NR;
        if (tri == TRI_C_LOWER && j0 > i0 + mv - 1) break;
        const float *pb = packB + ((size_t)s * KC + kb) * NR;
        if (nv == NR) {
          micro_4x8(ke - kb, packA, pb, C + (size_t)i0 * ldc + j0, ldc, mv, accNow);
        } else {
          micro_4x8(ke - kb, packA, pb, edge, NR, mv, 0);
          for (int i = 0; i < mv; i++)
            for (int j = 0; j < nv; j++) {
              float *c = C + (size_t)(i0 + i) * ldc + j0 + j;
              *c = accNow ? *c + edge[i * NR + j] : edge[i * NR + j];
            }
        }
      }
    }
  }
}

EXPORT(gemm)
void gemm(const float *A, int lda, int ta, const float *B, int ldb, int tb, float *C, int ldc,
          int M, int N, int K, int acc, float *scratch) {
  gemm_tri(A, lda, ta, B, ldb, tb, C, ldc, M, N, K, acc, scratch, TRI_NONE);
}

/* ------------------------------------------------------------------------------------------ */
/* Elementwise and row kernels                                                                  */
/* ------------------------------------------------------------------------------------------ */

/** dst[i] = a·dst[i] + b·src[i] (products and sum rounded separately in both builds). */
EXPORT(scale_add)
void scale_add(float *dst, float a, const float *src, float b, int n) {
  v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  int i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(dst + i, wasm_f32x4_add(wasm_f32x4_mul(va, wasm_v128_load(dst + i)), wasm_f32x4_mul(vb, wasm_v128_load(src + i))));
  for (; i < n; i++) dst[i] = a * dst[i] + b * src[i];
}

/** dst[i] = a[i] (+ b[i] when b ≠ 0). */
EXPORT(copy_add)
void copy_add(float *dst, const float *a, const float *b, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(a + i);
    if (b) v = wasm_f32x4_add(v, wasm_v128_load(b + i));
    wasm_v128_store(dst + i, v);
  }
  for (; i < n; i++) dst[i] = b ? a[i] + b[i] : a[i];
}

EXPORT(fill_zero)
void fill_zero(float *dst, int n) {
  for (int i = 0; i < n; i++) dst[i] = 0.0f;
}

/** y = (x − mean)·rstd·γ + β per row of x [N, d]; keeps mean and rstd for the backward pass. */
EXPORT(layernorm_fwd)
void layernorm_fwd(const float *x, const float *g, const float *b, float *y, float *mean, float *rstd, int N, int d, float eps) {
  int d4 = d & ~3;
  for (int r = 0; r < N; r++) {
    const float *xr = x + (size_t)r * d;
    float *yr = y + (size_t)r * d;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int c = 0; c < d4; c += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(xr + c));
    float s = hsum4(acc);
    for (int c = d4; c < d; c++) s += xr[c];
    float m = s / d;
    v128_t vm = wasm_f32x4_splat(m);
    acc = wasm_f32x4_splat(0.0f);
    for (int c = 0; c < d4; c += 4) { v128_t t = wasm_f32x4_sub(wasm_v128_load(xr + c), vm); acc = MADD(t, t, acc); }
    float var = hsum4(acc);
    for (int c = d4; c < d; c++) { float t = xr[c] - m; var += t * t; }
    float rs = 1.0f / __builtin_sqrtf(var / d + eps);
    mean[r] = m;
    rstd[r] = rs;
    v128_t vr = wasm_f32x4_splat(rs);
    for (int c = 0; c < d4; c += 4)
      wasm_v128_store(yr + c, MADD(wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), vm), vr), wasm_v128_load(g + c), wasm_v128_load(b + c)));
    for (int c = d4; c < d; c++) yr[c] = (xr[c] - m) * rs * g[c] + b[c];
  }
}

/** dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·γ;  dγ += Σ dy·x̂;  dβ += Σ dy. */
EXPORT(layernorm_bwd)
void layernorm_bwd(const float *dy, const float *x, const float *mean, const float *rstd, const float *g,
                   float *dx, float *dg, float *db, int N, int d) {
  int d4 = d & ~3;
  for (int r = 0; r < N; r++) {
    const float *dyr = dy + (size_t)r * d, *xr = x + (size_t)r * d;
    float *dxr = dx + (size_t)r * d;
    float m = mean[r], rs = rstd[r];
    v128_t vm = wasm_f32x4_splat(m), vr = wasm_f32x4_splat(rs), a1 = wasm_f32x4_splat(0.0f), a2 = a1;
    for (int c = 0; c < d4; c += 4) {
      v128_t dyv = wasm_v128_load(dyr + c);
      v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), vm), vr), dxh = wasm_f32x4_mul(dyv, wasm_v128_load(g + c));
      a1 = wasm_f32x4_add(a1, dxh);
      a2 = MADD(dxh, xh, a2);
      wasm_v128_store(dg + c, MADD(dyv, xh, wasm_v128_load(dg + c)));
      wasm_v128_store(db + c, wasm_f32x4_add(wasm_v128_load(db + c), dyv));
    }
    float s1 = hsum4(a1), s2 = hsum4(a2);
    for (int c = d4; c < d; c++) {
      float xh = (xr[c] - m) * rs, dxh = dyr[c] * g[c];
      s1 += dxh;
      s2 += dxh * xh;
      dg[c] += dyr[c] * xh;
      db[c] += dyr[c];
    }
    s1 /= d;
    s2 /= d;
    v128_t v1 = wasm_f32x4_splat(s1), v2 = wasm_f32x4_splat(s2);
    for (int c = 0; c < d4; c += 4) {
      v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), vm), vr);
      v128_t t = wasm_f32x4_sub(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(dyr + c), wasm_v128_load(g + c)), v1), wasm_f32x4_mul(xh, v2));
      wasm_v128_store(dxr + c, MADD(vr, t, wasm_v128_load(dxr + c)));
    }
    for (int c = d4; c < d; c++) {
      float xh = (xr[c] - m) * rs;
      dxr[c] += rs * (dyr[c] * g[c] - s1 - xh * s2);
    }
  }
}

/* GELU, tanh form written as x·σ(2z), z = √(2/π)(x + 0.044715x³): the same function as
 * 0.5x(1 + tanh z). */
#define GELU_2C 1.5957691216057308f          /* 2·√(2/π) */
#define GELU_2CK (1.5957691216057308f * 0.044715f)

/** σ(2z) for 4 lanes, given x and x². */
INLINE v128_t gelu_sigmoid4(v128_t v, v128_t v2) {
  v128_t one = wasm_f32x4_splat(1.0f);
  /* −u with negated constants (bit-identical to negating u; saves V8's sign-mask sequence). */
  v128_t nu = wasm_f32x4_mul(v, MADD(v2, wasm_f32x4_splat(-GELU_2CK), wasm_f32x4_splat(-GELU_2C)));
  return wasm_f32x4_div(one, wasm_f32x4_add(one, exp4(nu)));
}

EXPORT(gelu_fwd)
void gelu_fwd(const float *x, float *y, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i), v2 = wasm_f32x4_mul(v, v);
    v128_t s = gelu_sigmoid4(v, v2);
    wasm_v128_store(y + i, wasm_f32x4_mul(v, s));
  }
  for (; i < n; i++) {
    float v = x[i], u = v * (v * v * GELU_2CK + GELU_2C);
    y[i] = v / (1.0f + exp1(-u));
  }
}

/** dx = dy·(σ + x·σ(1−σ)·2z'), 2z' = 2c(1 + 3k·x²). */
EXPORT(gelu_bwd)
void gelu_bwd(const float *x, const float *dy, float *dx, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i), v2 = wasm_f32x4_mul(v, v);
    v128_t s = gelu_sigmoid4(v, v2);
    v128_t dz = MADD(v2, wasm_f32x4_splat(3.0f * GELU_2CK), wasm_f32x4_splat(GELU_2C));
    v128_t t = wasm_f32x4_mul(wasm_f32x4_mul(v, wasm_f32x4_sub(s, wasm_f32x4_mul(s, s))), dz);
    wasm_v128_store(dx + i, wasm_f32x4_mul(wasm_v128_load(dy + i), wasm_f32x4_add(s, t)));
  }
  for (; i < n; i++) {
    float v = x[i], v2 = v * v, u = v * (v2 * GELU_2CK + GELU_2C);
    float s = 1.0f / (1.0f + exp1(-u)), dz = v2 * 3.0f * GELU_2CK + GELU_2C;
    dx[i] = dy[i] * (s + v * (s - s * s) * dz);
  }
}

/** Row-wise causal softmax of S [T, T] in place, after scaling by `scale`; entries above the
 * diagonal become 0. */
static void causal_softmax(float *S, int T, float scale) {
  v128_t vs = wasm_f32x4_splat(scale);
  for (int i = 0; i < T; i++) {
    float *row = S + (size_t)i * T;
    int n = i + 1, j = 0;
    v128_t vmax = wasm_f32x4_splat(row[0]);
    for (; j + 4 <= n; j += 4) vmax = wasm_f32x4_pmax(vmax, wasm_v128_load(row + j));
    float m = hmax4(vmax);
    for (; j < n; j++) if (row[j] > m) m = row[j];
    m *= scale; /* scale > 0, so max(row)·scale = max(row·scale) */
    v128_t vm = wasm_f32x4_splat(m), acc = wasm_f32x4_splat(0.0f);
    for (j = 0; j + 4 <= n; j += 4) {
      v128_t e = exp4(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(row + j), vs), vm));
      wasm_v128_store(row + j, e);
      acc = wasm_f32x4_add(acc, e);
    }
    float sum = hsum4(acc);
    for (; j < n; j++) { float e = exp1(row[j] * scale - m); row[j] = e; sum += e; }
    v128_t inv = wasm_f32x4_splat(1.0f / sum);
    for (j = 0; j + 4 <= n; j += 4) wasm_v128_store(row + j, wasm_f32x4_mul(wasm_v128_load(row + j), inv));
    for (; j < n; j++) row[j] *= wasm_f32x4_extract_lane(inv, 0);
    for (; j < T; j++) row[j] = 0.0f;
  }
}

/**
 * Causal multi-head attention forward over qkv [B·T, 3d] (q heads, then k heads, then v heads)
 * into out [B·T, d]; P [B·H, T, T] keeps the probabilities for the backward pass.
 */
EXPORT(attention_fwd)
void attention_fwd(const float *qkv, float *out, float *P, int B, int T, int H, int hd, float *scratch) {
  int d = H * hd, ld = 3 * d;
  float scale = 1.0f / __builtin_sqrtf((float)hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *q = qkv + (size_t)b * T * ld + h * hd;
      float *p = P + ((size_t)b * H + h) * T * T;
      gemm_tri(q, ld, 0, q + d, ld, 1, p, T, T, T, hd, 0, scratch, TRI_C_LOWER);
      causal_softmax(p, T, scale);
      gemm_tri(p, T, 0, q + 2 * d, ld, 0, out + (size_t)b * T * d + h * hd, d, T, hd, T, 0, scratch, TRI_A_LOWER);
    }
}

/**
 * Backward of `attention_fwd`: dqkv [B·T, 3d] from dout [B·T, d]. dP [T, T] is scratch.
 * dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale, dQ = dS·K, dK = dSᵀ·Q.
 */
EXPORT(attention_bwd)
void attention_bwd(const float *qkv, const float *P, const float *dout, float *dqkv, float *dP,
                   int B, int T, int H, int hd, float *scratch) {
  int d = H * hd, ld = 3 * d;
  float scale = 1.0f / __builtin_sqrtf((float)hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *q = qkv + (size_t)b * T * ld + h * hd;
      const float *p = P + ((size_t)b * H + h) * T * T;
      const float *dO = dout + (size_t)b * T * d + h * hd;
      float *dq = dqkv + (size_t)b * T * ld + h * hd;
      gemm_tri(p, T, 1, dO, d, 0, dq + 2 * d, ld, T, hd, T, 0, scratch, TRI_A_UPPER);
      gemm_tri(dO, d, 0, q + 2 * d, ld, 1, dP, T, T, T, hd, 0, scratch, TRI_C_LOWER);
      /* dP holds garbage above the diagonal (skipped strips); dS there is exactly 0. */
      for (int i = 0; i < T; i++) {
        const float *pr = p + (size_t)i * T;
        float *dr = dP + (size_t)i * T;
        int n = i + 1, j = 0;
        v128_t acc = wasm_f32x4_splat(0.0f);
        for (; j + 4 <= n; j += 4) acc = MADD(wasm_v128_load(dr + j), wasm_v128_load(pr + j), acc);
        float s = hsum4(acc);
        for (; j < n; j++) s += dr[j] * pr[j];
        v128_t vs = wasm_f32x4_splat(s), vsc = wasm_f32x4_splat(scale);
        for (j = 0; j + 4 <= n; j += 4)
          wasm_v128_store(dr + j, wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(pr + j), wasm_f32x4_sub(wasm_v128_load(dr + j), vs)), vsc));
        for (; j < n; j++) dr[j] = pr[j] * (dr[j] - s) * scale;
        for (; j < T; j++) dr[j] = 0.0f;
      }
      gemm_tri(dP, T, 0, q + d, ld, 0, dq, ld, T, hd, T, 0, scratch, TRI_A_LOWER);
      gemm_tri(dP, T, 1, q, ld, 0, dq + d, ld, T, hd, T, 0, scratch, TRI_A_UPPER);
    }
}

/** x[n] = wte[tokens[n]] + wpe[n mod T] for n < B·T. */
EXPORT(embed_fwd)
void embed_fwd(const int32_t *tokens, const float *wte, const float *wpe, float *x, int BT, int T, int d) {
  for (int n = 0; n < BT; n++) {
    const float *te = wte + (size_t)tokens[n] * d, *pe = wpe + (size_t)(n % T) * d;
    float *xr = x + (size_t)n * d;
    for (int c = 0; c < d; c++) xr[c] = te[c] + pe[c];
  }
}

/** dwte[tokens[n]] += dx[n], dwpe[n mod T] += dx[n] (the caller zeroes both first). */
EXPORT(embed_bwd)
void embed_bwd(const int32_t *tokens, const float *dx, float *dwte, float *dwpe, int BT, int T, int d) {
  for (int n = 0; n < BT; n++) {
    float *te = dwte + (size_t)tokens[n] * d, *pe = dwpe + (size_t)(n % T) * d;
    const float *xr = dx + (size_t)n * d;
    for (int c = 0; c < d; c++) { te[c] += xr[c]; pe[c] += xr[c]; }
  }
}

/**
 * Weighted mean cross-entropy of logits [N, V] against targets, and its gradient written over
 * the logits: dlogits = (softmax − onehot)·w/Σw. Returns the loss; Σw ≤ 0 is treated as 1e-9
 * (every weight zero gives loss 0 and a zero gradient).
 */
EXPORT(xent_fwd_bwd)
float xent_fwd_bwd(float *logits, const int32_t *targets, const float *w, int N, int V) {
  double wsum = 0.0;
  for (int n = 0; n < N; n++) wsum += w[n];
  double denom = wsum > 1e-9 ? wsum : 1e-9;
  double loss = 0.0;
  for (int n = 0; n < N; n++) {
    float *row = logits + (size_t)n * V;
    int t = targets[n];
    float m = row[0], lt = row[t];
    for (int v = 1; v < V; v++) if (row[v] > m) m = row[v];
    float s = 0.0f;
    for (int v = 0; v < V; v++) { float e = exp1(row[v] - m); row[v] = e; s += e; }
    float pt = row[t] / s;
    float logpt = (lt - m) - log1f_pos(s);
    loss -= (double)w[n] * logpt;
    float scale = (float)(w[n] / denom), inv = 1.0f / s;
    for (int v = 0; v < V; v++) row[v] = row[v] * inv * scale;
    row[t] = (pt - 1.0f) * scale;
  }
  return (float)(loss / denom);
}

/* ------------------------------------------------------------------------------------------ */
/* Optimizer                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/**
 * One AdamW step for one tensor of n entries, into new buffers (θ', m', v'), with the operations
 * in the order src/train/adamw.ts performs them with tfjs ops and no fused multiply-add, so the
 * result equals that code bit for bit:
 *   m' = m·β₁ + g·(1−β₁)   v' = v·β₂ + g²·(1−β₂)   d = (m'·c₁) / (√(v'·c₂) + ε) [+ θ·λ]
 *   θ' = θ − d·lr [· U]
 * c₁, c₂ are the inverse bias corrections; λ is added when `decay`; U (the update mask) is
 * applied when `has_mask`.
 */
EXPORT(adamw)
void adamw(const float *theta, const float *g, const float *m, const float *v, const float *mask,
           float *theta_out, float *m_out, float *v_out, int n,
           float b1, float omb1, float b2, float omb2, float c1, float c2, float eps, float lr, float wd,
           int decay, int has_mask) {
  int i = 0;
  v128_t vb1 = wasm_f32x4_splat(b1), vomb1 = wasm_f32x4_splat(omb1), vb2 = wasm_f32x4_splat(b2), vomb2 = wasm_f32x4_splat(omb2);
  v128_t vc1 = wasm_f32x4_splat(c1), vc2 = wasm_f32x4_splat(c2), veps = wasm_f32x4_splat(eps), vlr = wasm_f32x4_splat(lr), vwd = wasm_f32x4_splat(wd);
  for (; i + 4 <= n; i += 4) {
    v128_t gi = wasm_v128_load(g + i), th = wasm_v128_load(theta + i);
    v128_t mi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), vb1), wasm_f32x4_mul(gi, vomb1));
    v128_t vi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), vb2), wasm_f32x4_mul(wasm_f32x4_mul(gi, gi), vomb2));
    wasm_v128_store(m_out + i, mi);
    wasm_v128_store(v_out + i, vi);
    v128_t d = wasm_f32x4_div(wasm_f32x4_mul(mi, vc1), wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_mul(vi, vc2)), veps));
    if (decay) d = wasm_f32x4_add(d, wasm_f32x4_mul(th, vwd));
    d = wasm_f32x4_mul(d, vlr);
    if (has_mask) d = wasm_f32x4_mul(d, wasm_v128_load(mask + i));
    wasm_v128_store(theta_out + i, wasm_f32x4_sub(th, d));
  }
  for (; i < n; i++) {
    float gi = g[i], th = theta[i];
    float mi = m[i] * b1 + gi * omb1, vi = v[i] * b2 + (gi * gi) * omb2;
    m_out[i] = mi;
    v_out[i] = vi;
    float d = (mi * c1) / (__builtin_sqrtf(vi * c2) + eps);
    if (decay) d = d + th * wd;
    d = d * lr;
    if (has_mask) d = d * mask[i];
    theta_out[i] = th - d;
  }
}

/** Σ x[i]² over n entries, accumulated in double (for global gradient norms). */
EXPORT(sum_squares)
double sum_squares(const float *x, int n) {
  v128_t lo = wasm_f64x2_splat(0.0), hi = wasm_f64x2_splat(0.0);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t a = wasm_v128_load(x + i);
    v128_t l = wasm_f64x2_promote_low_f32x4(a), h = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1));
    lo = wasm_f64x2_add(lo, wasm_f64x2_mul(l, l));
    hi = wasm_f64x2_add(hi, wasm_f64x2_mul(h, h));
  }
  double s = (wasm_f64x2_extract_lane(lo, 0) + wasm_f64x2_extract_lane(lo, 1)) + (wasm_f64x2_extract_lane(hi, 0) + wasm_f64x2_extract_lane(hi, 1));
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* GMT selection and mask (src/tuning/mask.ts)                                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * A selection segment is a list of parts, each a run of float32 bit patterns somewhere in the
 * heap: parts[2p] is the byte offset of part p and parts[2p + 1] its length. A layer or global
 * segment is the parameter tensors of that scope, read where they are, so nothing is copied.
 * Entries are compared as x & 0x7fffffff: non-negative floats order like their bit patterns,
 * so this orders |x| (NaN above +∞). Those values are below 2^31, so signed SIMD compares order
 * them correctly.
 */
#define PART_PTR(parts, p) ((const uint32_t *)(uintptr_t)(uint32_t)(parts)[2 * (p)])
#define PART_LEN(parts, p) ((parts)[2 * (p) + 1])

/* The select's working memory ("work", allocated by the caller): four 2048-bin histograms, the
 * 16 byte-shuffles of the gather (64 words) and one part descriptor (2 words). */
#define SELECT_HIST_WORDS (4 * 2048)
#define SELECT_TABLE (SELECT_HIST_WORDS)
#define SELECT_SELF (SELECT_TABLE + 64)
#define SELECT_WORK_WORDS (SELECT_SELF + 2)
EXPORT(select_work_words) int select_work_words(void) { return SELECT_WORK_WORDS; }

/** The rank-th smallest of a[0:n) (Hoare partition, median-of-three pivot); permutes a so that
 * a[0:rank) ≤ a[rank] ≤ a(rank:n). For small sets only (the sample, small segments, the last
 * few candidates): its branches mispredict about every other comparison, so larger sets go
 * through range_select. */
static uint32_t quickselect_u32(uint32_t *a, int n, int rank) {
  int lo = 0, hi = n - 1;
  while (hi > lo) {
    uint32_t x = a[lo], y = a[(lo + hi) >> 1], z = a[hi];
    uint32_t pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { uint32_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (rank <= j) hi = j;
    else if (rank >= i) lo = i;
    else return a[rank];
  }
  return a[lo];
}

/** The 16 byte shuffles that pack the selected lanes of 4 (by lane mask) to the front, into
 * work (the module may hold no static data). Returns them. */
static const uint8_t *pack_shuffles(uint32_t *work) {
  uint8_t *table = (uint8_t *)(work + SELECT_TABLE);
  for (int m = 0; m < 16; m++) {
    int k = 0;
    for (int lane = 0; lane < 4; lane++)
      if (m >> lane & 1) { for (int t = 0; t < 4; t++) table[16 * m + 4 * k + t] = (uint8_t)(4 * lane + t); k++; }
    for (; k < 4; k++) for (int t = 0; t < 4; t++) table[16 * m + 4 * k + t] = 0x80;
  }
  return table;
}

/**
 * The r-th smallest (0-based) of the entries of the parts, all known to lie in [lo, hi] (the
 * whole range is lo = 0, hi = 0x7fffffff). A radix select whose digits fit the range: each round
 * counts (u − lo) >> shift into at most 2048 bins (shift the smallest that fits hi − lo), then
 * gathers the answer's bin into scratch (4 lanes at a time, packed by a byte shuffle) and
 * narrows [lo, hi] to that bin; the next round runs over scratch. At most three rounds
 * (2^31 → 2^20 → 2^9 → 1 values).
 *
 * Large rounds count into four histograms, one per i mod 4, summed afterwards: gradient
 * magnitudes crowd a few bins, and with one histogram consecutive increments of the same counter
 * wait on each other through memory. scratch holds as many entries as the parts together and may
 * be the only part itself (the gather never overtakes the read).
 */
static uint32_t range_select(const int32_t *parts, int nparts, uint32_t r, uint32_t lo, uint32_t hi,
                             uint32_t *scratch, uint32_t *work) {
  int32_t *self = (int32_t *)(work + SELECT_SELF);
  uint32_t *h0 = work, *h1 = work + 2048, *h2 = work + 4096, *h3 = work + 6144;
  const uint8_t *table = pack_shuffles(work);
  while (lo < hi) {
    int n = 0;
    for (int p = 0; p < nparts; p++) n += PART_LEN(parts, p);
    /* A handful of entries: clearing and scanning bins would cost more than sorting them out. */
    if (n <= 48 && nparts == 1 && PART_PTR(parts, 0) == scratch) return quickselect_u32(scratch, n, (int)r);
    int shift = 0;
    while (((hi - lo) >> shift) >= 2048) shift++;
    int bins = (int)((hi - lo) >> shift) + 1;
    int four = n >= 16384;
    for (int b = 0; b < bins; b++) h0[b] = 0;
    if (four) for (int b = 0; b < bins; b++) h1[b] = h2[b] = h3[b] = 0;
    for (int p = 0; p < nparts; p++) {
      const uint32_t *x = PART_PTR(parts, p);
      int len = PART_LEN(parts, p), i = 0;
      if (four) {
        for (; i + 4 <= len; i += 4) {
          h0[((x[i] & 0x7fffffffu) - lo) >> shift]++;
          h1[((x[i + 1] & 0x7fffffffu) - lo) >> shift]++;
          h2[((x[i + 2] & 0x7fffffffu) - lo) >> shift]++;
          h3[((x[i + 3] & 0x7fffffffu) - lo) >> shift]++;
        }
      }
      for (; i < len; i++) h0[((x[i] & 0x7fffffffu) - lo) >> shift]++;
    }
    if (four) for (int b = 0; b < bins; b++) h0[b] += h1[b] + h2[b] + h3[b];
    uint32_t bin = 0;
    while (r >= h0[bin]) r -= h0[bin++];
    int c = 0;
    v128_t vlo = wasm_i32x4_splat((int32_t)lo), vbin = wasm_i32x4_splat((int32_t)bin), abs = wasm_i32x4_splat(0x7fffffff);
    for (int p = 0; p < nparts; p++) {
      const uint32_t *x = PART_PTR(parts, p);
      int len = PART_LEN(parts, p), i = 0;
      for (; i + 4 <= len; i += 4) {
        v128_t u = wasm_v128_and(wasm_v128_load(x + i), abs);
        int bits = wasm_i32x4_bitmask(wasm_i32x4_eq(wasm_u32x4_shr(wasm_i32x4_sub(u, vlo), shift), vbin));
        wasm_v128_store(scratch + c, SWIZZLE(u, wasm_v128_load(table + 16 * bits)));
        c += __builtin_popcount((unsigned)bits);
      }
      for (; i < len; i++) {
        uint32_t u = x[i] & 0x7fffffffu;
        scratch[c] = u;
        c += ((u - lo) >> shift) == bin;
      }
    }
    lo += bin << shift;
    if (shift < 31 && lo + ((1u << shift) - 1) < hi) hi = lo + ((1u << shift) - 1);
    self[0] = (int32_t)(uintptr_t)scratch;
    self[1] = c;
    parts = self;
    nparts = 1;
  }
  return lo;
}

/** A 32-bit integer hash (bijective; good avalanche) for the sample positions. */
INLINE uint32_t hash32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352du;
  x ^= x >> 15; x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/* Segments of up to SMALL_N entries are selected by quickselect on a copy; below SAMPLE_MIN_N
 * the radix select runs without a sample. */
#define SMALL_N 1024
#define SAMPLE_MIN_N 4096

/** The sample size for a segment of n entries (0: select without one); see select_abs_parts. */
INLINE int sample_size(int n, float sigmas) {
  if (!(sigmas > 0.0f) || n < SAMPLE_MIN_N) return 0;
  /* s = n^(2/3) / 2: Newton's iteration on the cube root (no libm here), from a power of two
   * within a factor 2 of it. */
  float cr = (float)(1 << ((31 - __builtin_clz((unsigned)n)) / 3));
  for (int it = 0; it < 8; it++) cr = (2.0f * cr + (float)n / (cr * cr)) / 3.0f;
  int s = (int)(0.5f * cr * cr);
  if (s > n / 4) s = n / 4;
  return s > 16384 ? 16384 : s;
}

/**
 * Bounds lo ≤ hi on the rank-th smallest entry from a sample of s entries (into scratch[0:s)),
 * returned as lo | hi << 32 (a pair without memory: the module has no stack). See
 * select_abs_parts for the sample design.
 */
static uint64_t sample_bounds(const int32_t *parts, int n, int rank, int s, float sigmas, uint32_t *scratch) {
  /* s strata of n/s entries (the first n mod s one more); one hashed position in each. */
  int p = 0, pstart = 0, from = 0, step = n / s, extra = n % s;
  for (int j = 0; j < s; j++) {
    int width = step + (j < extra);
    int pos = from + (int)(((uint64_t)hash32((uint32_t)j) * (uint32_t)width) >> 32);
    from += width;
    while (pos >= pstart + PART_LEN(parts, p)) pstart += PART_LEN(parts, p++);
    scratch[j] = PART_PTR(parts, p)[pos - pstart] & 0x7fffffffu;
  }
  float q = (float)rank / (float)n, center = q * (float)s;
  float half = 1.0f + sigmas * __builtin_sqrtf((float)s * q * (1.0f - q));
  int a = (int)(center - half), b = (int)(center + half) + 1;
  if (center - half < 0.0f) a = -1;
  uint32_t lo = 0, hi = 0x7fffffffu;
  if (a >= 0) lo = quickselect_u32(scratch, s, a);
  if (b < s) hi = quickselect_u32(scratch + a + 1, s - a - 1, b - a - 1);
  return (uint64_t)lo | (uint64_t)hi << 32;
}

/**
 * The rank-th smallest (0-based) |x| over the nparts parts (see above): the bit pattern of the
 * exact value, always. info (3 words, or 0) receives how it was found: info[0] = 0 radix select
 * only, 1 the sample's bounds held, 2 they missed and the radix select ran, 3 quickselect on a
 * copy (n ≤ SMALL_N); info[1] = entries gathered between the bounds; info[2] = sample size.
 *
 * With sigmas > 0 and n ≥ SAMPLE_MIN_N, a sample bounds the answer first. One entry is drawn
 * from each of s equal strata of the flat index range (position hashed within its stratum, so
 * row or column structure in a tensor cannot bias it); the sample's order statistics at
 * q·s ∓ (sigmas·√(s·q(1−q)) + 1), q = rank/n, give bounds lo ≤ hi. One SIMD pass over the
 * entries then counts those below lo and gathers those within [lo, hi] (a small fraction:
 * ~2·sigmas·√(q(1−q)/s)). When the count shows the rank lies among the gathered entries, the
 * answer is selected among them alone; otherwise (the sample was unlucky, probability about
 * 2·Φ(−sigmas)) the radix select runs over everything. The sample only decides how much work
 * is done, never the result. s grows like n^(2/3), which balances the cost of the sample (random
 * reads, two quickselects) against that of the gathered set; the factor ½ was the fastest of
 * 0.35–1.4 on the reference model's gradients. s is capped at n/4 and 16,384.
 *
 * scratch holds n entries and must not overlap a part; work holds select_work_words().
 */
EXPORT(select_abs_parts)
uint32_t select_abs_parts(const int32_t *parts, int nparts, int rank, float sigmas, uint32_t *scratch, uint32_t *work, int32_t *info) {
  int n = 0;
  for (int p = 0; p < nparts; p++) n += PART_LEN(parts, p);
  int s = sample_size(n, sigmas);
  if (info) { info[0] = 0; info[1] = 0; info[2] = s; }
  if (n <= SMALL_N) {
    /* Clearing and scanning 2048 bins would dominate: quickselect on a copy. */
    if (info) info[0] = 3;
    int c = 0;
    for (int p = 0; p < nparts; p++)
      for (int i = 0; i < PART_LEN(parts, p); i++) scratch[c++] = PART_PTR(parts, p)[i] & 0x7fffffffu;
    return quickselect_u32(scratch, n, rank);
  }
  if (s == 0) return range_select(parts, nparts, (uint32_t)rank, 0, 0x7fffffffu, scratch, work);
  uint64_t bounds = sample_bounds(parts, n, rank, s, sigmas, scratch);
  uint32_t lo = (uint32_t)bounds, hi = (uint32_t)(bounds >> 32);

  /* Count below lo, gather within [lo, hi]: 4 lanes at a time, packed with a byte shuffle per
   * lane mask. */
  const uint8_t *table = pack_shuffles(work);
  v128_t vlo = wasm_i32x4_splat((int32_t)lo), vhi = wasm_i32x4_splat((int32_t)hi), abs = wasm_i32x4_splat(0x7fffffff);
  v128_t below4 = wasm_i32x4_splat(0);
  int below = 0, c = 0;
  for (int p = 0; p < nparts; p++) {
    const uint32_t *x = PART_PTR(parts, p);
    int len = PART_LEN(parts, p), i = 0;
    for (; i + 4 <= len; i += 4) {
      v128_t u = wasm_v128_and(wasm_v128_load(x + i), abs);
      v128_t lt = wasm_i32x4_lt(u, vlo);
      below4 = wasm_i32x4_sub(below4, lt);
      int bits = ~wasm_i32x4_bitmask(wasm_v128_or(lt, wasm_i32x4_gt(u, vhi))) & 15;
      wasm_v128_store(scratch + c, SWIZZLE(u, wasm_v128_load(table + 16 * bits)));
      c += __builtin_popcount((unsigned)bits);
    }
    for (; i < len; i++) {
      uint32_t u = x[i] & 0x7fffffffu;
      below += u < lo;
      scratch[c] = u;
      c += (u >= lo) & (u <= hi);
    }
  }
  below += wasm_i32x4_extract_lane(below4, 0) + wasm_i32x4_extract_lane(below4, 1) +
           wasm_i32x4_extract_lane(below4, 2) + wasm_i32x4_extract_lane(below4, 3);
  if (info) info[1] = c;
  if (rank >= below && rank < below + c) {
    if (info) info[0] = 1;
    int32_t *self = (int32_t *)(work + SELECT_SELF);
    self[0] = (int32_t)(uintptr_t)scratch;
    self[1] = c;
    return range_select(self, 1, (uint32_t)(rank - below), lo, hi, scratch, work);
  }
  if (info) info[0] = 2;
  return range_select(parts, nparts, (uint32_t)rank, 0, 0x7fffffffu, scratch, work);
}

INLINE void set_bit(uint32_t *words, int b, uint32_t on) {
  words[b >> 5] = (words[b >> 5] & ~(1u << (b & 31))) | (on << (b & 31));
}

/**
 * Bits [off, off + n) of the bitset `words`: bit off + i is 1 iff low ≤ (x[i] & 0x7fffffff) ≤ high.
 * Other bits are left as they are. Returns the number of bits set.
 */
EXPORT(mark_bits)
int mark_bits(const uint32_t *x, int n, uint32_t low, uint32_t high, uint32_t *words, int off) {
  int i = 0, b = off, kept = 0;
  for (; i < n && (b & 31); i++, b++) {
    uint32_t u = x[i] & 0x7fffffffu, keep = (u >= low) & (u <= high);
    set_bit(words, b, keep);
    kept += keep;
  }
  v128_t lo = wasm_i32x4_splat((int32_t)low), hi = wasm_i32x4_splat((int32_t)high), abs = wasm_i32x4_splat(0x7fffffff);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 4) {
      v128_t u = wasm_v128_and(wasm_v128_load(x + i + j), abs);
      w |= (uint32_t)(~wasm_i32x4_bitmask(wasm_v128_or(wasm_i32x4_lt(u, lo), wasm_i32x4_gt(u, hi))) & 15) << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
  for (; i < n; i++, b++) {
    uint32_t u = x[i] & 0x7fffffffu, keep = (u >= low) & (u <= high);
    set_bit(words, b, keep);
    kept += keep;
  }
  return kept;
}

/**
 * GMT's mask (paper eq. 3) for one tensor in one pass: keep_i = low ≤ (score_i bits & 0x7fffffff)
 * ≤ high, written three ways: mask_i = keep_i as 0/1, out_i = g_i·mask_i, and bit off + i of
 * `words` (other bits are left as they are). With low = bits(T_k) > 0 and high = bits(+∞) this is
 * [|score| ≥ T_k], NaN dropped. The product is a real multiplication so that out equals tfjs'
 * `mul(g, mask)` bit for bit (−0 for negative entries that are dropped, NaN stays NaN).
 * Returns the number of entries kept.
 */
EXPORT(mask_apply)
int mask_apply(const uint32_t *score, const float *g, int n, uint32_t low, uint32_t high,
               float *mask, float *out, uint32_t *words, int off) {
  int i = 0, b = off, kept = 0;
  for (; i < n && (b & 31); i++, b++) {
    uint32_t u = score[i] & 0x7fffffffu, keep = (u >= low) & (u <= high);
    mask[i] = keep ? 1.0f : 0.0f;
    out[i] = g[i] * mask[i];
    set_bit(words, b, keep);
    kept += keep;
  }
  v128_t lo = wasm_i32x4_splat((int32_t)low), hi = wasm_i32x4_splat((int32_t)high), abs = wasm_i32x4_splat(0x7fffffff);
  v128_t one = wasm_f32x4_splat(1.0f);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 4) {
      v128_t u = wasm_v128_and(wasm_v128_load(score + i + j), abs);
      v128_t outside = wasm_v128_or(wasm_i32x4_lt(u, lo), wasm_i32x4_gt(u, hi));
      v128_t m = wasm_v128_andnot(one, outside);
      wasm_v128_store(mask + i + j, m);
      wasm_v128_store(out + i + j, wasm_f32x4_mul(wasm_v128_load(g + i + j), m));
      w |= (uint32_t)(~wasm_i32x4_bitmask(outside) & 15) << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
  for (; i < n; i++, b++) {
    uint32_t u = score[i] & 0x7fffffffu, keep = (u >= low) & (u <= high);
    mask[i] = keep ? 1.0f : 0.0f;
    out[i] = g[i] * mask[i];
    set_bit(words, b, keep);
    kept += keep;
  }
  return kept;
}

/** Σ popcount(a[w] & b[w]) over `words` words: the overlap of two masks' bitsets. */
EXPORT(and_popcount)
int and_popcount(const uint32_t *a, const uint32_t *b, int words) {
  int k = 0;
  for (int w = 0; w < words; w++) k += __builtin_popcount(a[w] & b[w]);
  return k;
}
