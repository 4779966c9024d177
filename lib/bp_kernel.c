/* Batched belief-propagation decoding of binary linear codes: the native CPU kernel behind
 * genjscc.core.fec.bp.BPDecoder (backend "auto" on the CPU, or "native").
 *
 * Why native: the torch decoders issue many mid-sized tensor operations per iteration; on a
 * CPU the per-op overhead and memory traffic dominate (docs/benchmarks.md, bench:ldpc). This
 * kernel runs the same algorithms (sum-product and the min-sum variants, flooding and
 * row-layered schedules, early stop at zero syndrome) with the words of a batch in SIMD lanes:
 *
 *   - Batch-major layout: a thread keeps W words side by side (W = 16 with AVX-512, 8 with AVX2,
 *     4 with SSE2: one vector register); every message array holds one GCC vector of W floats
 *     per edge (bp_lanes.h, included once per W), so one pass over the Tanner graph's edge lists
 *     serves W words with explicit SIMD arithmetic.
 *   - Early stop per word: after each iteration every lane's syndrome is checked; a word that
 *     stops (zero syndrome, or the iteration limit) leaves its lane and the next waiting word
 *     takes it, so hard words do not hold up easy ones.
 *   - Sum-product runs in the likelihood-ratio domain (as gr-fec does, in float32 here): no
 *     exp/log inside an iteration. Min-sum rules run on LLRs, exactly as bp.py.
 *   - Threads (pthreads, no second OpenMP runtime beside torch's) pull words from one counter.
 *   - Runtime dispatch (GCC target_clones on x86-64 Linux): AVX-512, AVX2/FMA and baseline SSE2
 *     builds of the workers, chosen when the library loads; portable C elsewhere.
 *
 * Conventions (docs/conventions.md): llr = ln P(b=0)/P(b=1), hard decision b = (llr < 0).
 * Channel LLRs are sanitised as in bp.py: NaN -> 0, +-inf and |llr| > llr_clip -> +-llr_clip.
 * The min-sum rules match bp.py bit for bit on converging words; the sum-product rule differs
 * from bp.py's log-domain phi() only in float rounding and in where it saturates (|v2c| and
 * |c2v| are clipped to llr_clip in both; posteriors to +-85 here), so words at the edge of
 * failing may end differently, as between any two implementations.
 *
 * C API (called through ctypes by genjscc/core/fec/_native.py): gj_bp_decode(), gj_bp_version().
 */

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GJ_BP_VERSION 3

enum { RULE_TANH = 0, RULE_MINSUM = 1, RULE_NORMALIZED = 2, RULE_OFFSET = 3 };
enum { SCHEDULE_FLOODING = 0, SCHEDULE_LAYERED = 1 };

typedef struct {
    int32_t n;                 /* code length */
    int32_t num_checks;        /* non-empty checks, in processing order */
    int32_t num_edges;
    int32_t max_check_degree;
    const int32_t *chk_ptr;    /* [num_checks + 1]: edges of check c are chk_ptr[c] .. [c+1]-1 */
    const int32_t *chk_var;    /* [num_edges]: variable of each edge */
    const int32_t *var_ptr;    /* [n + 1]: edges of variable v are var_edge[var_ptr[v] ..] */
    const int32_t *var_edge;   /* [num_edges] (flooding): edge positions, by check order */
    int32_t schedule;          /* SCHEDULE_* */
    int32_t rule;              /* RULE_* */
    int32_t num_iters;         /* >= 0 */
    int32_t early_stop;        /* 0 or 1 */
    float scaling;             /* normalized min-sum gain */
    float offset;              /* offset min-sum offset */
    float llr_clip;            /* channel LLRs and the tanh rule's |v2c|, |c2v| are clipped */
} gj_bp_code;

/* -DGJ_NO_DISPATCH: one build for the compiler's target (e.g. with -march=native) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(GJ_NO_DISPATCH)
#define GJ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GJ_CLONES
#endif
#define GJ_INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* flush-to-zero and denormals-are-zero for this thread while it decodes, restored after */
#define FTZ_BEGIN unsigned gj_csr = _mm_getcsr(); _mm_setcsr(gj_csr | 0x8040)
#define FTZ_END _mm_setcsr(gj_csr)
#else
#define FTZ_BEGIN (void)0
#define FTZ_END (void)0
#endif

typedef struct {
    const gj_bp_code *code;
    const float *llr;
    float *post_out;
    uint8_t *bits_out;
    int32_t *iters_out;
    uint8_t *ok_out;
    int64_t batch;
    int64_t next_word;         /* shared counter (atomic) */
    int lanes;
    int failed;                /* set when a worker could not allocate */
    const int32_t *isolated;   /* variables in no check */
    int32_t num_isolated;
} job_t;

GJ_INLINE float sanitize(float x, float clip) { /* NaN -> 0, then clip (inf included) */
    x = (x != x) ? 0.0f : x;
    x = x > clip ? clip : x;
    return x < -clip ? -clip : x;
}

/* bits = (llr < 0), -0.0 deciding 0 as in bp.py */
static inline void hard_decisions(uint8_t *restrict bits, const float *restrict llr, int32_t n) {
    for (int32_t i = 0; i < n; i++) bits[i] = llr[i] < 0.0f;
}

/* Zero syndrome of one word's hard decision (x [n], stride 1). */
static int word_syndrome_ok(const gj_bp_code *c, const float *x) {
    for (int32_t k = 0; k < c->num_checks; k++) {
        uint32_t par = 0;
        for (int32_t e = c->chk_ptr[k]; e < c->chk_ptr[k + 1]; e++)
            par ^= (uint32_t)(x[c->chk_var[e]] < 0.0f); /* -0.0 decides 0, as llr < 0 */
        if (par) return 0;
    }
    return 1;
}

#define GRAB 4 /* words a worker takes from the shared counter at once */

static int64_t take_words(job_t *job, int64_t count) {
    return __atomic_fetch_add(&job->next_word, count, __ATOMIC_RELAXED);
}

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

#define W 4
#include "bp_lanes.h"
#undef W
#define W 8
#include "bp_lanes.h"
#undef W
#define W 16
#include "bp_lanes.h"
#undef W

static int run_worker(job_t *job) {
    switch (job->lanes) {
    case 4: return worker_4(job);
    case 8: return worker_8(job);
    default: return worker_16(job);
    }
}

static void *thread_main(void *arg) {
    job_t *job = (job_t *)arg;
    if (run_worker(job) != 0) __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* The lane width that fills one vector register of the CPU (and of the clone the dispatcher
 * picks for it): 16 with AVX-512, 8 with AVX2, 4 with SSE2 or NEON. Wider vectors than the
 * registers are lowered piecewise by GCC and run about 5x slower, not faster. */
static int register_lanes(void) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(GJ_NO_DISPATCH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 16;
    if (__builtin_cpu_supports("x86-64-v3")) return 8;
    return 4;
#elif defined(__AVX512F__)
    return 16;
#elif defined(__AVX2__)
    return 8;
#else
    return 4;
#endif
}

/* Lanes per thread: `lanes` if given (4, 8, 16), else the register width, narrower for small
 * batches (one word still takes a 4-wide lane set: as fast as a scalar one). */
static int choose_lanes(int64_t words_per_thread, int lanes) {
    if (lanes == 4 || lanes == 8 || lanes == 16) return lanes;
    int w = register_lanes();
    while (w > 4 && words_per_thread < w) w /= 2;
    return w;
}

/* Decode `batch` words: llr [batch][n] -> post [batch][n] (posterior LLRs at the stop),
 * bits [batch][n] (post < 0), iters [batch] (iterations run; 0: the channel hard decision was
 * a codeword), ok [batch] (zero syndrome). `lanes`: 4, 8 or 16 words per thread at once, 0 to
 * choose. Returns 0, or -1 when memory ran out, -2 on bad arguments. */
int gj_bp_decode(const gj_bp_code *code, const float *llr, int64_t batch, float *post,
                 uint8_t *bits, int32_t *iters, uint8_t *ok, int32_t num_threads,
                 int32_t lanes) {
    if (!code || batch < 0 || code->n <= 0 || code->num_iters < 0) return -2;
    if (batch > 0 && (!llr || !post || !bits || !iters || !ok)) return -2;
    if (batch == 0) return 0;
    if (num_threads < 1) num_threads = 1;
    if (num_threads > batch) num_threads = (int32_t)batch;
    if (num_threads > 64) num_threads = 64;
    job_t job = {code, llr, post, bits, iters, ok, batch, 0, 0, 0, NULL, 0};
    job.lanes = choose_lanes((batch + num_threads - 1) / num_threads, lanes);
    int32_t *isolated = (int32_t *)malloc(sizeof(int32_t) * (size_t)code->n);
    if (!isolated) return -1;
    for (int32_t i = 0; i < code->n; i++)
        if (code->var_ptr[i] == code->var_ptr[i + 1]) isolated[job.num_isolated++] = i;
    job.isolated = isolated;
    int rc = 0;
    if (num_threads == 1) {
        rc = run_worker(&job) ? -1 : 0;
    } else {
        pthread_t tid[64];
        int started = 0;
        for (int t = 0; t < num_threads - 1; t++) {
            if (pthread_create(&tid[t], NULL, thread_main, &job) != 0) break;
            started++;
        }
        thread_main(&job); /* this thread works too */
        for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
        rc = job.failed ? -1 : 0;
    }
    free(isolated);
    return rc;
}

int gj_bp_version(void) { return GJ_BP_VERSION; }

/* Lets setuptools build this file as a CPython extension module (it is loaded with ctypes;
 * importing it as a module gives an empty module instead of an ImportError). */
#ifdef GJ_PYTHON_MODULE
#include <Python.h>
static struct PyModuleDef gj_module = {PyModuleDef_HEAD_INIT, "_bp_kernel",
                                       "native BP kernel (loaded with ctypes)", -1, NULL};
PyMODINIT_FUNC PyInit__bp_kernel(void) { return PyModule_Create(&gj_module); }
#endif
