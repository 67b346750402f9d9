/*
 * gpt-kernels: the compute kernels of one GPT training step (forward and backward), of GMT's
 * select and mask, of AdamW and (native only) of cached decoding. One source, two engines:
 *
 * - wasm: compiled to WebAssembly with 128-bit SIMD by scripts/build-wasm.mjs (clang 19 +
 *   wasm-ld; the committed kernel-lib/wasm/gpt-kernels{,-relaxed}.wasm are its output) and run on the memory of
 *   @tensorflow/tfjs-backend-wasm. The portable engine (browsers, machines without a compiler)
 *   and the reference the native engine is tested against.
 * - native: compiled for the host's vector ISA (AVX-512, AVX2 + FMA, NEON) by the system C
 *   compiler at `npm run setup` (scripts/build-native.mjs), as a Node-API addon
 *   (native-addon.c includes this file) that computes on the same tfjs-wasm memory in place.
 *
 * simd.h maps `vf`/`vi` and their operations onto each ISA; what differs per ISA beyond that
 * (GEMM micro-kernels, the select's compress) sits in #if blocks below.
 *
 * Why a module of our own: tfjs-wasm runs one kernel call per op, ~2,500 calls per update of the
 * reference model, and its fast matmul (XNNPACK) only takes 2-D untransposed products, so the
 * backward pass pays for explicit transposes and the attention for hundreds of tiny tiles. Here
 * every product, transposed or strided, goes through one packed GEMM, and LayerNorm, GELU,
 * softmax and cross-entropy are single passes. The TypeScript side (src/model/fused.ts)
 * orchestrates the calls; tensors stay where tfjs put them.
 *
 * Rules this file keeps, because it imports tfjs' memory instead of owning one:
 * - no static data and no shadow stack in the wasm build (no globals in memory, no address-taken
 *   locals): clang would place them at fixed low addresses that belong to tfjs.
 *   scripts/build-wasm.mjs rejects a build with a data section or a mutable global;
 * - every buffer the wasm build uses, scratch included, is passed in by the caller (allocated
 *   with tfjs' malloc). The native build keeps per-thread scratch of its own.
 *
 * All matrices are row-major float32. Pointers are byte offsets into the shared memory (the
 * native addon adds the memory's base address before calling in).
 * clang 19 for wasm, because it puts constant address offsets into the load/store instructions
 * (`v128.load offset=16`); clang 16 emits a separate i32.add per access, which V8 turns into one
 * more integer instruction per load, and those compete with the multiply-adds for ports.
 */
#include "simd.h"

#ifdef GMT_WASM
#define EXPORT(name) __attribute__((export_name(#name)))
/* Offsets stored in memory (the select's part lists) are pointers as they are. */
#define HEAP_PTR(off) ((uintptr_t)(uint32_t)(off))
#define HEAP_OFF(ptr) ((int32_t)(uintptr_t)(ptr))
#else
/* native-addon.c wraps these; they are not symbols of the addon. */
#define EXPORT(name) static __attribute__((unused))
/* The memory the calling thread's kernels run on (set by the addon before each call). */
static __thread uintptr_t gmt_heap_base;
#define HEAP_PTR(off) (gmt_heap_base + (uint32_t)(off))
#define HEAP_OFF(ptr) ((int32_t)(uint32_t)((uintptr_t)(ptr) - gmt_heap_base))
#endif

/* ------------------------------------------------------------------------------------------ */
/* Vector math                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* SWIZZLE(a, idx) (wasm only): bytes of a picked by idx. i8x16.swizzle must give 0 for an index
 * ≥ 16, which V8 emits as a saturating add before pshufb; the relaxed build's relaxed_swizzle is
 * pshufb alone, and leaves such lanes implementation-defined. The one caller (the select's
 * packing) puts them past the packed entries, where they are never read, so both builds give the
 * same results. */
#ifdef GMT_WASM
#ifdef GMT_RELAXED
#define SWIZZLE(a, b) ((v128_t)__builtin_wasm_relaxed_swizzle_i8x16((__i8x16)(a), (__i8x16)(b)))
#else
#define SWIZZLE(a, b) wasm_i8x16_swizzle(a, b)
#endif
#endif

/* e^x for VW lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 Taylor polynomial (relative
 * error < 2e-7 on that interval), 2^n by building the exponent bits. Inputs are clamped to
 * [-87.3, 88.7] (e^88.7 rounds up to +inf, as it did before). n is rounded by adding 1.5·2^23, so
 * its integer value is in the low mantissa bits (same ties-to-even result as f32x4.nearest): one
 * add instead of V8's expansions of nearest and trunc_sat. pmin/pmax are single min/max
 * instructions; they differ from min/max only for NaN and ±0, which the clamp does not care about. */
INLINE vf exp4(vf x) {
  const vf magic = vf_splat(12582912.0f); /* 1.5·2^23 */
  x = vf_pmin(vf_pmax(x, vf_splat(-87.3f)), vf_splat(88.7f));
  vf t = MADD(x, vf_splat(1.44269504088896341f), magic);
  vf n = vf_sub(t, magic);
  vf r = vf_sub(x, vf_mul(n, vf_splat(0.693359375f)));
  r = vf_sub(r, vf_mul(n, vf_splat(-2.12194440e-4f)));
  vf p = vf_splat(1.0f / 720.0f);
  p = MADD(p, r, vf_splat(1.0f / 120.0f));
  p = MADD(p, r, vf_splat(1.0f / 24.0f));
  p = MADD(p, r, vf_splat(1.0f / 6.0f));
  p = MADD(p, r, vf_splat(0.5f));
  p = MADD(p, r, vf_splat(1.0f));
  p = MADD(p, r, vf_splat(1.0f));
  /* bits(t) = bits(magic) + n, and bits(magic) << 23 wraps to 0, so bits(t) << 23 = n << 23. */
  vi e = vi_add(vi_shl(vf_as_vi(t), 23), vi_splat(127 << 23));
  return vf_mul(p, vi_as_vf(e));
}

INLINE float exp1(float x) { return vf_lane0(exp4(vf_splat(x))); }

/** Lane sum and lane max (see simd.h for the order). */
#define hsum4 vf_hsum
#define hmax4 vf_hmax

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
/* Blocked like GotoBLAS: a K-block of B is packed into NR-column strips, one MR-row panel of A at */
/* a time; the inner loop is two loads of B, broadcasts of A and MR·NR/VW multiply-adds.  */
/* ------------------------------------------------------------------------------------------ */

/* Triangular structure `gemm_tri` may exploit (the causal attention products):
 * TRI_C_LOWER: only C[i][j] with j ≤ i is wanted; strips wholly above the diagonal are
 *              not computed (left as they were);
 * TRI_A_LOWER: op(A)[i][k] = 0 for k > i, so row i only needs k ≤ i;
 * TRI_A_UPPER: op(A)[i][k] = 0 for k < i, so row i only needs k ≥ i.
 * The A modes skip the zero part of K per panel; the skipped entries of A are never read,
 * except inside a panel, where they must hold zeros. */
#define TRI_NONE 0
#define TRI_C_LOWER 1
#define TRI_A_LOWER 2
#define TRI_A_UPPER 3

#ifdef GMT_WASM

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

#else /* native */

/* Micro-tiles: MR rows × NR columns of C in registers (NR/VW vectors a row), so that every step
 * of k issues MR·NR/VW independent multiply-adds: 24 on each ISA, enough to cover the FMA
 * latency times the FMA pipes (AVX-512 on Zen 4/5: 4 cycles × 2 pipes, and 12 chains measured
 * latency-bound there), leaving registers for the B vectors (A comes as broadcast operands).
 * AVX-512: 12×32 (24 of 32 zmm); AVX2: 6×16 (12 of 16 ymm: two FMA pipes × latency 4 = 8 in
 * flight); NEON: 8×12 (24 of 32 q). */
#if defined(GMT_AVX512)
#define MR 12
#define NR 32
#elif defined(GMT_AVX2)
#define MR 6
#define NR 16
#else
#define MR 8
#define NR 12
#endif
#define NV (NR / VW)
#define KC 256

/** Scratch floats `gemm_tri` needs for an output of N columns (packed B of one K block, one
 * packed A panel, one edge tile). */
EXPORT(gemm_scratch_floats) int gemm_scratch_floats(int n) {
  return KC * ((n + NR - 1) / NR) * NR + KC * MR + MR * NR;
}

/** C[0:mv, 0:nv] (+)= packed A panel [kc][MR] · packed B strip [kc][NR]. Rows past mv and
 * columns past nv are computed (from zero padding) and dropped. */
__attribute__((noinline)) static void micro_native(int kc, const float *pa, const float *pb, float *C, int ldc, int mv, int nv, int acc, float *edge) {
  vf c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) c[i][v] = vf_splat(0.0f);
  for (int k = 0; k < kc; k++) {
    vf b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = vf_load(pb + v * VW);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      vf a = vf_splat(pa[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[i][v] = MADD(a, b[v], c[i][v]);
    }
    pb += NR;
    pa += MR;
  }
#ifdef GMT_SELF_TEST_SABOTAGE
  /* A deliberately wrong build (tests only): the loader's self-test must refuse it. */
  c[0][0] = vf_add(c[0][0], vf_splat(0.5f));
#endif
  if (nv == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      if (i >= mv) break;
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float *cp = C + (size_t)i * ldc + v * VW;
        vf x = c[i][v];
        if (acc) x = vf_add(x, vf_load(cp));
        vf_store(cp, x);
      }
    }
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) vf_store(edge + i * NR + v * VW, c[i][v]);
  for (int i = 0; i < mv; i++)
    for (int j = 0; j < nv; j++) {
      float *cp = C + (size_t)i * ldc + j;
      *cp = acc ? edge[i * NR + j] + *cp : edge[i * NR + j];
    }
}

#if defined(GMT_AVX512)
/** In-register transpose of 16 rows of 16 floats. */
INLINE void transpose16(__m512 *r) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) { t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]); t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]); }
  for (int i = 0; i < 4; i++) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]), c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 4; i++) {
      t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0x88);
      t[8 * h + i + 4] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) { r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88); r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd); }
}

/** dst[c·stride + r] = src[r·ld + c] for r < rows (≤ 16), c < cols, and 0 for rows ≤ r < width:
 * the packing of a transposed operand, 16 × 16 blocks at a time. */
static void pack_transposed(const float *src, int ld, int rows, int cols, float *dst, int stride, int width) {
  __mmask16 store = (__mmask16)((1u << width) - 1);
  for (int c0 = 0; c0 < cols; c0 += 16) {
    int cn = cols - c0 < 16 ? cols - c0 : 16;
    __mmask16 load = (__mmask16)((1u << cn) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + (size_t)i * ld + c0) : _mm512_setzero_ps();
    transpose16(r);
    for (int c = 0; c < cn; c++) _mm512_mask_storeu_ps(dst + (size_t)(c0 + c) * stride, store, r[c]);
  }
}
#elif defined(GMT_AVX2)
/** In-register transpose of 8 rows of 8 floats. */
INLINE void transpose8(__m256 *r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) { t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]); t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); }
  for (int h = 0; h < 2; h++) {
    u[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) { r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20); r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31); }
}

/** Lanes 0 .. n−1 set (as maskload/maskstore read them). */
INLINE __m256i lanes_below(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }

/** dst[c·stride + r] = src[r·ld + c] for r < rows (≤ 8), c < cols, and 0 for rows ≤ r < width
 * (width ≤ stride): the packing of a transposed operand, 8 × 8 blocks at a time (AVX-512's
 * pack_transposed). A masked store is slow on AMD cores, so where width < 8 each column is
 * stored whole, in order, the next one overwriting what spilled past its width; the last
 * column, which nothing follows, is stored lane by lane. */
static void pack_transposed(const float *src, int ld, int rows, int cols, float *dst, int stride, int width) {
  for (int c0 = 0; c0 < cols; c0 += 8) {
    int cn = cols - c0 < 8 ? cols - c0 : 8;
    __m256i load = lanes_below(cn);
    __m256 r[8];
    for (int i = 0; i < 8; i++)
      r[i] = i >= rows ? _mm256_setzero_ps() : cn == 8 ? _mm256_loadu_ps(src + (size_t)i * ld + c0) : _mm256_maskload_ps(src + (size_t)i * ld + c0, load);
    transpose8(r);
    int whole = width == 8 || c0 + cn < cols ? cn : cn - 1;
    for (int c = 0; c < whole; c++) _mm256_storeu_ps(dst + (size_t)(c0 + c) * stride, r[c]);
    if (whole < cn) {
      float last[8];
      _mm256_storeu_ps(last, r[cn - 1]);
      for (int i = 0; i < width; i++) dst[(size_t)(c0 + cn - 1) * stride + i] = last[i];
    }
  }
}
#endif

/** Packs op(B)[k0 : k0+kc, strip s] into d ([kc][NR], zero past N). */
static void pack_b_strip(const float *B, int ldb, int tb, int N, int k0, int kc, int s, float *d) {
  int j0 = s * NR, nv = N - j0 < NR ? N - j0 : NR;
  if (!tb && nv == NR) {
    for (int k = 0; k < kc; k++) {
      const float *src = B + (size_t)(k0 + k) * ldb + j0;
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) vf_store(d + k * NR + v * VW, vf_load(src + v * VW));
    }
  } else if (tb) {
    /* op(B)[k][j] = B[j·ldb + k]: the strip's rows of B, transposed. */
#if defined(GMT_AVX512) || defined(GMT_AVX2)
    for (int h = 0; h < NR; h += VW) {
      int rows = nv - h < 0 ? 0 : nv - h > VW ? VW : nv - h;
      pack_transposed(B + (size_t)(j0 + h) * ldb + k0, ldb, rows, kc, d + h, NR, VW);
    }
#else
    for (int j = 0; j < NR; j++) {
      if (j < nv) {
        const float *r = B + (size_t)(j0 + j) * ldb + k0;
        for (int k = 0; k < kc; k++) d[k * NR + j] = r[k];
      } else {
        for (int k = 0; k < kc; k++) d[k * NR + j] = 0.0f;
      }
    }
#endif
  } else {
    for (int k = 0; k < kc; k++) {
      const float *src = B + (size_t)(k0 + k) * ldb + j0;
      for (int j = 0; j < NR; j++) d[k * NR + j] = j < nv ? src[j] : 0.0f;
    }
  }
}

/** Packs op(A)[rows i0 : i0+mv, k0+kb : k0+ke] into packA ([ke−kb][MR], zero past mv). */
static void pack_a_panel(const float *A, int lda, int ta, int i0, int mv, int k0, int kb, int ke, float *packA) {
  if (ta) {
#if defined(GMT_AVX512)
    __mmask16 load = (__mmask16)((1u << mv) - 1), store = (__mmask16)((1u << MR) - 1);
    for (int k = kb; k < ke; k++)
      _mm512_mask_storeu_ps(packA + (k - kb) * MR, store, _mm512_maskz_loadu_ps(load, A + (size_t)(k0 + k) * lda + i0));
#else
    for (int k = kb; k < ke; k++) {
      const float *a = A + (size_t)(k0 + k) * lda + i0;
      float *o = packA + (k - kb) * MR;
      for (int i = 0; i < MR; i++) o[i] = i < mv ? a[i] : 0.0f;
    }
#endif
  } else {
#if defined(GMT_AVX512) || defined(GMT_AVX2)
    pack_transposed(A + (size_t)i0 * lda + k0 + kb, lda, mv, ke - kb, packA, MR, MR);
#else
    for (int i = 0; i < MR; i++) {
      if (i < mv) {
        const float *a = A + (size_t)(i0 + i) * lda + k0;
        for (int k = kb; k < ke; k++) packA[(k - kb) * MR + i] = a[k];
      } else {
        for (int k = kb; k < ke; k++) packA[(k - kb) * MR + i] = 0.0f;
      }
    }
#endif
  }
}

/**
 * The part of C = (acc ? C : 0) + op(A)·op(B) in NR-column strips [s0, s1) and MR-row panels
 * [p0, p1), with the triangular modes of gemm_tri. Every entry of C is computed the same way
 * whichever part it falls in (same K blocks, same order of multiply-adds), so splitting C into
 * parts among threads does not change a bit of the result. scratch holds gemm_scratch_floats of
 * (s1 − s0)·NR columns.
 */
static void gemm_part(const float *A, int lda, int ta, const float *B, int ldb, int tb, float *C, int ldc,
                      int M, int N, int K, int acc, float *scratch, int tri, int s0, int s1, int p0, int p1) {
  if (M <= 0 || N <= 0 || s1 <= s0 || p1 <= p0) return;
  if (K <= 0) {
    if (!acc)
      for (int i = p0 * MR; i < M && i < p1 * MR; i++)
        for (int j = s0 * NR; j < N && j < s1 * NR; j++) C[(size_t)i * ldc + j] = 0.0f;
    return;
  }
  float *packB = scratch;
  float *packA = scratch + (size_t)KC * (s1 - s0) * NR;
  float *edge = packA + KC * MR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kc = K - k0 < KC ? K - k0 : KC;
    int accNow = acc || k0 > 0;
    for (int s = s0; s < s1; s++) pack_b_strip(B, ldb, tb, N, k0, kc, s, packB + (size_t)(s - s0) * KC * NR);
    for (int p = p0; p < p1; p++) {
      int i0 = p * MR, mv = M - i0 < MR ? M - i0 : MR;
      int kb = 0, ke = kc;
      if (tri == TRI_A_LOWER && i0 + mv - k0 < ke) ke = i0 + mv - k0;
      if (tri == TRI_A_UPPER && i0 - k0 > kb) kb = i0 - k0;
      if (ke <= kb) {
        if (!accNow)
          for (int i = 0; i < mv; i++)
            for (int j = s0 * NR; j < N && j < s1 * NR; j++) C[(size_t)(i0 + i) * ldc + j] = 0.0f;
        continue;
      }
      pack_a_panel(A, lda, ta, i0, mv, k0, kb, ke, packA);
      for (int s = s0; s < s1; s++) {
        int j0 = s * NR, nv = N - j0 < NR ? N - j0 : NR;
        if (tri == TRI_C_LOWER && j0 > i0 + mv - 1) break;
        const float *pb = packB + ((size_t)(s - s0) * KC + kb) * NR;
        micro_native(ke - kb, packA, pb, C + (size_t)i0 * ldc + j0, ldc, mv, nv, accNow, edge);
      }
    }
  }
}

static void gemm_tri(const float *A, int lda, int ta, const float *B, int ldb, int tb, float *C, int ldc,
                     int M, int N, int K, int acc, float *scratch, int tri) {
  gemm_part(A, lda, ta, B, ldb, tb, C, ldc, M, N, K, acc, scratch, tri, 0, (N + NR - 1) / NR, 0, (M + MR - 1) / MR);
}

#endif

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
  vf va = vf_splat(a), vb = vf_splat(b);
  int i = 0;
  for (; i + VW <= n; i += VW)
    vf_store(dst + i, vf_add(vf_mul(va, vf_load(dst + i)), vf_mul(vb, vf_load(src + i))));
  for (; i < n; i++) dst[i] = a * dst[i] + b * src[i];
}

/** dst[i] = a[i] (+ b[i] when b ≠ 0). */
EXPORT(copy_add)
void copy_add(float *dst, const float *a, const float *b, int n) {
  int i = 0;
  for (; i + VW <= n; i += VW) {
    vf v = vf_load(a + i);
    if (b) v = vf_add(v, vf_load(b + i));
    vf_store(dst + i, v);
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
  int dv = d & ~(VW - 1);
  for (int r = 0; r < N; r++) {
    const float *xr = x + (size_t)r * d;
    float *yr = y + (size_t)r * d;
    vf acc = vf_splat(0.0f);
    for (int c = 0; c < dv; c += VW) acc = vf_add(acc, vf_load(xr + c));
    float s = hsum4(acc);
    for (int c = dv; c < d; c++) s += xr[c];
    float m = s / d;
    vf vm = vf_splat(m);
    acc = vf_splat(0.0f);
    for (int c = 0; c < dv; c += VW) { vf t = vf_sub(vf_load(xr + c), vm); acc = MADD(t, t, acc); }
    float var = hsum4(acc);
    for (int c = dv; c < d; c++) { float t = xr[c] - m; var += t * t; }
    float rs = 1.0f / __builtin_sqrtf(var / d + eps);
    mean[r] = m;
    rstd[r] = rs;
    vf vr = vf_splat(rs);
    for (int c = 0; c < dv; c += VW)
      vf_store(yr + c, MADD(vf_mul(vf_sub(vf_load(xr + c), vm), vr), vf_load(g + c), vf_load(b + c)));
    for (int c = dv; c < d; c++) yr[c] = (xr[c] - m) * rs * g[c] + b[c];
  }
}

/** dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·γ;  dγ += Σ dy·x̂;  dβ += Σ dy. */
EXPORT(layernorm_bwd)
void layernorm_bwd(const float *dy, const float *x, const float *mean, const float *rstd, const float *g,
                   float *dx, float *dg, float *db, int N, int d) {
  int dv = d & ~(VW - 1);
  for (int r = 0; r < N; r++) {
    const float *dyr = dy + (size_t)r * d, *xr = x + (size_t)r * d;
    float *dxr = dx + (size_t)r * d;
    float m = mean[r], rs = rstd[r];
    vf vm = vf_splat(m), vr = vf_splat(rs), a1 = vf_splat(0.0f), a2 = a1;
    for (int c = 0; c < dv; c += VW) {
      vf dyv = vf_load(dyr + c);
      vf xh = vf_mul(vf_sub(vf_load(xr + c), vm), vr), dxh = vf_mul(dyv, vf_load(g + c));
      a1 = vf_add(a1, dxh);
      a2 = MADD(dxh, xh, a2);
      vf_store(dg + c, MADD(dyv, xh, vf_load(dg + c)));
      vf_store(db + c, vf_add(vf_load(db + c), dyv));
    }
    float s1 = hsum4(a1), s2 = hsum4(a2);
    for (int c = dv; c < d; c++) {
      float xh = (xr[c] - m) * rs, dxh = dyr[c] * g[c];
      s1 += dxh;
      s2 += dxh * xh;
      dg[c] += dyr[c] * xh;
      db[c] += dyr[c];
    }
    s1 /= d;
    s2 /= d;
    vf v1 = vf_splat(s1), v2 = vf_splat(s2);
    for (int c = 0; c < dv; c += VW) {
      vf xh = vf_mul(vf_sub(vf_load(xr + c), vm), vr);
      vf t = vf_sub(vf_sub(vf_mul(vf_load(dyr + c), vf_load(g + c)), v1), vf_mul(xh, v2));
      vf_store(dxr + c, MADD(vr, t, vf_load(dxr + c)));
    }
    for (int c = dv; c < d; c++) {
      float xh = (xr[c] - m) * rs;
      dxr[c] += rs * (dyr[c] * g[c] - s1 - xh * s2);
    }
  }
}

#ifdef GMT_NATIVE
/** layernorm_bwd in two passes that threads can split without changing a bit: dx for rows
 * [r0, r1) (each row on its own), then dγ, dβ for columns [c0, c1) summed over all rows in order
 * (the same multiply-adds in the same order as the one-pass kernel). */
static void layernorm_bwd_dx(const float *dy, const float *x, const float *mean, const float *rstd, const float *g,
                             float *dx, int d, int r0, int r1) {
  int dv = d & ~(VW - 1);
  for (int r = r0; r < r1; r++) {
    const float *dyr = dy + (size_t)r * d, *xr = x + (size_t)r * d;
    float *dxr = dx + (size_t)r * d;
    float m = mean[r], rs = rstd[r];
    vf vm = vf_splat(m), vr = vf_splat(rs), a1 = vf_splat(0.0f), a2 = a1;
    for (int c = 0; c < dv; c += VW) {
      vf xh = vf_mul(vf_sub(vf_load(xr + c), vm), vr), dxh = vf_mul(vf_load(dyr + c), vf_load(g + c));
      a1 = vf_add(a1, dxh);
      a2 = MADD(dxh, xh, a2);
    }
    float s1 = hsum4(a1), s2 = hsum4(a2);
    for (int c = dv; c < d; c++) {
      float xh = (xr[c] - m) * rs, dxh = dyr[c] * g[c];
      s1 += dxh;
      s2 += dxh * xh;
    }
    s1 /= d;
    s2 /= d;
    vf v1 = vf_splat(s1), v2 = vf_splat(s2);
    for (int c = 0; c < dv; c += VW) {
      vf xh = vf_mul(vf_sub(vf_load(xr + c), vm), vr);
      vf t = vf_sub(vf_sub(vf_mul(vf_load(dyr + c), vf_load(g + c)), v1), vf_mul(xh, v2));
      vf_store(dxr + c, MADD(vr, t, vf_load(dxr + c)));
    }
    for (int c = dv; c < d; c++) {
      float xh = (xr[c] - m) * rs;
      dxr[c] += rs * (dyr[c] * g[c] - s1 - xh * s2);
    }
  }
}

static void layernorm_bwd_dgb(const float *dy, const float *x, const float *mean, const float *rstd,
                              float *dg, float *db, int N, int d, int c0, int c1) {
  int c = c0;
  for (; c + VW <= c1; c += VW) {
    vf ag = vf_load(dg + c), ab = vf_load(db + c);
    for (int r = 0; r < N; r++) {
      vf dyv = vf_load(dy + (size_t)r * d + c);
      vf xh = vf_mul(vf_sub(vf_load(x + (size_t)r * d + c), vf_splat(mean[r])), vf_splat(rstd[r]));
      ag = MADD(dyv, xh, ag);
      ab = vf_add(ab, dyv);
    }
    vf_store(dg + c, ag);
    vf_store(db + c, ab);
  }
  for (; c < c1; c++) {
    float ag = dg[c], ab = db[c];
    for (int r = 0; r < N; r++) {
      float dyv = dy[(size_t)r * d + c], xh = (x[(size_t)r * d + c] - mean[r]) * rstd[r];
      ag = __builtin_fmaf(dyv, xh, ag);
      ab += dyv;
    }
    dg[c] = ag;
    db[c] = ab;
  }
}
#endif

/* GELU, tanh form written as x·σ(2z), z = √(2/π)(x + 0.044715x³): the same function as
 * 0.5x(1 + tanh z). */
#define GELU_2C 1.5957691216057308f          /* 2·√(2/π) */
#define GELU_2CK (1.5957691216057308f * 0.044715f)

/** σ(2z) for 4 lanes, given x and x². */
INLINE vf gelu_sigmoidv(vf v, vf v2) {
  vf one = vf_splat(1.0f);
  /* −u with negated constants (bit-identical to negating u; saves V8's sign-mask sequence). */
  vf nu = vf_mul(v, MADD(v2, vf_splat(-GELU_2CK), vf_splat(-GELU_2C)));
  return vf_div(one, vf_add(one, exp4(nu)));
}

EXPORT(gelu_fwd)
void gelu_fwd(const float *x, float *y, int n) {
  int i = 0;
  for (; i + VW <= n; i += VW) {
    vf v = vf_load(x + i), v2 = vf_mul(v, v);
    vf s = gelu_sigmoidv(v, v2);
    vf_store(y + i, vf_mul(v, s));
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
  for (; i + VW <= n; i += VW) {
    vf v = vf_load(x + i), v2 = vf_mul(v, v);
    vf s = gelu_sigmoidv(v, v2);
    vf dz = MADD(v2, vf_splat(3.0f * GELU_2CK), vf_splat(GELU_2C));
    vf t = vf_mul(vf_mul(v, vf_sub(s, vf_mul(s, s))), dz);
    vf_store(dx + i, vf_mul(vf_load(dy + i), vf_add(s, t)));
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
#if defined(GMT_AVX512)
  /* Masked tails: a row's last partial vector stays in the vector unit (a scalar tail would pay a
   * whole vector e^x per entry). */
  vf vs = vf_splat(scale), zero = vf_splat(0.0f);
  for (int i = 0; i < T; i++) {
    float *row = S + (size_t)i * T;
    int n = i + 1, j;
    vf vmax = vf_splat(row[0]);
    for (j = 0; j < n; j += VW) {
      __mmask16 k = (__mmask16)(n - j >= VW ? 0xffff : (1u << (n - j)) - 1);
      vmax = _mm512_mask_max_ps(vmax, k, vmax, _mm512_maskz_loadu_ps(k, row + j));
    }
    float m = _mm512_reduce_max_ps(vmax) * scale;
    vf vm = vf_splat(m), acc = zero;
    for (j = 0; j < n; j += VW) {
      __mmask16 k = (__mmask16)(n - j >= VW ? 0xffff : (1u << (n - j)) - 1);
      vf e = _mm512_maskz_mov_ps(k, exp4(vf_sub(vf_mul(_mm512_maskz_loadu_ps(k, row + j), vs), vm)));
      _mm512_mask_storeu_ps(row + j, k, e);
      acc = vf_add(acc, e);
    }
    vf inv = vf_splat(1.0f / hsum4(acc));
    for (j = 0; j < n; j += VW) {
      __mmask16 k = (__mmask16)(n - j >= VW ? 0xffff : (1u << (n - j)) - 1);
      _mm512_mask_storeu_ps(row + j, k, vf_mul(_mm512_maskz_loadu_ps(k, row + j), inv));
    }
    for (j = n; j < T; j++) row[j] = 0.0f;
  }
#else
  vf vs = vf_splat(scale);
  for (int i = 0; i < T; i++) {
    float *row = S + (size_t)i * T;
    int n = i + 1, j = 0;
    vf vmax = vf_splat(row[0]);
    for (; j + VW <= n; j += VW) vmax = vf_pmax(vmax, vf_load(row + j));
    float m = hmax4(vmax);
    for (; j < n; j++) if (row[j] > m) m = row[j];
    m *= scale; /* scale > 0, so max(row)·scale = max(row·scale) */
    vf vm = vf_splat(m), acc = vf_splat(0.0f);
    for (j = 0; j + VW <= n; j += VW) {
      vf e = exp4(vf_sub(vf_mul(vf_load(row + j), vs), vm));
      vf_store(row + j, e);
      acc = vf_add(acc, e);
    }
    float sum = hsum4(acc);
    for (; j < n; j++) { float e = exp1(row[j] * scale - m); row[j] = e; sum += e; }
    vf inv = vf_splat(1.0f / sum);
    for (j = 0; j + VW <= n; j += VW) vf_store(row + j, vf_mul(vf_load(row + j), inv));
    for (; j < n; j++) row[j] *= vf_lane0(inv);
    for (; j < T; j++) row[j] = 0.0f;
  }
#endif
}

/** attention_fwd for one (sequence b, head h). */
INLINE void attention_fwd_one(const float *qkv, float *out, float *P, int b, int h, int T, int H, int hd, int d, int ld, float scale, float *scratch) {
  const float *q = qkv + (size_t)b * T * ld + h * hd;
  float *p = P + ((size_t)b * H + h) * T * T;
  gemm_tri(q, ld, 0, q + d, ld, 1, p, T, T, T, hd, 0, scratch, TRI_C_LOWER);
  causal_softmax(p, T, scale);
  gemm_tri(p, T, 0, q + 2 * d, ld, 0, out + (size_t)b * T * d + h * hd, d, T, hd, T, 0, scratch, TRI_A_LOWER);
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
    for (int h = 0; h < H; h++) attention_fwd_one(qkv, out, P, b, h, T, H, hd, d, ld, scale, scratch);
}

#ifdef GMT_NATIVE
/** attention_fwd for the (sequence, head) pairs [p0, p1) of the B·H, sequence-major. */
static void attention_fwd_pairs(const float *qkv, float *out, float *P, int T, int H, int hd, float *scratch, int p0, int p1) {
  int d = H * hd, ld = 3 * d;
  float scale = 1.0f / __builtin_sqrtf((float)hd);
  for (int p = p0; p < p1; p++) attention_fwd_one(qkv, out, P, p / H, p % H, T, H, hd, d, ld, scale, scratch);
}
#endif

/** attention_bwd for one (sequence b, head h); dP [T, T] is its scratch. */
INLINE void attention_bwd_one(const float *qkv, const float *P, const float *dout, float *dqkv, float *dP,
                              int b, int h, int T, int H, int hd, int d, int ld, float scale, float *scratch) {
  const float *q = qkv + (size_t)b * T * ld + h * hd;
  const float *p = P + ((size_t)b * H + h) * T * T;
  const float *dO = dout + (size_t)b * T * d + h * hd;
  float *dq = dqkv + (size_t)b * T * ld + h * hd;
  gemm_tri(p, T, 1, dO, d, 0, dq + 2 * d, ld, T, hd, T, 0, scratch, TRI_A_UPPER);
  gemm_tri(dO, d, 0, q + 2 * d, ld, 1, dP, T, T, T, hd, 0, scratch, TRI_C_LOWER);
  /* dP holds garbage above the diagonal (skipped strips); dS there is exactly 0. */
#if defined(GMT_AVX512)
  for (int i = 0; i < T; i++) {
    const float *pr = p + (size_t)i * T;
    float *dr = dP + (size_t)i * T;
    int n = i + 1, j;
    vf acc = vf_splat(0.0f);
    for (j = 0; j < n; j += VW) {
      __mmask16 k = (__mmask16)(n - j >= VW ? 0xffff : (1u << (n - j)) - 1);
      acc = MADD(_mm512_maskz_loadu_ps(k, dr + j), _mm512_maskz_loadu_ps(k, pr + j), acc);
    }
    vf vs = vf_splat(hsum4(acc)), vsc = vf_splat(scale);
    for (j = 0; j < n; j += VW) {
      __mmask16 k = (__mmask16)(n - j >= VW ? 0xffff : (1u << (n - j)) - 1);
      _mm512_mask_storeu_ps(dr + j, k, vf_mul(vf_mul(_mm512_maskz_loadu_ps(k, pr + j), vf_sub(_mm512_maskz_loadu_ps(k, dr + j), vs)), vsc));
    }
    for (j = n; j < T; j++) dr[j] = 0.0f;
  }
#else
  for (int i = 0; i < T; i++) {
    const float *pr = p + (size_t)i * T;
    float *dr = dP + (size_t)i * T;
    int n = i + 1, j = 0;
    vf acc = vf_splat(0.0f);
    for (; j + VW <= n; j += VW) acc = MADD(vf_load(dr + j), vf_load(pr + j), acc);
    float s = hsum4(acc);
    for (; j < n; j++) s += dr[j] * pr[j];
    vf vs = vf_splat(s), vsc = vf_splat(scale);
    for (j = 0; j + VW <= n; j += VW)
      vf_store(dr + j, vf_mul(vf_mul(vf_load(pr + j), vf_sub(vf_load(dr + j), vs)), vsc));
    for (; j < n; j++) dr[j] = pr[j] * (dr[j] - s) * scale;
    for (; j < T; j++) dr[j] = 0.0f;
  }
#endif
  gemm_tri(dP, T, 0, q + d, ld, 0, dq, ld, T, hd, T, 0, scratch, TRI_A_LOWER);
  gemm_tri(dP, T, 1, q, ld, 0, dq + d, ld, T, hd, T, 0, scratch, TRI_A_UPPER);
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
    for (int h = 0; h < H; h++) attention_bwd_one(qkv, P, dout, dqkv, dP, b, h, T, H, hd, d, ld, scale, scratch);
}

#ifdef GMT_NATIVE
/** attention_bwd for the pairs [p0, p1); dP is this thread's [T, T] scratch. */
static void attention_bwd_pairs(const float *qkv, const float *P, const float *dout, float *dqkv, float *dP,
                                int T, int H, int hd, float *scratch, int p0, int p1) {
  int d = H * hd, ld = 3 * d;
  float scale = 1.0f / __builtin_sqrtf((float)hd);
  for (int p = p0; p < p1; p++) attention_bwd_one(qkv, P, dout, dqkv, dP, p / H, p % H, T, H, hd, d, ld, scale, scratch);
}
#endif

/** x[n] = wte[tokens[n]] + wpe[n mod T] for n < B·T. */
EXPORT(embed_fwd)
void embed_fwd(const int32_t *tokens, const float *wte, const float *wpe, float *x, int BT, int T, int d) {
  for (int n = 0; n < BT; n++) {
    const float *te = wte + (size_t)tokens[n] * d, *pe = wpe + (size_t)(n % T) * d;
    float *xr = x + (size_t)n * d;
    for (int c = 0; c < d; c++) xr[c] = te[c] + pe[c];
  }
}

#ifdef GMT_NATIVE
/** embed_fwd for the rows [r0, r1). */
static void embed_fwd_rows(const int32_t *tokens, const float *wte, const float *wpe, float *x, int T, int d, int r0, int r1) {
  for (int n = r0; n < r1; n++) {
    const float *te = wte + (size_t)tokens[n] * d, *pe = wpe + (size_t)(n % T) * d;
    float *xr = x + (size_t)n * d;
    for (int c = 0; c < d; c++) xr[c] = te[c] + pe[c];
  }
}
#endif

/** dwte[tokens[n]] += dx[n], dwpe[n mod T] += dx[n] (the caller zeroes both first). */
EXPORT(embed_bwd)
void embed_bwd(const int32_t *tokens, const float *dx, float *dwte, float *dwpe, int BT, int T, int d) {
  for (int n = 0; n < BT; n++) {
    float *te = dwte + (size_t)tokens[n] * d, *pe = dwpe + (size_t)(n % T) * d;
    const float *xr = dx + (size_t)n * d;
    for (int c = 0; c < d; c++) { te[c] += xr[c]; pe[c] += xr[c]; }
  }
}

#ifdef GMT_NATIVE
/** embed_bwd for the columns [c0, c1) of every row, rows in order: the sums per entry are the
 * same whichever columns a thread takes. */
static void embed_bwd_cols(const int32_t *tokens, const float *dx, float *dwte, float *dwpe, int BT, int T, int d, int c0, int c1) {
  for (int n = 0; n < BT; n++) {
    float *te = dwte + (size_t)tokens[n] * d, *pe = dwpe + (size_t)(n % T) * d;
    const float *xr = dx + (size_t)n * d;
    for (int c = c0; c < c1; c++) { te[c] += xr[c]; pe[c] += xr[c]; }
  }
}
#endif

/* One row n of xent_fwd_bwd: `loss -= w·log p(target)` and the row's gradient written over its
 * logits. A macro, not a function, so that the wasm build keeps the instruction order it had
 * before the native engine shared this source. */
#define XENT_ROW(logits, targets, w, n, V, denom, loss) do { \
    float *row = (logits) + (size_t)(n) * (V); \
    int t = (targets)[n]; \
    float m = row[0], lt = row[t]; \
    for (int v = 1; v < (V); v++) if (row[v] > m) m = row[v]; \
    float s = 0.0f; \
    for (int v = 0; v < (V); v++) { float e = exp1(row[v] - m); row[v] = e; s += e; } \
    float pt = row[t] / s; \
    float logpt = (lt - m) - log1f_pos(s); \
    loss -= (double)(w)[n] * logpt; \
    float scale = (float)((w)[n] / (denom)), inv = 1.0f / s; \
    for (int v = 0; v < (V); v++) row[v] = row[v] * inv * scale; \
    row[t] = (pt - 1.0f) * scale; \
  } while (0)

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
  for (int n = 0; n < N; n++) XENT_ROW(logits, targets, w, n, V, denom, loss);
  return (float)(loss / denom);
}

#ifdef GMT_NATIVE
/** xent_fwd_bwd's rows [r0, r1); terms[n] = −w·log p(target) of row n, summed by the caller in
 * row order (so the loss does not depend on how rows were split among threads). */
static void xent_rows(float *logits, const int32_t *targets, const float *w, int V, double denom, double *terms, int r0, int r1) {
  for (int n = r0; n < r1; n++) {
    double loss = 0.0;
    XENT_ROW(logits, targets, w, n, V, denom, loss);
    terms[n] = loss;
  }
}
#endif

#ifdef GMT_NATIVE
/* ------------------------------------------------------------------------------------------ */
/* Cached decoding (native only: the wasm engine generates with tfjs ops, as its stored runs did) */
/* ------------------------------------------------------------------------------------------ */

/**
 * Key/value cache writes: for n rows of qkv [n, 3d] (rows `ld` floats apart), row r's key and
 * value go to position pos[r] of cache row slot[r]: kcache/vcache are [slots][L][d].
 */
static void kv_store(const float *qkv, int ld, float *kcache, float *vcache, const int32_t *slot, const int32_t *pos, int n, int d, int L) {
  for (int r = 0; r < n; r++) {
    const float *src = qkv + (size_t)r * ld;
    size_t o = ((size_t)slot[r] * L + pos[r]) * d;
    for (int c = 0; c < d; c++) { kcache[o + c] = src[d + c]; vcache[o + c] = src[2 * d + c]; }
  }
}

/**
 * One new token's attention for rows [r0, r1): row r's query (qkv [n, 3d]) over positions
 * 0..pos[r] of its cache row slot[r], into out [n, d]; scores is scratch of L floats.
 * softmax(q·kᵀ/√hd)·v per head, in the order of the training kernels' causal softmax.
 */
static void attention_decode_rows(const float *qkv, const float *kcache, const float *vcache, float *out, const int32_t *slot, const int32_t *pos,
                                  int H, int hd, int L, float *scores, int r0, int r1) {
  int d = H * hd;
  float scale = 1.0f / __builtin_sqrtf((float)hd);
  for (int r = r0; r < r1; r++) {
    const float *q = qkv + (size_t)r * 3 * d;
    const float *K = kcache + (size_t)slot[r] * L * d, *Vc = vcache + (size_t)slot[r] * L * d;
    int n = pos[r] + 1;
    for (int h = 0; h < H; h++) {
      const float *qh = q + h * hd;
      float m = -3.4e38f;
      for (int t = 0; t < n; t++) {
        const float *kt = K + (size_t)t * d + h * hd;
        int j = 0;
        vf acc = vf_splat(0.0f);
        for (; j + VW <= hd; j += VW) acc = MADD(vf_load(qh + j), vf_load(kt + j), acc);
        float s = hsum4(acc);
        for (; j < hd; j++) s += qh[j] * kt[j];
        scores[t] = s;
        if (s > m) m = s;
      }
      m *= scale;
      float sum = 0.0f;
      for (int t = 0; t < n; t++) { float e = exp1(scores[t] * scale - m); scores[t] = e; sum += e; }
      float inv = 1.0f / sum;
      float *o = out + (size_t)r * d + h * hd;
      for (int j = 0; j < hd; j++) o[j] = 0.0f;
      for (int t = 0; t < n; t++) {
        const float *vt = Vc + (size_t)t * d + h * hd;
        float p = scores[t] * inv;
        int j = 0;
        vf vp = vf_splat(p);
        for (; j + VW <= hd; j += VW) vf_store(o + j, MADD(vp, vf_load(vt + j), vf_load(o + j)));
        for (; j < hd; j++) o[j] += p * vt[j];
      }
    }
  }
}

/** Index of the largest of each row of x [n, V] (the first on ties), into idx. */
static void argmax_rows(const float *x, int V, int32_t *idx, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const float *row = x + (size_t)r * V;
    int best = 0;
    float m = row[0];
    for (int v = 1; v < V; v++) if (row[v] > m) { m = row[v]; best = v; }
    idx[r] = best;
  }
}
#endif

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
  vf vb1 = vf_splat(b1), vomb1 = vf_splat(omb1), vb2 = vf_splat(b2), vomb2 = vf_splat(omb2);
  vf vc1 = vf_splat(c1), vc2 = vf_splat(c2), veps = vf_splat(eps), vlr = vf_splat(lr), vwd = vf_splat(wd);
  for (; i + VW <= n; i += VW) {
    vf gi = vf_load(g + i), th = vf_load(theta + i);
    vf mi = vf_add(vf_mul(vf_load(m + i), vb1), vf_mul(gi, vomb1));
    vf vn = vf_add(vf_mul(vf_load(v + i), vb2), vf_mul(vf_mul(gi, gi), vomb2));
    vf_store(m_out + i, mi);
    vf_store(v_out + i, vn);
    vf d = vf_div(vf_mul(mi, vc1), vf_add(vf_sqrt(vf_mul(vn, vc2)), veps));
    if (decay) d = vf_add(d, vf_mul(th, vwd));
    d = vf_mul(d, vlr);
    if (has_mask) d = vf_mul(d, vf_load(mask + i));
    vf_store(theta_out + i, vf_sub(th, d));
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
#ifdef GMT_WASM
EXPORT(sum_squares)
double sum_squares(const float *x, int n) {
  vf lo = wasm_f64x2_splat(0.0), hi = wasm_f64x2_splat(0.0);
  int i = 0;
  for (; i + VW <= n; i += VW) {
    vf a = vf_load(x + i);
    vf l = wasm_f64x2_promote_low_f32x4(a), h = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1));
    lo = wasm_f64x2_add(lo, wasm_f64x2_mul(l, l));
    hi = wasm_f64x2_add(hi, wasm_f64x2_mul(h, h));
  }
  double s = (wasm_f64x2_extract_lane(lo, 0) + wasm_f64x2_extract_lane(lo, 1)) + (wasm_f64x2_extract_lane(hi, 0) + wasm_f64x2_extract_lane(hi, 1));
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}
#else
/* Native: chunks of SUMSQ_CHUNK entries, each summed in double over VW lanes and added in chunk
 * order, so the result is the same for any split of the chunks among threads. */
#define SUMSQ_CHUNK 4096
static double sum_squares_chunk(const float *x, int n) {
  double lane[VW];
  for (int l = 0; l < VW; l++) lane[l] = 0.0;
  int i = 0;
  for (; i + VW <= n; i += VW)
    for (int l = 0; l < VW; l++) lane[l] += (double)x[i + l] * x[i + l];
  double s = 0.0;
  for (int l = 0; l < VW; l++) s += lane[l];
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

EXPORT(sum_squares)
double sum_squares(const float *x, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i += SUMSQ_CHUNK) s += sum_squares_chunk(x + i, n - i < SUMSQ_CHUNK ? n - i : SUMSQ_CHUNK);
  return s;
}
#endif

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
#define PART_PTR(parts, p) ((const uint32_t *)HEAP_PTR((parts)[2 * (p)]))
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

#ifdef GMT_WASM
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
#elif defined(GMT_AVX2)
/* AVX2 has no compress: per 8-bit lane mask, the lane indices that pack the selected lanes to
 * the front, one byte each (filled when the addon loads; the native build may hold data). */
static uint64_t compress_lanes[256];
__attribute__((constructor)) static void fill_compress_lanes(void) {
  for (int m = 0; m < 256; m++) {
    uint64_t v = 0;
    for (int lane = 0, k = 0; lane < 8; lane++)
      if (m >> lane & 1) v |= (uint64_t)lane << (8 * k++);
    compress_lanes[m] = v;
  }
}

/** The lanes of u that `mask` selects (bit i = lane i), packed to the front; later lanes are
 * copies of lane 0 (callers store all 8 where they do not matter). */
INLINE __m256i compress8(__m256i u, int mask) {
  return _mm256_permutevar8x32_epi32(u, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)compress_lanes[mask])));
}

/** The sign bits of the 8 lanes of a comparison result, as an 8-bit mask. */
INLINE int lanes8(__m256i cmp) { return _mm256_movemask_ps(_mm256_castsi256_ps(cmp)); }
#endif

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
#ifdef GMT_WASM
  const uint8_t *table = pack_shuffles(work);
#endif
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
#ifdef GMT_WASM
    v128_t vlo = wasm_i32x4_splat((int32_t)lo), vbin = wasm_i32x4_splat((int32_t)bin), abs = wasm_i32x4_splat(0x7fffffff);
#elif defined(GMT_AVX512)
    __m512i vlo = _mm512_set1_epi32((int32_t)lo), vbin = _mm512_set1_epi32((int32_t)bin), abs = _mm512_set1_epi32(0x7fffffff);
    __m128i vshift = _mm_cvtsi32_si128(shift);
#elif defined(GMT_AVX2)
    __m256i vlo = _mm256_set1_epi32((int32_t)lo), vbin = _mm256_set1_epi32((int32_t)bin), abs = _mm256_set1_epi32(0x7fffffff);
    __m128i vshift = _mm_cvtsi32_si128(shift);
#endif
    for (int p = 0; p < nparts; p++) {
      const uint32_t *x = PART_PTR(parts, p);
      int len = PART_LEN(parts, p), i = 0;
#ifdef GMT_WASM
      for (; i + 4 <= len; i += 4) {
        v128_t u = wasm_v128_and(wasm_v128_load(x + i), abs);
        int bits = wasm_i32x4_bitmask(wasm_i32x4_eq(wasm_u32x4_shr(wasm_i32x4_sub(u, vlo), shift), vbin));
        wasm_v128_store(scratch + c, SWIZZLE(u, wasm_v128_load(table + 16 * bits)));
        c += __builtin_popcount((unsigned)bits);
      }
#elif defined(GMT_AVX512)
      /* Compress into a register and store all 16 lanes (a compressing store to memory is
       * microcoded on AMD): lanes past the packed ones land where the gather has already read. */
      for (; i + 16 <= len; i += 16) {
        __m512i u = _mm512_and_si512(_mm512_loadu_si512(x + i), abs);
        __mmask16 k = _mm512_cmpeq_epi32_mask(_mm512_srl_epi32(_mm512_sub_epi32(u, vlo), vshift), vbin);
        _mm512_storeu_si512(scratch + c, _mm512_maskz_compress_epi32(k, u));
        c += __builtin_popcount((unsigned)k);
      }
#elif defined(GMT_AVX2)
      for (; i + 8 <= len; i += 8) {
        __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), abs);
        int k = lanes8(_mm256_cmpeq_epi32(_mm256_srl_epi32(_mm256_sub_epi32(u, vlo), vshift), vbin));
        _mm256_storeu_si256((__m256i *)(scratch + c), compress8(u, k));
        c += __builtin_popcount((unsigned)k);
      }
#endif
      for (; i < len; i++) {
        uint32_t u = x[i] & 0x7fffffffu;
        scratch[c] = u;
        c += ((u - lo) >> shift) == bin;
      }
    }
    lo += bin << shift;
    if (shift < 31 && lo + ((1u << shift) - 1) < hi) hi = lo + ((1u << shift) - 1);
    self[0] = HEAP_OFF(scratch);
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

  /* Count below lo, gather within [lo, hi]: a vector at a time, packed to the front (wasm: a
   * byte shuffle per lane mask; AVX-512: compress; AVX2: a lane permutation per mask). */
#ifdef GMT_WASM
  const uint8_t *table = pack_shuffles(work);
  v128_t vlo = wasm_i32x4_splat((int32_t)lo), vhi = wasm_i32x4_splat((int32_t)hi), abs = wasm_i32x4_splat(0x7fffffff);
  v128_t below4 = wasm_i32x4_splat(0);
#elif defined(GMT_AVX512)
  __m512i vlo = _mm512_set1_epi32((int32_t)lo), vhi = _mm512_set1_epi32((int32_t)hi), abs = _mm512_set1_epi32(0x7fffffff);
#elif defined(GMT_AVX2)
  __m256i vlo = _mm256_set1_epi32((int32_t)lo), vhi = _mm256_set1_epi32((int32_t)hi), abs = _mm256_set1_epi32(0x7fffffff);
#endif
  int below = 0, c = 0;
  for (int p = 0; p < nparts; p++) {
    const uint32_t *x = PART_PTR(parts, p);
    int len = PART_LEN(parts, p), i = 0;
#ifdef GMT_WASM
    for (; i + 4 <= len; i += 4) {
      v128_t u = wasm_v128_and(wasm_v128_load(x + i), abs);
      v128_t lt = wasm_i32x4_lt(u, vlo);
      below4 = wasm_i32x4_sub(below4, lt);
      int bits = ~wasm_i32x4_bitmask(wasm_v128_or(lt, wasm_i32x4_gt(u, vhi))) & 15;
      wasm_v128_store(scratch + c, SWIZZLE(u, wasm_v128_load(table + 16 * bits)));
      c += __builtin_popcount((unsigned)bits);
    }
#elif defined(GMT_AVX512)
    for (; i + 16 <= len; i += 16) {
      __m512i u = _mm512_and_si512(_mm512_loadu_si512(x + i), abs);
      __mmask16 lt = _mm512_cmplt_epi32_mask(u, vlo), in = (__mmask16)~(lt | _mm512_cmpgt_epi32_mask(u, vhi));
      below += __builtin_popcount((unsigned)lt);
      _mm512_storeu_si512(scratch + c, _mm512_maskz_compress_epi32(in, u));
      c += __builtin_popcount((unsigned)in);
    }
#elif defined(GMT_AVX2)
    for (; i + 8 <= len; i += 8) {
      __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), abs);
      int lt = lanes8(_mm256_cmpgt_epi32(vlo, u)), in = ~(lt | lanes8(_mm256_cmpgt_epi32(u, vhi))) & 0xff;
      below += __builtin_popcount((unsigned)lt);
      _mm256_storeu_si256((__m256i *)(scratch + c), compress8(u, in));
      c += __builtin_popcount((unsigned)in);
    }
#endif
    for (; i < len; i++) {
      uint32_t u = x[i] & 0x7fffffffu;
      below += u < lo;
      scratch[c] = u;
      c += (u >= lo) & (u <= hi);
    }
  }
#ifdef GMT_WASM
  below += wasm_i32x4_extract_lane(below4, 0) + wasm_i32x4_extract_lane(below4, 1) +
           wasm_i32x4_extract_lane(below4, 2) + wasm_i32x4_extract_lane(below4, 3);
#endif
  if (info) info[1] = c;
  if (rank >= below && rank < below + c) {
    if (info) info[0] = 1;
    int32_t *self = (int32_t *)(work + SELECT_SELF);
    self[0] = HEAP_OFF(scratch);
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
#ifdef GMT_WASM
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
#elif defined(GMT_AVX512)
  __m512i lo = _mm512_set1_epi32((int32_t)low), hi = _mm512_set1_epi32((int32_t)high), abs = _mm512_set1_epi32(0x7fffffff);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 16) {
      __m512i u = _mm512_and_si512(_mm512_loadu_si512(x + i + j), abs);
      w |= (uint32_t)(uint16_t)~(_mm512_cmplt_epi32_mask(u, lo) | _mm512_cmpgt_epi32_mask(u, hi)) << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
#elif defined(GMT_AVX2)
  __m256i lo = _mm256_set1_epi32((int32_t)low), hi = _mm256_set1_epi32((int32_t)high), abs = _mm256_set1_epi32(0x7fffffff);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 8) {
      __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + j)), abs);
      w |= (uint32_t)(~lanes8(_mm256_or_si256(_mm256_cmpgt_epi32(lo, u), _mm256_cmpgt_epi32(u, hi))) & 0xff) << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
#endif
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
#ifdef GMT_WASM
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
#elif defined(GMT_AVX512)
  __m512i lo = _mm512_set1_epi32((int32_t)low), hi = _mm512_set1_epi32((int32_t)high), abs = _mm512_set1_epi32(0x7fffffff);
  __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 16) {
      __m512i u = _mm512_and_si512(_mm512_loadu_si512(score + i + j), abs);
      __mmask16 keep = (__mmask16)~(_mm512_cmplt_epi32_mask(u, lo) | _mm512_cmpgt_epi32_mask(u, hi));
      __m512 m = _mm512_maskz_mov_ps(keep, one);
      _mm512_storeu_ps(mask + i + j, m);
      _mm512_storeu_ps(out + i + j, _mm512_mul_ps(_mm512_loadu_ps(g + i + j), m));
      w |= (uint32_t)keep << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
#elif defined(GMT_AVX2)
  __m256i lo = _mm256_set1_epi32((int32_t)low), hi = _mm256_set1_epi32((int32_t)high), abs = _mm256_set1_epi32(0x7fffffff);
  __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 32 <= n; i += 32, b += 32) {
    uint32_t w = 0;
    for (int j = 0; j < 32; j += 8) {
      __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(score + i + j)), abs);
      __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(lo, u), _mm256_cmpgt_epi32(u, hi));
      __m256 m = _mm256_andnot_ps(_mm256_castsi256_ps(outside), one);
      _mm256_storeu_ps(mask + i + j, m);
      _mm256_storeu_ps(out + i + j, _mm256_mul_ps(_mm256_loadu_ps(g + i + j), m));
      w |= (uint32_t)(~lanes8(outside) & 0xff) << j;
    }
    words[b >> 5] = w;
    kept += __builtin_popcount(w);
  }
#endif
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
