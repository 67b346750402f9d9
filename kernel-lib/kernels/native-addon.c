/*
 * native-addon.c: the native engine. gpt-kernels.c compiled for the host's vector ISA and
 * exposed to Node through Node-API, computing on the memory of @tensorflow/tfjs-backend-wasm in
 * place: `bind(memory.buffer)` gives the address of tfjs' heap, and every kernel takes byte
 * offsets into it, exactly as the wasm build does. Built by scripts/build-native.mjs at setup
 * with the system C compiler against the headers that ship with Node; loaded by
 * src/backend/native.ts, which refuses a build whose self-test fails.
 *
 * Threads: a small pool runs the large kernels on several cores. Every kernel is split so that
 * each output entry is computed by one thread in the same order as with one thread (GEMM by
 * whole column strips or row panels, LayerNorm's dγ/dβ by columns, the loss and the gradient
 * norm summed in a fixed order afterwards), so results do not depend on the thread count.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "gpt-kernels.c"

#ifndef GMT_NATIVE
#error "native-addon.c builds for a native ISA only"
#endif
#ifndef GMT_BUILD_FLAGS
#define GMT_BUILD_FLAGS ""
#endif

/* ------------------------------------------------------------------------------------------ */
/* Per-thread scratch                                                                           */
/* ------------------------------------------------------------------------------------------ */

static __thread float *t_scratch;
static __thread size_t t_scratch_floats;

/** This thread's scratch of at least `floats` floats (64-byte aligned; grows, never shrinks). */
static float *thread_scratch(size_t floats) {
  if (floats > t_scratch_floats) {
    free(t_scratch);
    size_t n = (floats + 15) & ~(size_t)15;
    t_scratch = (float *)aligned_alloc(64, n * sizeof(float));
    if (!t_scratch) { t_scratch_floats = 0; return NULL; }
    t_scratch_floats = n;
  }
  return t_scratch;
}

/* ------------------------------------------------------------------------------------------ */
/* Thread pool                                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define MAX_THREADS 64
/* A waiting worker spins (pause) for SPIN_ROUNDS, then yields the core for YIELD_ROUNDS more
 * checks, then sleeps: kernels of one training step follow each other within microseconds, and a
 * wake-up from sleep costs tens of them, but a spinning thread must not keep the core from
 * Node's own threads (garbage collection, compilation) or the caller. */
#define SPIN_ROUNDS 2000
#define YIELD_ROUNDS 20000

/* fn(ctx, chunk, nchunks) computes one chunk of a kernel. */
typedef void (*task_fn)(void *ctx, int chunk, int nchunks);

/*
 * A kernel split among n threads is n × CHUNKS_PER_THREAD chunks; thread t owns chunks
 * [t·k, (t+1)·k) and claims them first, in order, then takes what is left of the others' (from
 * their ends). So every thread keeps computing the same rows or columns kernel after kernel
 * (their data stays in its core's caches), and a worker that is slow to wake (the other core
 * busy, a sleeping thread) costs only its share, which the others take: a kernel is never much
 * slower than on one thread. Which thread computes a chunk does not change a bit of the result
 * (see the file comment).
 *
 * `gen` identifies the dispatch, and each owner's slot packs the dispatch's generation with the
 * next chunk to hand out from its range, claimed by compare-and-swap: a worker that wakes after
 * its dispatch has ended finds every slot exhausted or of another generation, and claims nothing.
 */
#define CHUNKS_PER_THREAD 4

typedef struct { _Alignas(64) _Atomic uint64_t word; /* generation (32 bits) | next chunk of the range (32) */ } owner_slot;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_mutex_t dispatch; /* one dispatcher at a time (worker_threads share the process) */
  int workers;              /* threads started besides the caller */
  int threads;              /* threads a kernel may use, caller included */
  _Atomic uint64_t gen;     /* generation (32 bits) | threads of the dispatch (32) */
  atomic_int done;          /* chunks of the current dispatch finished */
  task_fn fn;
  void *ctx;
  int sleeping;
  owner_slot slots[MAX_THREADS];
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .dispatch = PTHREAD_MUTEX_INITIALIZER, .workers = 0, .threads = 1 };

#define GEN_OF(w) ((uint32_t)((w) >> 32))
#define LOW_OF(w) ((int)((w) & 0xffffffffu))

static inline void cpu_relax(void) {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/** Thread `tid` claims and computes chunks of dispatch `gen` (n threads): its own range first. */
static void run_chunks(int tid, uint32_t gen, int n) {
  int k = CHUNKS_PER_THREAD, nchunks = n * k;
  for (int j = 0; j < n; j++) {
    int owner = (tid + j) % n;
    uint64_t w = atomic_load(&pool.slots[owner].word);
    for (;;) {
      if (GEN_OF(w) != gen) return;
      if (LOW_OF(w) >= k) break;
      if (!atomic_compare_exchange_weak(&pool.slots[owner].word, &w, w + 1)) continue;
      /* The dispatch cannot end before this chunk is done, so fn and ctx are still its own. */
      pool.fn(pool.ctx, owner * k + LOW_OF(w), nchunks);
      atomic_fetch_add(&pool.done, 1);
      w = atomic_load(&pool.slots[owner].word);
    }
  }
}

typedef struct { int tid; uint32_t gen; } worker_start;

static void *worker_main(void *arg) {
  worker_start start = *(worker_start *)arg;
  free(arg);
  int tid = start.tid;
  /* The generation at creation, not at start: a dispatch made before this thread first runs
   * must still be seen as new. */
  uint32_t seen = start.gen;
  for (;;) {
    uint64_t g;
    int spins = 0;
    while (GEN_OF(g = atomic_load(&pool.gen)) == seen && spins < SPIN_ROUNDS + YIELD_ROUNDS) {
      if (spins++ < SPIN_ROUNDS) cpu_relax();
      else sched_yield();
    }
    if (GEN_OF(g) == seen) {
      pthread_mutex_lock(&pool.mu);
      pool.sleeping++;
      while (GEN_OF(g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
      pool.sleeping--;
      pthread_mutex_unlock(&pool.mu);
    }
    seen = GEN_OF(g);
    run_chunks(tid, seen, LOW_OF(g));
  }
  return NULL;
}

/** Starts workers so that `threads` threads (the caller included) can run a kernel. */
static int pool_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  pthread_mutex_lock(&pool.dispatch);
  while (pool.workers < threads - 1) {
    pthread_t th;
    pthread_attr_t attr;
    worker_start *start = (worker_start *)malloc(sizeof(worker_start));
    if (!start) break;
    start->tid = pool.workers + 1;
    start->gen = GEN_OF(atomic_load(&pool.gen)); /* stable: dispatches hold pool.dispatch, as we do */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, worker_main, start);
    pthread_attr_destroy(&attr);
    if (rc != 0) { free(start); break; }
    pool.workers++;
  }
  pool.threads = threads <= pool.workers + 1 ? threads : pool.workers + 1;
  pthread_mutex_unlock(&pool.dispatch);
  return pool.threads;
}

/**
 * Runs fn(ctx, chunk, nchunks) for every chunk of `n` threads' work (n ≤ the pool's threads;
 * `CHUNKS_PER_THREAD` chunks each, one chunk when n is 1) on the caller and the workers, and
 * returns when all are done. Another thread already dispatching makes this call run alone.
 */
static void pool_run(task_fn fn, void *ctx, int n) {
  if (n > pool.threads) n = pool.threads;
  if (n <= 1 || pthread_mutex_trylock(&pool.dispatch) != 0) {
    fn(ctx, 0, 1);
    return;
  }
  int nchunks = n * CHUNKS_PER_THREAD;
  pool.fn = fn;
  pool.ctx = ctx;
  atomic_store(&pool.done, 0);
  uint32_t gen = GEN_OF(atomic_load(&pool.gen)) + 1;
  for (int t = 0; t < n; t++) atomic_store(&pool.slots[t].word, (uint64_t)gen << 32);
  pthread_mutex_lock(&pool.mu);
  atomic_store(&pool.gen, (uint64_t)gen << 32 | (uint32_t)n);
  if (pool.sleeping) pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  run_chunks(0, gen, n);
  for (int spins = 0; atomic_load(&pool.done) < nchunks; spins++) {
    if (spins < SPIN_ROUNDS) cpu_relax();
    else sched_yield();
  }
  pthread_mutex_unlock(&pool.dispatch);
}

/** [lo, hi) of `count` items for thread tid of n, in multiples of `align` (the last takes the rest). */
static void split(int count, int align, int tid, int n, int *lo, int *hi) {
  int units = (count + align - 1) / align;
  int per = units / n, extra = units % n;
  int u0 = tid * per + (tid < extra ? tid : extra), u1 = u0 + per + (tid < extra);
  *lo = u0 * align < count ? u0 * align : count;
  *hi = u1 * align < count ? u1 * align : count;
}

/** Threads worth using for `work` (about flops or bytes touched): small calls run alone. */
static int threads_for(double work, double min_per_thread) {
  int n = pool.threads;
  while (n > 1 && work / n < min_per_thread) n--;
  return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Parallel kernels                                                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  const float *A, *B; float *C;
  int lda, ta, ldb, tb, ldc, M, N, K, acc, tri, by_strips, fail;
} gemm_task;

static void gemm_worker(void *p, int tid, int nth) {
  gemm_task *g = (gemm_task *)p;
  int nstrips = (g->N + NR - 1) / NR, npanels = (g->M + MR - 1) / MR;
  int s0 = 0, s1 = nstrips, p0 = 0, p1 = npanels;
  if (g->by_strips) split(nstrips, 1, tid, nth, &s0, &s1);
  else split(npanels, 1, tid, nth, &p0, &p1);
  if (s1 <= s0 || p1 <= p0) return;
  float *scratch = thread_scratch((size_t)KC * (s1 - s0) * NR + KC * MR + MR * NR);
  if (!scratch) { g->fail = 1; return; }
  gemm_part(g->A, g->lda, g->ta, g->B, g->ldb, g->tb, g->C, g->ldc, g->M, g->N, g->K, g->acc, scratch, g->tri, s0, s1, p0, p1);
}

static int par_gemm(const float *A, int lda, int ta, const float *B, int ldb, int tb, float *C, int ldc,
                    int M, int N, int K, int acc, int tri) {
  gemm_task g = { A, B, C, lda, ta, ldb, tb, ldc, M, N, K, acc, tri, 0, 0 };
  int nstrips = (N + NR - 1) / NR, npanels = (M + MR - 1) / MR;
  int n = threads_for(2.0 * M * N * K, 4e6);
  /* Split the dimension whose duplicate packing is cheaper (each thread packs all of the other
   * operand): columns when C is wider than tall, or when there are too few row panels. */
  g.by_strips = nstrips >= n && (M <= N || npanels < n);
  if (!g.by_strips && npanels < n) n = npanels > 0 ? npanels : 1;
  pool_run(gemm_worker, &g, n);
  return !g.fail;
}

typedef struct {
  const float *qkv, *P, *dout; float *out, *Pw, *dqkv;
  int B, T, H, hd, bwd, fail;
} attn_task;

static void attn_worker(void *p, int tid, int nth) {
  attn_task *a = (attn_task *)p;
  int p0, p1;
  split(a->B * a->H, 1, tid, nth, &p0, &p1);
  if (p1 <= p0) return;
  int w = a->T > a->hd ? a->T : a->hd;
  size_t gs = (size_t)gemm_scratch_floats(w);
  float *scratch = thread_scratch(gs + (size_t)a->T * a->T);
  if (!scratch) { a->fail = 1; return; }
  if (a->bwd) attention_bwd_pairs(a->qkv, a->P, a->dout, a->dqkv, scratch + gs, a->T, a->H, a->hd, scratch, p0, p1);
  else attention_fwd_pairs(a->qkv, a->out, a->Pw, a->T, a->H, a->hd, scratch, p0, p1);
}

typedef struct {
  const float *qkv, *kc, *vc; float *out;
  const int32_t *slot, *pos;
  int n, H, hd, L, fail;
} decode_task;

static void decode_worker(void *p, int tid, int nth) {
  decode_task *t = (decode_task *)p;
  int r0, r1;
  split(t->n, 1, tid, nth, &r0, &r1);
  if (r1 <= r0) return;
  float *scores = thread_scratch((size_t)t->L);
  if (!scores) { t->fail = 1; return; }
  attention_decode_rows(t->qkv, t->kc, t->vc, t->out, t->slot, t->pos, t->H, t->hd, t->L, scores, r0, r1);
}

typedef struct {
  int kind; /* 0 layernorm_fwd rows, 1 layernorm dx rows, 2 layernorm dγ/dβ columns, 3 gelu_fwd,
               4 gelu_bwd, 5 embed_fwd rows, 6 embed_bwd columns, 7 xent rows, 8 adamw, 9 sum of
               squares chunks, 10 copy_add, 11 scale_add, 12 fill_zero */
  const float *x, *g, *b, *dy, *mean_c, *rstd_c, *m, *v, *mask, *src;
  float *y, *mean, *rstd, *dx, *dg, *db, *out, *m_out, *v_out;
  const int32_t *tokens;
  double *terms, denom;
  int N, d, T, V, n, decay, has_mask;
  float eps, b1, omb1, b2, omb2, c1, c2, lr, wd, sa, sb;
} row_task;

static void row_worker(void *p, int tid, int nth) {
  row_task *t = (row_task *)p;
  int lo, hi;
  switch (t->kind) {
    case 0:
      split(t->N, 1, tid, nth, &lo, &hi);
      if (hi > lo) layernorm_fwd(t->x + (size_t)lo * t->d, t->g, t->b, t->y + (size_t)lo * t->d, t->mean + lo, t->rstd + lo, hi - lo, t->d, t->eps);
      break;
    case 1:
      split(t->N, 1, tid, nth, &lo, &hi);
      layernorm_bwd_dx(t->dy, t->x, t->mean_c, t->rstd_c, t->g, t->dx, t->d, lo, hi);
      break;
    case 2:
      split(t->d, VW, tid, nth, &lo, &hi);
      layernorm_bwd_dgb(t->dy, t->x, t->mean_c, t->rstd_c, t->dg, t->db, t->N, t->d, lo, hi);
      break;
    case 3:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo) gelu_fwd(t->x + lo, t->y + lo, hi - lo);
      break;
    case 4:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo) gelu_bwd(t->x + lo, t->dy + lo, t->dx + lo, hi - lo);
      break;
    case 5:
      split(t->N, 1, tid, nth, &lo, &hi);
      embed_fwd_rows(t->tokens, t->g, t->b, t->y, t->T, t->d, lo, hi);
      break;
    case 6:
      split(t->d, VW, tid, nth, &lo, &hi);
      if (hi > lo) embed_bwd_cols(t->tokens, t->x, t->dg, t->db, t->N, t->T, t->d, lo, hi);
      break;
    case 7:
      split(t->N, 1, tid, nth, &lo, &hi);
      xent_rows(t->y, t->tokens, t->x, t->V, t->denom, t->terms, lo, hi);
      break;
    case 8:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo)
        adamw(t->x + lo, t->g + lo, t->m + lo, t->v + lo, t->has_mask ? t->mask + lo : NULL, t->y + lo, t->m_out + lo, t->v_out + lo, hi - lo,
              t->b1, t->omb1, t->b2, t->omb2, t->c1, t->c2, t->eps, t->lr, t->wd, t->decay, t->has_mask);
      break;
    case 9: {
      int chunks = (t->n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
      split(chunks, 1, tid, nth, &lo, &hi);
      for (int c = lo; c < hi; c++) {
        int i = c * SUMSQ_CHUNK;
        t->terms[c] = sum_squares_chunk(t->x + i, t->n - i < SUMSQ_CHUNK ? t->n - i : SUMSQ_CHUNK);
      }
      break;
    }
    case 10:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo) copy_add(t->y + lo, t->x + lo, t->src ? t->src + lo : NULL, hi - lo);
      break;
    case 11:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo) scale_add(t->y + lo, t->sa, t->src + lo, t->sb, hi - lo);
      break;
    case 12:
      split(t->n, 64, tid, nth, &lo, &hi);
      if (hi > lo) memset(t->y + lo, 0, (size_t)(hi - lo) * sizeof(float));
      break;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Node-API                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* One per Node environment (the main thread, each worker thread): the heap it computes on. */
typedef struct {
  uint8_t *base;
  size_t length;
} env_heap;

#define MAX_ARGS 24

/** Reads `n` numeric arguments into a[], points this thread's kernels at the caller's heap.
 * Returns 0 (with a JS exception pending) on a bad call. */
static int read_args(napi_env env, napi_callback_info info, size_t n, double *a, const char *name, int need_heap) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok) return 0;
  if (argc < n) {
    char msg[160];
    snprintf(msg, sizeof msg, "gmt native kernels: %s takes %d arguments, got %d", name, (int)n, (int)argc);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  env_heap *h = (env_heap *)data;
  if (!h->base && need_heap) {
    napi_throw_error(env, NULL, "gmt native kernels: no heap bound (call bind(memory.buffer) first)");
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (napi_get_value_double(env, argv[i], &a[i]) != napi_ok) {
      char msg[160];
      snprintf(msg, sizeof msg, "gmt native kernels: %s argument %d is not a number", name, (int)i);
      napi_throw_type_error(env, NULL, msg);
      return 0;
    }
  }
  gmt_heap_base = (uintptr_t)h->base;
  return 1;
}

/* A heap offset as a pointer; offset 0 is NULL (tfjs never allocates there), as in the wasm build. */
#define PTR(i) ((void *)(a[i] == 0 ? (uintptr_t)0 : gmt_heap_base + (uint32_t)a[i]))
#define FP(i) ((float *)PTR(i))
#define IP(i) ((int32_t *)PTR(i))
#define I(i) ((int)a[i])
#define F(i) ((float)a[i])

static napi_value num(napi_env env, double x) {
  napi_value r;
  napi_create_double(env, x, &r);
  return r;
}

static napi_value undef(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

static napi_value oom(napi_env env, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "gmt native kernels: %s: out of memory for thread scratch", what);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

#define KERNEL_HEAP(name, nargs, need_heap) \
  static napi_value js_##name(napi_env env, napi_callback_info info) { \
    double a[MAX_ARGS]; \
    if (!read_args(env, info, nargs, a, #name, need_heap)) return NULL;
#define KERNEL(name, nargs) KERNEL_HEAP(name, nargs, 1)
#define END }

KERNEL_HEAP(bind, 0, 0)
  (void)a;
  napi_value argv[1];
  size_t argc = 1;
  void *data;
  napi_get_cb_info(env, info, &argc, argv, NULL, &data);
  env_heap *h = (env_heap *)data;
  void *base;
  size_t length;
  bool is_ab = false;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab ||
      napi_get_arraybuffer_info(env, argv[0], &base, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "gmt native kernels: bind takes the ArrayBuffer of the wasm memory");
    return NULL;
  }
  h->base = (uint8_t *)base;
  h->length = length;
  return num(env, (double)length);
END

KERNEL_HEAP(gemm_scratch_floats, 1, 0)
  /* The native build keeps packing buffers per thread: the caller's scratch is not used. */
  return num(env, 4);
END

KERNEL(gemm, 13)
  if (!par_gemm(FP(0), I(1), I(2), FP(3), I(4), I(5), FP(6), I(7), I(8), I(9), I(10), I(11), TRI_NONE)) return oom(env, "gemm");
  return undef(env);
END

KERNEL(copy_add, 4)
  row_task t = { .kind = 10, .y = FP(0), .x = FP(1), .src = FP(2), .n = I(3) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 16));
  return undef(env);
END

KERNEL(scale_add, 5)
  row_task t = { .kind = 11, .y = FP(0), .sa = F(1), .src = FP(2), .sb = F(3), .n = I(4) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 16));
  return undef(env);
END

KERNEL(fill_zero, 2)
  row_task t = { .kind = 12, .y = FP(0), .n = I(1) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 17));
  return undef(env);
END

KERNEL(layernorm_fwd, 9)
  row_task t = { .kind = 0, .x = FP(0), .g = FP(1), .b = FP(2), .y = FP(3), .mean = FP(4), .rstd = FP(5), .N = I(6), .d = I(7), .eps = F(8) };
  pool_run(row_worker, &t, threads_for((double)t.N * t.d, 1 << 15));
  return undef(env);
END

KERNEL(layernorm_bwd, 10)
  row_task t = { .kind = 1, .dy = FP(0), .x = FP(1), .mean_c = FP(2), .rstd_c = FP(3), .g = FP(4), .dx = FP(5), .dg = FP(6), .db = FP(7), .N = I(8), .d = I(9) };
  int n = threads_for((double)t.N * t.d, 1 << 15);
  pool_run(row_worker, &t, n);
  t.kind = 2;
  pool_run(row_worker, &t, n);
  return undef(env);
END

KERNEL(gelu_fwd, 3)
  row_task t = { .kind = 3, .x = FP(0), .y = FP(1), .n = I(2) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 14));
  return undef(env);
END

KERNEL(gelu_bwd, 4)
  row_task t = { .kind = 4, .x = FP(0), .dy = FP(1), .dx = FP(2), .n = I(3) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 14));
  return undef(env);
END

KERNEL(attention_fwd, 8)
  attn_task t = { .qkv = FP(0), .out = FP(1), .Pw = FP(2), .B = I(3), .T = I(4), .H = I(5), .hd = I(6), .bwd = 0 };
  pool_run(attn_worker, &t, threads_for(4.0 * t.B * t.H * t.T * t.T * t.hd, 1e6));
  if (t.fail) return oom(env, "attention_fwd");
  return undef(env);
END

KERNEL(attention_bwd, 10)
  attn_task t = { .qkv = FP(0), .P = FP(1), .dout = FP(2), .dqkv = FP(3), .B = I(5), .T = I(6), .H = I(7), .hd = I(8), .bwd = 1 };
  pool_run(attn_worker, &t, threads_for(8.0 * t.B * t.H * t.T * t.T * t.hd, 1e6));
  if (t.fail) return oom(env, "attention_bwd");
  return undef(env);
END

KERNEL(embed_fwd, 7)
  row_task t = { .kind = 5, .tokens = IP(0), .g = FP(1), .b = FP(2), .y = FP(3), .N = I(4), .T = I(5), .d = I(6) };
  pool_run(row_worker, &t, threads_for((double)t.N * t.d, 1 << 15));
  return undef(env);
END

KERNEL(embed_bwd, 7)
  row_task t = { .kind = 6, .tokens = IP(0), .x = FP(1), .dg = FP(2), .db = FP(3), .N = I(4), .T = I(5), .d = I(6) };
  pool_run(row_worker, &t, threads_for((double)t.N * t.d, 1 << 15));
  return undef(env);
END

KERNEL(xent_fwd_bwd, 5)
  float *logits = FP(0);
  const int32_t *targets = IP(1);
  const float *w = FP(2);
  int N = I(3), V = I(4);
  double wsum = 0.0;
  for (int n = 0; n < N; n++) wsum += w[n];
  double denom = wsum > 1e-9 ? wsum : 1e-9;
  double *terms = (double *)malloc((size_t)(N > 0 ? N : 1) * sizeof(double));
  if (!terms) return oom(env, "xent_fwd_bwd");
  row_task t = { .kind = 7, .y = logits, .tokens = targets, .x = w, .V = V, .denom = denom, .terms = terms, .N = N };
  pool_run(row_worker, &t, threads_for((double)N * V, 1 << 14));
  double loss = 0.0;
  for (int n = 0; n < N; n++) loss += terms[n];
  free(terms);
  return num(env, (float)(loss / denom));
END

KERNEL(adamw, 20)
  row_task t = { .kind = 8, .x = FP(0), .g = FP(1), .m = FP(2), .v = FP(3), .mask = FP(4), .y = FP(5), .m_out = FP(6), .v_out = FP(7), .n = I(8),
                 .b1 = F(9), .omb1 = F(10), .b2 = F(11), .omb2 = F(12), .c1 = F(13), .c2 = F(14), .eps = F(15), .lr = F(16), .wd = F(17),
                 .decay = I(18), .has_mask = I(19) };
  pool_run(row_worker, &t, threads_for(t.n, 1 << 15));
  return undef(env);
END

KERNEL(sum_squares, 2)
  int n = I(1);
  int chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
  double *terms = (double *)malloc((size_t)(chunks > 0 ? chunks : 1) * sizeof(double));
  if (!terms) return oom(env, "sum_squares");
  row_task t = { .kind = 9, .x = FP(0), .n = n, .terms = terms };
  pool_run(row_worker, &t, threads_for(n, 1 << 16));
  double s = 0.0;
  for (int c = 0; c < chunks; c++) s += terms[c];
  free(terms);
  return num(env, s);
END

KERNEL_HEAP(select_work_words, 0, 0)
  return num(env, select_work_words());
END

KERNEL(select_abs_parts, 7)
  return num(env, select_abs_parts(IP(0), I(1), I(2), F(3), (uint32_t *)PTR(4), (uint32_t *)PTR(5), IP(6)));
END

KERNEL(mark_bits, 6)
  return num(env, mark_bits((const uint32_t *)PTR(0), I(1), (uint32_t)a[2], (uint32_t)a[3], (uint32_t *)PTR(4), I(5)));
END

KERNEL(mask_apply, 9)
  return num(env, mask_apply((const uint32_t *)PTR(0), FP(1), I(2), (uint32_t)a[3], (uint32_t)a[4], FP(5), FP(6), (uint32_t *)PTR(7), I(8)));
END

KERNEL(and_popcount, 3)
  return num(env, and_popcount((const uint32_t *)PTR(0), (const uint32_t *)PTR(1), I(2)));
END

KERNEL(kv_store, 9)
  kv_store(FP(0), I(1), FP(2), FP(3), IP(4), IP(5), I(6), I(7), I(8));
  return undef(env);
END

KERNEL(attention_decode, 10)
  decode_task t = { .qkv = FP(0), .kc = FP(1), .vc = FP(2), .out = FP(3), .slot = IP(4), .pos = IP(5), .n = I(6), .H = I(7), .hd = I(8), .L = I(9) };
  pool_run(decode_worker, &t, threads_for(4.0 * t.n * t.L * t.H * t.hd, 5e5));
  if (t.fail) return oom(env, "attention_decode");
  return undef(env);
END

KERNEL(argmax_rows, 4)
  argmax_rows(FP(0), I(1), IP(2), 0, I(3));
  return undef(env);
END

KERNEL_HEAP(set_threads, 1, 0)
  return num(env, pool_set_threads(I(0)));
END

/* ------------------------------------------------------------------------------------------ */
/* FMA peak: the reference a kernel's GFLOP/s is read against                                   */
/* ------------------------------------------------------------------------------------------ */

/* Enough independent chains to fill two FMA pipes of latency 4-5, and no more than the vector
 * registers hold: AVX2 has 16, so 16 chains (and b, c) spill; measured on a Zen 3 core, 8 chains
 * give 80 GFLOP/s, 12 give 100 and 16 (spilling) 58. AVX-512 and NEON have 32. */
#if defined(GMT_AVX2)
#define PEAK_CHAINS 12
#else
#define PEAK_CHAINS 16
#endif

typedef struct { long iters; int chunks; double sink[MAX_THREADS * CHUNKS_PER_THREAD]; } peak_task;

static void peak_worker(void *p, int chunk, int nchunks) {
  peak_task *t = (peak_task *)p;
  vf acc[PEAK_CHAINS], b = vf_splat(1.0000001f), c = vf_splat(1e-7f);
  for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = vf_splat((float)(i + chunk));
  for (long it = 0; it < t->iters; it++) {
#pragma GCC unroll 16
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = MADD(acc[i], b, c);
  }
  float s = 0.0f;
  for (int i = 0; i < PEAK_CHAINS; i++) s += vf_lane0(acc[i]);
  t->sink[chunk] = s;
  t->chunks = nchunks;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

KERNEL_HEAP(fma_peak, 2, 0)
  double ms = a[0] > 0 ? a[0] : 100;
  int threads = I(1) < 1 ? 1 : I(1);
  int had = pool.threads;
  pool_set_threads(threads);
  int n = pool.threads;
  peak_task t = { .iters = 100000, .chunks = 1 };
  double best = 0;
  /* Size the run to about ms milliseconds, then keep the best of three. */
  for (int round = 0; round < 4; round++) {
    double t0 = now_s();
    pool_run(peak_worker, &t, n);
    double dt = now_s() - t0;
    double gf = (double)t.iters * PEAK_CHAINS * VW * 2 * t.chunks / dt / 1e9;
    if (round == 0) t.iters = (long)(t.iters * (ms / 3 / 1000) / (dt > 1e-6 ? dt : 1e-6) / (t.chunks > n ? t.chunks / n : 1)) + 1;
    else if (gf > best) best = gf;
  }
  pool.threads = had;
  return num(env, best);
END

/* ------------------------------------------------------------------------------------------ */
/* Self-test: the optimized kernels against naive double-precision code in this same binary   */
/* ------------------------------------------------------------------------------------------ */

static float test_value(unsigned i, unsigned salt) {
  unsigned x = (i + 1) * 2654435761u ^ salt * 40503u;
  x ^= x >> 13; x *= 0x5bd1e995u; x ^= x >> 15;
  return ((int)(x % 2001) - 1000) / 512.0f;
}

/** Returns NULL when every check passes, else what failed. */
static const char *self_test(char *why, size_t whylen) {
  /* GEMM: small integers times powers of two give exact products and sums, so the optimized
   * kernel must match the naive one exactly, for every transpose, accumulate and edge shape. */
  static const int shapes[][3] = { { 1, 1, 1 }, { 13, 37, 5 }, { 12, 32, 256 }, { 25, 65, 300 }, { 64, 64, 32 }, { 3, 200, 17 } };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    for (int mode = 0; mode < 8; mode++) {
      int ta = mode & 1, tb = (mode >> 1) & 1, acc = (mode >> 2) & 1;
      float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
      float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
      float *scratch = malloc(sizeof(float) * gemm_scratch_floats(N));
      if (!A || !B || !C || !R || !scratch) { free(A); free(B); free(C); free(R); free(scratch); return "out of memory"; }
      for (int i = 0; i < M * K; i++) A[i] = (float)((int)(test_value(i, 1) * 4) % 7);
      for (int i = 0; i < K * N; i++) B[i] = (float)((int)(test_value(i, 2) * 4) % 5) * 0.25f;
      for (int i = 0; i < M * N; i++) C[i] = R[i] = (float)(i % 3);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double sum = acc ? R[i * N + j] : 0.0;
          for (int k = 0; k < K; k++) sum += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
          R[i * N + j] = (float)sum;
        }
      gemm_tri(A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, M, N, K, acc, scratch, TRI_NONE);
      int bad = -1;
      for (int i = 0; i < M * N && bad < 0; i++) if (C[i] != R[i]) bad = i;
      free(A); free(B); free(C); free(R); free(scratch);
      if (bad >= 0) {
        snprintf(why, whylen, "gemm %dx%dx%d (ta %d, tb %d, acc %d) differs from the naive product at entry %d", M, N, K, ta, tb, acc, bad);
        return why;
      }
    }
  }
  /* e^x and ln x against libm, over the range the kernels use. */
  for (int i = 0; i <= 400; i++) {
    float x = -80.0f + i * 0.42f;
    double want = exp((double)x), got = exp1(x);
    if (fabs(got - want) > 4e-7 * want) { snprintf(why, whylen, "exp(%g) = %.9g, expected %.9g", x, got, want); return why; }
  }
  for (int i = 1; i <= 400; i++) {
    float x = i * 0.37f;
    double want = log((double)x), got = log1f_pos(x);
    if (fabs(got - want) > 2e-7 * (fabs(want) + 1)) { snprintf(why, whylen, "ln(%g) = %.9g, expected %.9g", x, got, want); return why; }
  }
  /* LayerNorm, GELU and the cross-entropy against their definitions. */
  enum { N = 7, D = 45, V = 19 };
  float x[N * D], g[D], b[D], y[N * D], mean[N], rstd[N], logits[N * V], w[N];
  int32_t tgt[N];
  for (int i = 0; i < N * D; i++) x[i] = test_value(i, 3);
  for (int i = 0; i < D; i++) { g[i] = 1 + test_value(i, 4) / 4; b[i] = test_value(i, 5) / 4; }
  layernorm_fwd(x, g, b, y, mean, rstd, N, D, 1e-5f);
  for (int r = 0; r < N; r++) {
    double m = 0, v = 0;
    for (int c = 0; c < D; c++) m += x[r * D + c];
    m /= D;
    for (int c = 0; c < D; c++) v += (x[r * D + c] - m) * (x[r * D + c] - m);
    double rs = 1 / sqrt(v / D + 1e-5);
    for (int c = 0; c < D; c++) {
      double want = (x[r * D + c] - m) * rs * g[c] + b[c];
      if (fabs(y[r * D + c] - want) > 1e-5 * (fabs(want) + 1)) { snprintf(why, whylen, "layernorm row %d col %d: %g, expected %g", r, c, y[r * D + c], want); return why; }
    }
  }
  gelu_fwd(x, y, N * D);
  for (int i = 0; i < N * D; i++) {
    double v = x[i], want = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    if (fabs(y[i] - want) > 2e-6 * (fabs(want) + 1)) { snprintf(why, whylen, "gelu(%g) = %g, expected %g", v, y[i], want); return why; }
  }
  double wsum = 0, want_loss = 0;
  for (int r = 0; r < N; r++) { tgt[r] = (r * 7) % V; w[r] = (float)(r % 3); wsum += w[r]; }
  for (int i = 0; i < N * V; i++) logits[i] = 3 * test_value(i, 6);
  for (int r = 0; r < N; r++) {
    double m = -1e30, s = 0;
    for (int c = 0; c < V; c++) if (logits[r * V + c] > m) m = logits[r * V + c];
    for (int c = 0; c < V; c++) s += exp(logits[r * V + c] - m);
    want_loss -= w[r] * (logits[r * V + tgt[r]] - m - log(s));
  }
  want_loss /= wsum;
  double got_loss = xent_fwd_bwd(logits, tgt, w, N, V);
  if (fabs(got_loss - want_loss) > 1e-5 * (fabs(want_loss) + 1)) { snprintf(why, whylen, "cross-entropy %g, expected %g", got_loss, want_loss); return why; }
  return NULL;
}

KERNEL_HEAP(self_test, 0, 0)
  (void)a;
  char why[256];
  const char *r = self_test(why, sizeof why);
  napi_value out;
  if (r) napi_create_string_utf8(env, r, NAPI_AUTO_LENGTH, &out);
  else napi_get_null(env, &out);
  return out;
END

/** What was built: ISA, vector width, micro-tile, compiler, flags, threads. */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o;
  napi_create_object(env, &o);
  napi_value v;
  napi_create_string_utf8(env, GMT_ISA, NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "isa", v);
  napi_set_named_property(env, o, "vectorFloats", num(env, VW));
  napi_set_named_property(env, o, "microTile", num(env, MR * 1000 + NR));
  napi_create_string_utf8(env, __VERSION__, NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "compiler", v);
  napi_create_string_utf8(env, GMT_BUILD_FLAGS, NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "flags", v);
  napi_set_named_property(env, o, "threads", num(env, pool.threads));
  return o;
}

static void free_heap(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  free(data);
}

NAPI_MODULE_INIT() {
  env_heap *h = (env_heap *)calloc(1, sizeof(env_heap));
  if (!h) return NULL;
  napi_set_instance_data(env, h, free_heap, NULL);
#define FN(name) { #name, NULL, js_##name, NULL, NULL, NULL, napi_default, h }
  napi_property_descriptor props[] = {
    FN(bind), FN(gemm_scratch_floats), FN(gemm), FN(copy_add), FN(scale_add), FN(fill_zero),
    FN(layernorm_fwd), FN(layernorm_bwd), FN(gelu_fwd), FN(gelu_bwd), FN(attention_fwd), FN(attention_bwd),
    FN(embed_fwd), FN(embed_bwd), FN(xent_fwd_bwd), FN(adamw), FN(sum_squares), FN(select_work_words),
    FN(select_abs_parts), FN(mark_bits), FN(mask_apply), FN(and_popcount), FN(kv_store), FN(attention_decode), FN(argmax_rows),
    FN(set_threads), FN(self_test), FN(info), FN(fma_peak),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
