/*
 * simd.h: the vector layer of gpt-kernels.c, so that one kernel source builds for every engine.
 *
 *   GMT_WASM     WebAssembly 128-bit SIMD (clang --target=wasm32 -msimd128): the portable engine
 *   GMT_AVX512   x86-64 with AVX-512 F/BW/DQ/VL and FMA (gcc -march=x86-64-v4)
 *   GMT_AVX2     x86-64 with AVX2 and FMA (gcc -march=x86-64-v3)
 *   GMT_NEON     arm64 Advanced SIMD (gcc -march=armv8-a)
 *
 * A kernel is written once against `vf` (VW float lanes) and `vi` (VW int32 lanes) and the
 * macros below; the wasm expansions are the intrinsics the kernels called before this layer
 * existed, so the wasm build keeps its exact instruction sequence (scripts/build-wasm.mjs --check
 * compares the bytes). What differs between engines is only the vector width and, for the
 * native ones, that a multiply-add is always one fused instruction: results agree to float
 * rounding, not bit for bit. Per-ISA code that no macro can hide (GEMM micro-kernels, the
 * select's compress) lives in #if blocks of gpt-kernels.c.
 */
#ifndef GMT_SIMD_H
#define GMT_SIMD_H

#include <stddef.h>
#include <stdint.h>

#if defined(__wasm__)
#define GMT_WASM 1
#include <wasm_simd128.h>
#define VW 4
typedef v128_t vf;
typedef v128_t vi;
#define vf_splat wasm_f32x4_splat
#define vf_load wasm_v128_load
#define vf_store wasm_v128_store
#define vf_add wasm_f32x4_add
#define vf_sub wasm_f32x4_sub
#define vf_mul wasm_f32x4_mul
#define vf_div wasm_f32x4_div
#define vf_sqrt wasm_f32x4_sqrt
#define vf_pmin wasm_f32x4_pmin
#define vf_pmax wasm_f32x4_pmax
#define vf_lane0(a) wasm_f32x4_extract_lane(a, 0)
#define vi_splat wasm_i32x4_splat
#define vi_add wasm_i32x4_add
#define vi_shl wasm_i32x4_shl
#define vf_as_vi(a) (a)
#define vi_as_vf(a) (a)
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

#elif defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__)
#define GMT_AVX512 1
#define GMT_NATIVE 1
#define GMT_ISA "avx512"
#include <immintrin.h>
#define VW 16
typedef __m512 vf;
typedef __m512i vi;
#define vf_splat _mm512_set1_ps
#define vf_load _mm512_loadu_ps
#define vf_store _mm512_storeu_ps
#define vf_add _mm512_add_ps
#define vf_sub _mm512_sub_ps
#define vf_mul _mm512_mul_ps
#define vf_div _mm512_div_ps
#define vf_sqrt _mm512_sqrt_ps
#define vf_pmin(a, b) _mm512_min_ps(b, a)
#define vf_pmax(a, b) _mm512_max_ps(b, a)
#define vf_lane0(a) _mm512_cvtss_f32(a)
#define vi_splat _mm512_set1_epi32
#define vi_add _mm512_add_epi32
#define vi_shl _mm512_slli_epi32
#define vf_as_vi _mm512_castps_si512
#define vi_as_vf _mm512_castsi512_ps
#define MADD(a, b, c) _mm512_fmadd_ps(a, b, c)

#elif defined(__AVX2__) && defined(__FMA__)
#define GMT_AVX2 1
#define GMT_NATIVE 1
#define GMT_ISA "avx2"
#include <immintrin.h>
#define VW 8
typedef __m256 vf;
typedef __m256i vi;
#define vf_splat _mm256_set1_ps
#define vf_load _mm256_loadu_ps
#define vf_store _mm256_storeu_ps
#define vf_add _mm256_add_ps
#define vf_sub _mm256_sub_ps
#define vf_mul _mm256_mul_ps
#define vf_div _mm256_div_ps
#define vf_sqrt _mm256_sqrt_ps
#define vf_pmin(a, b) _mm256_min_ps(b, a)
#define vf_pmax(a, b) _mm256_max_ps(b, a)
#define vf_lane0(a) _mm256_cvtss_f32(a)
#define vi_splat _mm256_set1_epi32
#define vi_add _mm256_add_epi32
#define vi_shl _mm256_slli_epi32
#define vf_as_vi _mm256_castps_si256
#define vi_as_vf _mm256_castsi256_ps
#define MADD(a, b, c) _mm256_fmadd_ps(a, b, c)

#elif defined(__aarch64__) && defined(__ARM_NEON)
#define GMT_NEON 1
#define GMT_NATIVE 1
#define GMT_ISA "neon"
#include <arm_neon.h>
#define VW 4
typedef float32x4_t vf;
typedef int32x4_t vi;
#define vf_splat vdupq_n_f32
#define vf_load vld1q_f32
#define vf_store vst1q_f32
#define vf_add vaddq_f32
#define vf_sub vsubq_f32
#define vf_mul vmulq_f32
#define vf_div vdivq_f32
#define vf_sqrt vsqrtq_f32
#define vf_pmin(a, b) vminnmq_f32(a, b)
#define vf_pmax(a, b) vmaxnmq_f32(a, b)
#define vf_lane0(a) vgetq_lane_f32(a, 0)
#define vi_splat vdupq_n_s32
#define vi_add vaddq_s32
#define vi_shl(a, n) vshlq_n_s32(a, n)
#define vf_as_vi vreinterpretq_s32_f32
#define vi_as_vf vreinterpretq_f32_s32
#define MADD(a, b, c) vfmaq_f32(c, a, b)

#else
#error "gpt-kernels: no vector layer for this target (wasm32 SIMD, x86-64 AVX2/AVX-512, arm64 NEON)"
#endif

#define INLINE static inline __attribute__((always_inline))

/** Lane sum and lane max in a fixed order: for 4 lanes (l0 + l1) + (l2 + l3); wider vectors
 * first add (max) their upper half onto their lower half, down to 4 lanes. */
#if defined(GMT_WASM)
INLINE float vf_hsum(vf a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) + (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}
INLINE float vf_hmax(vf a) {
  float x = wasm_f32x4_extract_lane(a, 0), y = wasm_f32x4_extract_lane(a, 1), z = wasm_f32x4_extract_lane(a, 2), w = wasm_f32x4_extract_lane(a, 3);
  x = x > y ? x : y;
  z = z > w ? z : w;
  return x > z ? x : z;
}
#else
#if defined(GMT_AVX512)
INLINE __m128 vf_to4_add(vf a) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
INLINE __m128 vf_to4_max(vf a) {
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  return _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
#elif defined(GMT_AVX2)
INLINE __m128 vf_to4_add(vf a) { return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); }
INLINE __m128 vf_to4_max(vf a) { return _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); }
#endif
INLINE float vf_hsum(vf a) {
  float l[4];
#if defined(GMT_NEON)
  vst1q_f32(l, a);
#else
  _mm_storeu_ps(l, vf_to4_add(a));
#endif
  return (l[0] + l[1]) + (l[2] + l[3]);
}
INLINE float vf_hmax(vf a) {
  float l[4];
#if defined(GMT_NEON)
  vst1q_f32(l, a);
#else
  _mm_storeu_ps(l, vf_to4_max(a));
#endif
  float x = l[0] > l[1] ? l[0] : l[1], z = l[2] > l[3] ? l[2] : l[3];
  return x > z ? x : z;
}
#endif

#endif
