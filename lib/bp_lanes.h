/* The lane engine of bp_kernel.c for one lane width W: included once per W (4, 8, 16) with W
 * defined. VF / VI are GCC vector types of W floats / int32s, so every operation below works
 * on W words at once: the code is SIMD by construction, not by the auto-vectorizer's grace.
 * Message arrays hold one VF per edge (W words side by side, "batch-major").
 */

#define VF CAT(vf, W)
#define VI CAT(vi, W)
#define FN(name) CAT(name, W)

typedef float VF __attribute__((vector_size(4 * W)));
typedef int32_t VI __attribute__((vector_size(4 * W)));

GJ_INLINE VF FN(splat)(float x) { return (VF){0} + x; }
/* m ? a : b for a mask m of -1 / 0 lanes (what vector comparisons return) */
GJ_INLINE VF FN(vsel)(VI m, VF a, VF b) { return (VF)((m & (VI)a) | (~m & (VI)b)); }
GJ_INLINE VF FN(vabs)(VF a) { return (VF)((VI)a & 0x7fffffff); }
GJ_INLINE VF FN(vmin)(VF a, VF b) { return FN(vsel)(a < b, a, b); }
GJ_INLINE VF FN(vmax)(VF a, VF b) { return FN(vsel)(a > b, a, b); }

/* exp(x) (Cephes expf polynomial, Cody-Waite reduction), x clamped to [-87, 87] first so the
 * result is a normal float: channel LLRs -> ratios. */
GJ_INLINE VF FN(exp_any)(VF x) {
    x = FN(vmax)(FN(vmin)(x, FN(splat)(87.0f)), FN(splat)(-87.0f));
    VI k = __builtin_convertvector(x * 1.44269504088896341f + 256.5f, VI) - 256; /* floor */
    VF kf = __builtin_convertvector(k, VF);
    VF r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    VF p = FN(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (VF)((k + 127) << 23);
}

/* log(u) for normal u > 0 (Cephes logf polynomial on [sqrt(1/2), sqrt(2))): output LLRs. */
GJ_INLINE VF FN(log_pos)(VF u) {
    VI b = (VI)u;
    VI e = ((b >> 23) & 0xff) - 127;
    VF m = (VF)((b & 0x007fffff) | 0x3f800000); /* [1, 2) */
    VI big = m > 1.41421356237f;
    m = FN(vsel)(big, 0.5f * m, m);
    e -= big; /* big is -1 where true */
    VF f = m - 1.0f;
    VF z = f * f;
    VF p = FN(splat)(7.0376836292e-2f);
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    VF y = f * z * p;
    VF ef = __builtin_convertvector(e, VF);
    y += -2.12194440e-4f * ef;
    y += -0.5f * z;
    return f + y + 0.693359375f * ef;
}

/* Min-sum check-node update (the rules of bp.py, LLR domain): v [d] (variable-to-check
 * messages) -> out [d] (check-to-variable); the sign is the product of the others' signs. */
GJ_INLINE void FN(check_minsum)(const gj_bp_code *c, int d, const VF *restrict v,
                                VF *restrict out) {
    const VI sign_bit = (VI){0} + (int32_t)0x80000000u;
    VI sgn = (VI){0};
    for (int j = 0; j < d; j++) sgn ^= (VI)v[j];
    const float gain = c->rule == RULE_NORMALIZED ? c->scaling : 1.0f;
    if (d == 1) { /* no other edge: the bit is forced to 0, as bp.py */
        out[0] = FN(splat)(c->llr_clip * gain);
        return;
    }
    const VF off = FN(splat)(c->rule == RULE_OFFSET ? c->offset : 0.0f);
    const VF zero = (VF){0};
    VF min1 = FN(splat)(INFINITY), min2 = min1;
    VI idx = (VI){0};
    for (int j = 0; j < d; j++) {
        VF a = FN(vmax)(FN(vabs)(v[j]) - off, zero); /* off = 0 unless offset min-sum */
        VI lower = a < min1;
        min2 = FN(vsel)(lower, min1, FN(vmin)(a, min2));
        idx = (lower & j) | (~lower & idx);
        min1 = FN(vsel)(lower, a, min1);
    }
    min1 *= gain;
    min2 *= gain;
    for (int j = 0; j < d; j++) {
        VF m = FN(vsel)(idx == j, min2, min1);
        out[j] = (VF)((VI)m | ((sgn ^ (VI)v[j]) & sign_bit));
    }
}

/* Sum-product in the likelihood-ratio domain (the tanh rule without transcendentals).
 * Edge j of the check has the posterior ratio p[j] of its variable and its own old message
 * ratio r[j] (both e^-llr); the extrinsic ratio is q = p / r and tanh(v2c / 2) =
 * (1 - q) / (1 + q) = (r - p) / (r + p) = N / D, without a division. Each edge gets the product
 * of the others' N / D as (prefix * suffix products of N) / (... of D); N and D are first scaled
 * by the same power of two (exact) so that D is in [1, 2) and the products stay in range. The
 * new message ratio is (1 - o) / (1 + o) = (Dx - Nx) / (Dx + Nx), clamped to [e^-clip, e^clip]
 * as bp.py clamps |c2v| <= llr_clip. One division per edge. tmp: 3 d vectors. */
GJ_INLINE void FN(check_ratio)(int d, const VF *restrict p, VF *restrict r, VF *restrict tmp,
                               VF rmin, VF rmax) {
    VF *num = tmp, *den = tmp + d, *pre = tmp + 2 * d; /* pre: N prefix; D prefix in den */
    VF accn = FN(splat)(1.0f), accd = accn;
    for (int j = 0; j < d; j++) {
        VF dn = r[j] + p[j], nm = r[j] - p[j];
        VF scale = (VF)((254 - (((VI)dn >> 23) & 0xff)) << 23); /* 2^-exponent(dn) */
        num[j] = nm * scale;
        VF dj = dn * scale;
        pre[j] = accn;
        accn *= num[j];
        den[j] = accd; /* D prefix before j; D itself is recomputed below */
        accd *= dj;
        r[j] = dj; /* scaled D, until the output replaces it */
    }
    VF sufn = FN(splat)(1.0f), sufd = sufn;
    for (int j = d - 1; j >= 0; j--) {
        VF nx = pre[j] * sufn, dx = den[j] * sufd;
        sufn *= num[j];
        sufd *= r[j];
        /* |nx| <= dx in exact arithmetic; rounding may cross it when o is +-1 to the float's
         * precision: clamping at 0 keeps the sign of the message (0 -> rmin, x / 0 -> rmax) */
        VF zero = (VF){0};
        VF out = FN(vmax)(dx - nx, zero) / FN(vmax)(dx + nx, zero);
        r[j] = FN(vmax)(FN(vmin)(out, rmax), rmin);
    }
}

/* Vector load / store of W floats at x, or of the m < W floats left at the end of an array. */
GJ_INLINE VF FN(load)(const float *x, int32_t m, VF fill) {
    VF v = fill;
    if (m >= W)
        memcpy(&v, x, sizeof(VF));
    else
        memcpy(&v, x, sizeof(float) * (size_t)m);
    return v;
}

GJ_INLINE void FN(store)(float *x, VF v, int32_t m) {
    if (m >= W)
        memcpy(x, &v, sizeof(VF));
    else
        memcpy(x, &v, sizeof(float) * (size_t)m);
}

/* The worker: W words in flight, each lane refilled as soon as its word stops.
 *
 * Min-sum rules keep LLRs (ch, post, c2v). The tanh rule keeps likelihood ratios
 * r = e^-llr = P(1)/P(0) instead: variable nodes multiply, check nodes take the product of
 * tanh(v2c/2) = (1 - q)/(1 + q), and no exp/log is needed inside an iteration (posteriors are
 * clamped to [1e-37, 1e37], LLR +-85, to stay normal floats; a posterior ratio > 1 decides 1). */
GJ_CLONES static int FN(worker)(job_t *job) {
    const gj_bp_code *c = job->code;
    const int32_t n = c->n, E = c->num_edges, D = c->max_check_degree;
    const int32_t *chk_ptr = c->chk_ptr, *chk_var = c->chk_var;
    const float clip = c->llr_clip;
    const int ratio = c->rule == RULE_TANH, layered = c->schedule == SCHEDULE_LAYERED;
    /* ratio domain bounds: messages within e^+-clip, posteriors within 1e+-37 */
    const VF rmin = FN(splat)(expf(-clip)), rmax = FN(splat)(expf(clip));
    const VF pmin = FN(splat)(1e-37f), pmax = FN(splat)(1e37f);
    const VF one = FN(splat)(1.0f);
    size_t vecs = (size_t)2 * n + E + 5 * D; /* vbuf: D, tbuf: 4 D */
    VF *buf = (VF *)aligned_alloc(64, (sizeof(VF) * vecs + 63) & ~(size_t)63);
    float *word = (float *)malloc(sizeof(VF) * (size_t)(n / W + 1)); /* whole vectors */
    if (!buf || !word) {
        free(buf);
        free(word);
        return -1;
    }
    /* free lanes compute on these values: zeros (LLRs) or ones (ratios) are harmless */
    for (size_t i = 0; i < vecs; i++) buf[i] = ratio ? one : (VF){0};
    FTZ_BEGIN; /* products below 1e-37 are clamped anyway: no slow denormal arithmetic */
    VF *ch = buf, *post = ch + n, *c2v = post + n, *vbuf = c2v + E, *tbuf = vbuf + D;
    int64_t lane_word[W];
    int32_t lane_iter[W];
    int active = 0, exhausted = 0;
    int64_t next = 0, end = 0; /* words taken, not yet in a lane */
    for (int l = 0; l < W; l++) lane_word[l] = -1;
    /* -1 in lanes whose messages c2v belong to their word, 0 in lanes (re)filled since the
     * last iteration: those read c2v as "no message" (LLR 0, ratio 1). Cheaper than resetting
     * a lane's column, which touches one cache line per edge. */
    VI keep = (VI){0};
    const VF fresh = ratio ? one : (VF){0};
    for (;;) {
        /* fill free lanes; words whose hard decision is a codeword need no lane at all */
        for (int l = 0; l < W && !exhausted; l++) {
            while (lane_word[l] < 0) {
                if (next == end) { /* take a few words at a time: one atomic add */
                    next = take_words(job, GRAB);
                    end = next + GRAB < job->batch ? next + GRAB : job->batch;
                    if (next >= job->batch) {
                        exhausted = 1;
                        break;
                    }
                }
                int64_t w = next++;
                const float *x = job->llr + w * n;
                for (int32_t i = 0; i < n; i += W) { /* NaN -> 0, clip (inf included) */
                    VF v = FN(load)(x + i, n - i, (VF){0});
                    v = FN(vsel)(v == v, v, (VF){0});
                    v = FN(vmax)(FN(vmin)(v, FN(splat)(clip)), FN(splat)(-clip));
                    memcpy(word + i, &v, sizeof(VF)); /* word has room for whole vectors */
                }
                if (c->num_iters == 0 || c->early_stop) {
                    int ok = word_syndrome_ok(c, word);
                    if (c->num_iters == 0 || ok) {
                        memcpy(job->post_out + w * n, word, sizeof(float) * (size_t)n);
                        hard_decisions(job->bits_out + w * n, word, n);
                        job->iters_out[w] = 0;
                        job->ok_out[w] = (uint8_t)ok;
                        continue;
                    }
                }
                if (ratio)
                    for (int32_t i = 0; i < n; i += W) {
                        VF v;
                        memcpy(&v, word + i, sizeof(VF));
                        v = FN(exp_any)(-v);
                        memcpy(word + i, &v, sizeof(VF));
                    }
                for (int32_t i = 0; i < n; i++) ch[i][l] = post[i][l] = word[i];
                keep[l] = 0;
                lane_word[l] = w;
                lane_iter[l] = 0;
                active++;
            }
        }
        if (!active) break;
        /* one iteration of every lane (free lanes compute on stale data, harmlessly) */
        for (int32_t k = 0; k < c->num_checks; k++) {
            int32_t e0 = chk_ptr[k], d = chk_ptr[k + 1] - e0;
            const int32_t *var = chk_var + e0;
            VF *m = c2v + e0;
            if (ratio) {
                for (int j = 0; j < d; j++) {
                    vbuf[j] = post[var[j]];
                    m[j] = FN(vsel)(keep, m[j], fresh);
                }
                if (layered) /* extrinsic ratios, for the posterior update below */
                    for (int j = 0; j < d; j++) tbuf[3 * D + j] = vbuf[j] / m[j];
                FN(check_ratio)(d, vbuf, m, tbuf, rmin, rmax);
                if (layered) /* the posteriors follow at once (bp.py: post = v2c + c2v) */
                    for (int j = 0; j < d; j++)
                        post[var[j]] = FN(vmax)(FN(vmin)(tbuf[3 * D + j] * m[j], pmax), pmin);
            } else {
                for (int j = 0; j < d; j++) vbuf[j] = post[var[j]] - (VF)((VI)m[j] & keep);
                FN(check_minsum)(c, d, vbuf, m);
                if (layered)
                    for (int j = 0; j < d; j++) post[var[j]] = vbuf[j] + m[j];
            }
        }
        keep = (VI){0} - 1;
        if (!layered) { /* flooding: posterior = channel + every incoming message */
            for (int32_t i = 0; i < n; i++) {
                int32_t a = c->var_ptr[i], b = c->var_ptr[i + 1];
                if (a == b) continue; /* in no check: keeps its channel value */
                VF s = c2v[c->var_edge[a]];
                if (ratio) {
                    s = s * ch[i];
                    for (int32_t q = a + 1; q < b; q++)
                        s = FN(vmax)(FN(vmin)(s, pmax), pmin) * c2v[c->var_edge[q]];
                    post[i] = FN(vmax)(FN(vmin)(s, pmax), pmin);
                } else {
                    for (int32_t q = a + 1; q < b; q++) s += c2v[c->var_edge[q]];
                    post[i] = s + ch[i];
                }
            }
        }
        /* syndrome of every lane's posterior (masks: -1 where a check fails) */
        VI unsat = (VI){0};
        for (int32_t k = 0; k < c->num_checks; k++) {
            VI par = (VI){0};
            if (ratio)
                for (int32_t e = chk_ptr[k]; e < chk_ptr[k + 1]; e++) par ^= post[chk_var[e]] > 1.0f;
            else
                for (int32_t e = chk_ptr[k]; e < chk_ptr[k + 1]; e++) par ^= post[chk_var[e]] < 0.0f;
            unsat |= par;
        }
        /* words that stop leave their lane */
        for (int l = 0; l < W; l++) {
            int64_t w = lane_word[l];
            if (w < 0) continue;
            int ok = unsat[l] == 0;
            lane_iter[l]++;
            if (!((c->early_stop && ok) || lane_iter[l] >= c->num_iters)) continue;
            float *dst = job->post_out + w * n;
            if (ratio) {
                for (int32_t i = 0; i < n; i++) word[i] = post[i][l];
                for (int32_t i = 0; i < n; i += W) {
                    VF v = FN(load)(word + i, W, one);
                    FN(store)(dst + i, -FN(log_pos)(v), n - i);
                }
                const float *x = job->llr + w * n; /* variables in no check: exact channel LLR */
                for (int32_t q = 0; q < job->num_isolated; q++) {
                    int32_t i = job->isolated[q];
                    dst[i] = sanitize(x[i], clip);
                }
            } else {
                for (int32_t i = 0; i < n; i++) dst[i] = post[i][l];
            }
            hard_decisions(job->bits_out + w * n, dst, n);
            job->iters_out[w] = lane_iter[l];
            job->ok_out[w] = (uint8_t)ok;
            lane_word[l] = -1; /* its stale data stays finite and harmless until a refill */
            active--;
        }
    }
    FTZ_END;
    free(buf);
    free(word);
    return 0;
}

#undef VF
#undef VI
#undef FN
