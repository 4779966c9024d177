/* Integer step of lm-small (QuantizedByteLM): the native CPU kernel behind
 * genjscc.core.source.quantized, loaded with ctypes by genjscc/core/source/_lm_native.py.
 *
 * Why native: the torch step spends about half its time in a float32 GEMM of int8 values
 * (9.4 MB of float32 weights streamed per step) and the other half in a dozen int64 tensor
 * operations (table lookups, rescaling, the frequency table), each paying torch's per-op cost.
 * This kernel computes the same integers (docs/lm-compression.md, "arithmetic"):
 *
 *   - Matrix products: int8 weights (2.4 MB for H = 768, a quarter of the torch step's
 *     float32 copy) packed so that one 16-byte load, sign-extended to int16, feeds
 *     _mm256_madd_epi16 with 8 outputs x 2 inputs against a broadcast int16 input pair, the
 *     pairs added into int32 (AVX2), 4 rows x 16 outputs per register tile; a portable C
 *     loop elsewhere. (Widening is exact for every int8 value; _mm256_maddubs_epi16 would
 *     saturate on signed x signed products, and without VNNI it needs as many multiplies.) Every
 *     product and sum is an exact integer (|sum| <= K * 128 * 128 < 2**31 for K <= 1040),
 *     so the result equals the float32 GEMM's whatever the order: the same bits as the
 *     torch path by construction, not by luck.
 *   - Rescaling, gate tables, cell update and the frequency table: the int64 formulas of
 *     quantized.py / fixed_point.py, written out per element (arithmetic right shifts, floor
 *     division of non-negative integers, the first largest entry taking the deficit).
 *   - Rows are independent: threads (pthreads, no OpenMP runtime beside torch's) pull units
 *     of 8 rows from a counter, each unit streaming the whole weight matrix once; the outer
 *     loop runs over 16-output weight blocks (12 KB each for H = 768, L1-resident) and the
 *     inner over 4-row tiles, so a block is read from memory once per unit.
 *   - Dispatch: AVX2 code is compiled with a target attribute (no -march) and chosen at run
 *     time when the CPU has AVX2; the caller may force the portable path (isa 0).
 *
 * The caller (the Python binding) checks the model's value ranges at load (quantized.py
 * _check_tensors): weights in int8, tables and multipliers within the bounds below, so no
 * int64 expression here can overflow. States are checked here, per call (a state handed in
 * from outside must not make the arithmetic wrap).
 *
 * C API: gj_lm_version(), gj_lm_best_isa(), gj_lm_packed_size(), gj_lm_pack(), gj_lm_gemm(),
 * gj_lm_step().
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define GJ_HAVE_AVX2 1
#else
#define GJ_HAVE_AVX2 0
#endif

#define GJ_LM_VERSION 1
#define GJ_LM_MAX_LAYERS 8
#define GJ_LM_MAX_THREADS 64
#define TILE_ROWS 4 /* rows of a register tile: 8 accumulators (6 rows measured slower) */

/* The fixed-point constants of fixed_point.py (the binding checks they agree). */
#define GATE_FRAC 12
#define OUT_FRAC 15
#define LUT_OFFSET (8 << GATE_FRAC) /* table index of pre-activation 0 */
#define LUT_SIZE (16 << GATE_FRAC)
#define CELL_LIMIT (256 << GATE_FRAC)
#define ACT_MAX 127
#define MULT_SHIFT 24
#define PRECISION 24

enum { ISA_PORTABLE = 0, ISA_AVX2 = 1 };

/* Loops the compiler vectorizes get an AVX2 build beside the baseline one, chosen when the
 * library loads (integer code: both builds compute the same values). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define GJ_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GJ_CLONES
#endif

typedef struct {
    int32_t layers;       /* 1 .. GJ_LM_MAX_LAYERS */
    int32_t hidden;       /* H; gate rows G = 4 H in the order i, f, o, g */
    int32_t vocab;        /* head rows */
    int32_t exp_size;     /* entries of the exp table */
    const int32_t *input_table;                 /* [257][G] Q12, first layer's x + biases */
    const int8_t *w_hh[GJ_LM_MAX_LAYERS];      /* packed (gj_lm_pack) [G][H] */
    const int64_t *w_hh_mult[GJ_LM_MAX_LAYERS]; /* [G] Q24 */
    const int8_t *w_ih[GJ_LM_MAX_LAYERS];      /* layers >= 1: packed [G][H] */
    const int64_t *w_ih_mult[GJ_LM_MAX_LAYERS];
    const int64_t *b_ih[GJ_LM_MAX_LAYERS];      /* [G] Q12 */
    const int8_t *head;                        /* packed [vocab][H] */
    const int64_t *head_mult;                   /* [vocab] Q24 */
    const int64_t *head_bias;                   /* [vocab] Q8 */
    const int32_t *sigmoid;                     /* [LUT_SIZE] Q15 */
    const int32_t *tanh_;                       /* [LUT_SIZE] Q15 */
    const int64_t *exp_;                        /* [exp_size] */
} gj_lm_model;

int gj_lm_version(void) { return GJ_LM_VERSION; }

/* 1 where the CPU runs the AVX2 code, else 0 (portable C). */
int gj_lm_best_isa(void) {
#if GJ_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? ISA_AVX2 : ISA_PORTABLE;
#else
    return ISA_PORTABLE;
#endif
}

/* ---- packed weights ----------------------------------------------------------------------
 * W [n][k] int8 -> int8 blocks of 8 outputs: packed[((jb * kp2) + p) * 16 + 2 jj + e] =
 * W[8 jb + jj][2 p + e] (zero beyond n or k), kp2 = ceil(k / 2). 16 bytes hold 8 outputs x
 * 2 inputs: sign-extended to int16, what _mm256_madd_epi16 multiplies by a broadcast input
 * pair. */

static int64_t blocks_of(int64_t n) { return (n + 7) / 8; }
static int64_t pairs_of(int64_t k) { return (k + 1) / 2; }

int64_t gj_lm_packed_size(int64_t n, int64_t k) { return blocks_of(n) * pairs_of(k) * 16; }

void gj_lm_pack(const int8_t *w, int64_t n, int64_t k, int8_t *packed) {
    const int64_t kp2 = pairs_of(k);
    memset(packed, 0, (size_t)gj_lm_packed_size(n, k));
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < k; i++)
            packed[((j / 8) * kp2 + i / 2) * 16 + 2 * (j % 8) + (i % 2)] = w[j * k + i];
}

/* ---- GEMM: out[r][j] = sum_i x[r][i] W[j][i] for r < rows, j < n ---------------------------
 * x: int16 rows of 2 kp2 entries (the odd tail padded with 0), stride xs; out: int32, stride
 * os. */

static void gemm_portable(const int16_t *x, int64_t rows, int64_t xs, int64_t kp2,
                          const int8_t *w, int64_t n, int32_t *out, int64_t os) {
    for (int64_t jb = 0; jb < blocks_of(n); jb++) {
        const int8_t *wb = w + jb * kp2 * 16;
        const int64_t width = n - 8 * jb < 8 ? n - 8 * jb : 8;
        for (int64_t r = 0; r < rows; r++) {
            const int16_t *xr = x + r * xs;
            int32_t acc[8] = {0};
            for (int64_t p = 0; p < kp2; p++)
                for (int jj = 0; jj < 8; jj++)
                    acc[jj] += (int32_t)xr[2 * p] * wb[p * 16 + 2 * jj] +
                               (int32_t)xr[2 * p + 1] * wb[p * 16 + 2 * jj + 1];
            for (int64_t jj = 0; jj < width; jj++) out[r * os + 8 * jb + jj] = acc[jj];
        }
    }
}

#if GJ_HAVE_AVX2
#define GJ_AVX2 __attribute__((target("avx2")))

GJ_AVX2 static inline __m256i pair_at(const int16_t *x) {
    int32_t v;
    memcpy(&v, x, sizeof v); /* x[0] in the low half: madd's even element */
    return _mm256_set1_epi32(v);
}

GJ_AVX2 static inline void store_block(int32_t *dst, __m256i v, int64_t width) {
    if (width == 8) {
        _mm256_storeu_si256((__m256i *)dst, v);
    } else {
        int32_t tmp[8];
        _mm256_storeu_si256((__m256i *)tmp, v);
        memcpy(dst, tmp, sizeof(int32_t) * (size_t)width);
    }
}

/* R rows (1..4) x 2 blocks of 8 outputs (b1 may repeat b0 when only one is left; its stores
 * are then skipped): 2 R accumulators, 2 weight vectors and one broadcast in registers. */
#define GJ_TILE(R)                                                                              \
    GJ_AVX2 static void tile_##R(const int16_t *x, int64_t xs, int64_t kp2, const __m128i *b0, \
                                 const __m128i *b1, int32_t *out, int64_t os, int64_t w0,      \
                                 int64_t w1) {                                                 \
        __m256i a0[R], a1[R];                                                                  \
        for (int r = 0; r < R; r++) a0[r] = a1[r] = _mm256_setzero_si256();                    \
        for (int64_t p = 0; p < kp2; p++) {                                                    \
            const __m256i v0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b0 + p));                  \
            const __m256i v1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b1 + p));                  \
            for (int r = 0; r < R; r++) {                                                      \
                const __m256i xp = pair_at(x + r * xs + 2 * p);                                \
                a0[r] = _mm256_add_epi32(a0[r], _mm256_madd_epi16(xp, v0));                    \
                a1[r] = _mm256_add_epi32(a1[r], _mm256_madd_epi16(xp, v1));                    \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < R; r++) {                                                          \
            store_block(out + r * os, a0[r], w0);                                              \
            if (w1 > 0) store_block(out + r * os + 8, a1[r], w1);                              \
        }                                                                                      \
    }
GJ_TILE(1)
GJ_TILE(2)
GJ_TILE(3)
GJ_TILE(4)

GJ_AVX2 static void gemm_avx2(const int16_t *x, int64_t rows, int64_t xs, int64_t kp2,
                              const int8_t *w, int64_t n, int32_t *out, int64_t os) {
    const int64_t nb = blocks_of(n);
    for (int64_t jb = 0; jb < nb; jb += 2) {
        const __m128i *b0 = (const __m128i *)(w + jb * kp2 * 16);
        const __m128i *b1 = jb + 1 < nb ? b0 + kp2 : b0;
        const int64_t w0 = n - 8 * jb < 8 ? n - 8 * jb : 8;
        const int64_t left = n - 8 * (jb + 1);
        const int64_t w1 = jb + 1 < nb ? (left < 8 ? left : 8) : 0;
        for (int64_t r = 0; r < rows; r += TILE_ROWS) {
            const int16_t *xr = x + r * xs;
            int32_t *o = out + r * os + 8 * jb;
            switch (rows - r < TILE_ROWS ? rows - r : TILE_ROWS) {
            case 1: tile_1(xr, xs, kp2, b0, b1, o, os, w0, w1); break;
            case 2: tile_2(xr, xs, kp2, b0, b1, o, os, w0, w1); break;
            case 3: tile_3(xr, xs, kp2, b0, b1, o, os, w0, w1); break;
            default: tile_4(xr, xs, kp2, b0, b1, o, os, w0, w1); break;
            }
        }
    }
}
#endif

static void gemm(int isa, const int16_t *x, int64_t rows, int64_t xs, int64_t kp2,
                 const int8_t *w, int64_t n, int32_t *out, int64_t os) {
#if GJ_HAVE_AVX2
    if (isa == ISA_AVX2) {
        gemm_avx2(x, rows, xs, kp2, w, n, out, os);
        return;
    }
#endif
    (void)isa;
    gemm_portable(x, rows, xs, kp2, w, n, out, os);
}

/* out [rows][n] int32 = x [rows][k] (int8 values) times packed W [n][k] transposed.
 * Returns 0, -1 when memory ran out, -2 on bad arguments (isa 1 where AVX2 is missing). */
int gj_lm_gemm(const int8_t *x, int64_t rows, int64_t k, const int8_t *packed, int64_t n,
               int32_t *out, int32_t isa) {
    if (rows < 0 || k < 1 || n < 1 || (isa != ISA_PORTABLE && isa != gj_lm_best_isa()))
        return -2;
    const int64_t kp2 = pairs_of(k);
    int16_t *x16 = (int16_t *)calloc((size_t)(rows * 2 * kp2 + 1), sizeof(int16_t));
    if (!x16) return -1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < k; i++) x16[r * 2 * kp2 + i] = x[r * k + i];
    gemm(isa, x16, rows, 2 * kp2, kp2, packed, n, out, n);
    free(x16);
    return 0;
}

/* ---- the step ----------------------------------------------------------------------------- */

static inline int64_t rescale(int64_t acc, int64_t mult) {
    return (acc * mult + ((int64_t)1 << (MULT_SHIFT - 1))) >> MULT_SHIFT;
}

static inline int64_t lut(const int32_t *table, int64_t q12) {
    int64_t i = q12 + LUT_OFFSET;
    i = i < 0 ? 0 : i;
    return table[i > LUT_SIZE - 1 ? LUT_SIZE - 1 : i];
}

typedef struct {
    const gj_lm_model *m;
    const int64_t *state;  /* [2][layers][batch][H] */
    const int64_t *inputs; /* [batch] */
    int64_t batch;
    int64_t *new_state;
    int64_t *freqs;        /* [batch][vocab] */
    int isa;
    int64_t next_unit;     /* shared counter (atomic): units of UNIT_ROWS rows */
    int rc;                /* the first failure (atomic), else 0 */
} job_t;

/* Rows a thread takes at once: two register tiles. Threads pull units from a counter, so a
 * helper thread that starts late (a busy machine) leaves its share to the others instead of
 * holding up the step. */
#define UNIT_ROWS 8

/* The frequency table of fixed_point.frequencies for one row of Q8 logits. */
static int frequencies(const gj_lm_model *m, const int64_t *logits, int64_t *q) {
    const int32_t v = m->vocab;
    int64_t top = logits[0];
    for (int32_t s = 1; s < v; s++) top = logits[s] > top ? logits[s] : top;
    int64_t sum = 0;
    for (int32_t s = 0; s < v; s++) {
        int64_t d = top - logits[s];
        q[s] = m->exp_[d > m->exp_size - 1 ? m->exp_size - 1 : d];
        sum += q[s];
    }
    if (sum <= 0) return -2;
    const int64_t budget = ((int64_t)1 << PRECISION) - v;
    int64_t used = 0, best = 0;
    for (int32_t s = 0; s < v; s++) {
        q[s] = q[s] * budget / sum; /* non-negative operands: C's division is the floor */
        used += q[s];
        if (q[s] > q[best]) best = s; /* the first largest, as torch.argmax */
    }
    q[best] += budget - used;
    for (int32_t s = 0; s < v; s++) q[s] += 1;
    return 0;
}

/* Table indexes of one row's gate pre-activations: x (the input part, int32 table row or
 * int64) plus the rescaled h GEMM `acc`, clamped to the tables (lut()). */
GJ_CLONES static void gate_indexes(int64_t g, const int32_t *x32, const int64_t *x64,
                                   const int32_t *acc, const int64_t *mult, int32_t *index) {
    for (int64_t k = 0; k < g; k++) {
        int64_t i = (x32 ? x32[k] : x64[k]) + rescale(acc[k], mult[k]) + LUT_OFFSET;
        i = i < 0 ? 0 : i;
        index[k] = (int32_t)(i > LUT_SIZE - 1 ? LUT_SIZE - 1 : i);
    }
}

/* One row's gates (table indexes, rows i, f, o then g) -> new cell and hidden state, as
 * quantized.py's torch step. */
static void cell_row(const gj_lm_model *m, const int32_t *index, const int64_t *c_old,
                     int64_t *h_new, int64_t *c_new, int16_t *hout) {
    const int64_t h = m->hidden;
    const int shift = 2 * OUT_FRAC - GATE_FRAC; /* i * g is Q30: back to Q12, rounded */
    const int32_t *sig = m->sigmoid, *tanh_ = m->tanh_;
    for (int64_t j = 0; j < h; j++) {
        const int64_t i = sig[index[j]], f = sig[index[h + j]], o = sig[index[2 * h + j]];
        const int64_t gg = tanh_[index[3 * h + j]];
        int64_t c = (f * c_old[j] + (1 << (OUT_FRAC - 1))) >> OUT_FRAC;
        c += (i * gg + (1 << (shift - 1))) >> shift;
        c = c < -CELL_LIMIT ? -CELL_LIMIT : (c > CELL_LIMIT ? CELL_LIMIT : c);
        const int64_t hq = (o * lut(tanh_, c) * ACT_MAX + (1 << 29)) >> 30;
        c_new[j] = c;
        h_new[j] = hq;
        hout[j] = (int16_t)hq;
    }
}

/* Rows r0 .. r1 - 1 of a step. */
static int work_rows(const job_t *w, int64_t r0, int64_t r1) {
    const gj_lm_model *m = w->m;
    const int64_t rows = r1 - r0, h = m->hidden, g = 4 * h, kp2 = pairs_of(h);
    const int64_t xs = 2 * kp2, batch = w->batch, v = m->vocab;
    if (rows <= 0) return 0;
    const int64_t width = g > v ? g : v;
    int16_t *hin = (int16_t *)calloc((size_t)(2 * rows * xs), sizeof(int16_t));
    int16_t *hout = hin ? hin + rows * xs : NULL;
    int32_t *acc = (int32_t *)malloc(sizeof(int32_t) * (size_t)(rows * width));
    /* x: deeper layers' input gates, then the logits */
    int64_t *x = (int64_t *)malloc(sizeof(int64_t) * (size_t)(rows * (m->layers > 1 ? width : v)));
    const int32_t **x32 = (const int32_t **)malloc(sizeof(int32_t *) * (size_t)rows);
    int32_t *index = (int32_t *)malloc(sizeof(int32_t) * (size_t)g);
    int rc = 0;
    if (!hin || !acc || !x || !x32 || !index) {
        rc = -1;
        goto done;
    }
    for (int64_t r = 0; r < rows; r++) x32[r] = m->input_table + w->inputs[r0 + r] * g;
    for (int32_t layer = 0; layer < m->layers; layer++) {
        const int64_t *h_old = w->state + ((int64_t)layer * batch + r0) * h;
        const int64_t *c_old = w->state + ((int64_t)(m->layers + layer) * batch + r0) * h;
        int64_t *h_new = w->new_state + ((int64_t)layer * batch + r0) * h;
        int64_t *c_new = w->new_state + ((int64_t)(m->layers + layer) * batch + r0) * h;
        if (layer) { /* the layer below's new h (in hout) through w_ih */
            gemm(w->isa, hout, rows, xs, kp2, m->w_ih[layer], g, acc, g);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < g; j++)
                    x[r * g + j] = rescale(acc[r * g + j], m->w_ih_mult[layer][j]) +
                                   m->b_ih[layer][j];
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < h; j++) hin[r * xs + j] = (int16_t)h_old[r * h + j];
        gemm(w->isa, hin, rows, xs, kp2, m->w_hh[layer], g, acc, g);
        for (int64_t r = 0; r < rows; r++) {
            gate_indexes(g, layer ? NULL : x32[r], x + r * g, acc + r * g, m->w_hh_mult[layer],
                         index);
            cell_row(m, index, c_old + r * h, h_new + r * h, c_new + r * h, hout + r * xs);
        }
    }
    gemm(w->isa, hout, rows, xs, kp2, m->head, v, acc, v);
    for (int64_t r = 0; r < rows && rc == 0; r++) {
        for (int64_t s = 0; s < v; s++)
            x[r * v + s] = rescale(acc[r * v + s], m->head_mult[s]) + m->head_bias[s];
        rc = frequencies(m, x + r * v, w->freqs + (r0 + r) * v);
    }
done:
    free(hin), free(acc), free(x), free(x32), free(index);
    return rc;
}

static void *worker(void *arg) {
    job_t *job = (job_t *)arg;
    const int64_t units = (job->batch + UNIT_ROWS - 1) / UNIT_ROWS;
    for (;;) {
        const int64_t unit = __atomic_fetch_add(&job->next_unit, 1, __ATOMIC_RELAXED);
        if (unit >= units) break;
        const int64_t r0 = unit * UNIT_ROWS;
        const int rc = work_rows(job, r0, r0 + UNIT_ROWS < job->batch ? r0 + UNIT_ROWS
                                                                       : job->batch);
        int none = 0;
        if (rc != 0)
            __atomic_compare_exchange_n(&job->rc, &none, rc, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED);
    }
    return NULL;
}

/* One step of `batch` rows: state [2][layers][batch][H] int64 (plane 0: hidden states in
 * [-127, 127], plane 1: Q12 cells in [-CELL_LIMIT, CELL_LIMIT]), inputs [batch] in [0, 256]
 * -> new_state (same layout), freqs [batch][vocab] int64 (rows summing to 2**24, >= 1).
 * Returns 0, -1 when memory ran out, -2 on bad arguments or a state out of range. */
int gj_lm_step(const gj_lm_model *m, const int64_t *state, const int64_t *inputs,
               int64_t batch, int64_t *new_state, int64_t *freqs, int32_t threads,
               int32_t isa) {
    if (!m || batch < 0 || m->layers < 1 || m->layers > GJ_LM_MAX_LAYERS || m->hidden < 1 ||
        m->vocab < 2 || m->exp_size < 1 || (isa != ISA_PORTABLE && isa != gj_lm_best_isa()))
        return -2;
    const int64_t h = m->hidden, planes = 2 * (int64_t)m->layers * batch * h;
    for (int64_t r = 0; r < batch; r++)
        if (inputs[r] < 0 || inputs[r] > 256) return -2;
    for (int64_t i = 0; i < planes / 2; i++)
        if (state[i] < -ACT_MAX || state[i] > ACT_MAX) return -2;
    for (int64_t i = planes / 2; i < planes; i++)
        if (state[i] < -CELL_LIMIT || state[i] > CELL_LIMIT) return -2;
    if (batch == 0) return 0;
    /* threads - 1 helpers beside this thread, at most one per unit of rows; a helper that
     * cannot be created leaves its units to the others */
    int64_t helpers = (threads < 1 ? 1 : threads) - 1;
    if (helpers > GJ_LM_MAX_THREADS - 1) helpers = GJ_LM_MAX_THREADS - 1;
    if (helpers > (batch + UNIT_ROWS - 1) / UNIT_ROWS - 1)
        helpers = (batch + UNIT_ROWS - 1) / UNIT_ROWS - 1;
    job_t job = {m, state, inputs, batch, new_state, freqs, isa, 0, 0};
    pthread_t tid[GJ_LM_MAX_THREADS];
    int started = 0;
    for (int64_t t = 0; t < helpers; t++) {
        if (pthread_create(&tid[started], NULL, worker, &job) != 0) break;
        started++;
    }
    worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    return job.rc;
}

/* Lets setuptools build this file as a CPython extension module (it is loaded with ctypes;
 * importing it as a module gives an empty module instead of an ImportError). */
#ifdef GJ_PYTHON_MODULE
#include <Python.h>
static struct PyModuleDef gj_module = {PyModuleDef_HEAD_INIT, "_lm_kernel",
                                       "native integer LM kernel (loaded with ctypes)", -1, NULL};
PyMODINIT_FUNC PyInit__lm_kernel(void) { return PyModule_Create(&gj_module); }
#endif
