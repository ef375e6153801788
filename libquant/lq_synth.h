/* lq_synth.h — random-weight checkpoints with the real shapes of known models,
 * for speed work only (never for accuracy claims: the weights are noise).
 * Written as a Hugging Face directory (config.json + model.safetensors,
 * no tokenizer), streamed tensor by tensor so an 8B model needs no 16 GB
 * buffer. Weights ~ U(-a, a) with a = sqrt(3 / fan_in) (unit-variance
 * outputs), norms 1, so activations stay finite through any depth.
 * Tested by tests/test_synth.c. */
#ifndef LQ_SYNTH_H
#define LQ_SYNTH_H

#include <jansson.h>

#include "lq_common.h"

typedef struct {
    const char *name;
    const char *arch; /* HF architectures[0] */
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, max_pos;
    double rope_theta;
    int tied;
    int attn_bias;
} lq_synth_preset;

/* NULL when unknown. */
const lq_synth_preset *lq_synth_find(const char *name);
/* Presets for --help: returns the i-th or NULL past the end. */
const lq_synth_preset *lq_synth_preset_at(int i);
/* HF config.json for a preset (caller json_decref's). */
json_t *lq_synth_config(const lq_synth_preset *p);
/* Parameter count of a preset. */
int64_t lq_synth_n_params(const lq_synth_preset *p);
/* Write OUT_DIR/config.json + model.safetensors (dtype LQ_F16, LQ_BF16 or LQ_F32). */
lq_status lq_synth_write(const lq_synth_preset *p, const char *out_dir, int dtype, uint64_t seed,
                         void (*progress)(void *ud, int done, int total), void *ud);

/* The same weights as an in-memory checkpoint (no file). */
struct lq_checkpoint;
lq_status lq_synth_checkpoint(const lq_synth_preset *p, int dtype, uint64_t seed, struct lq_checkpoint **out);

#endif
