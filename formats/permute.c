/* permute.c — q/k row permutation between Meta's interleaved RoPE layout and
 * Hugging Face's rotate-half layout (lq_permute_qk_to_hf, lq_formats.h).
 *
 * Why: Meta's checkpoints (and so llama2.c and llama.cpp's GGUF, whose
 * converter permutes HF weights back) rotate adjacent pairs (2i, 2i+1) of each
 * head's q/k features, while HF rotates (i, i + head_dim/2). Within each head,
 * interleaved row 2i+j holds HF row j*head_dim/2 + i (j = 0, 1): this is the
 * inverse of HF's convert_llama_weights_to_hf.py permute and of llama.cpp's
 * LlamaModel.permute. Tested by tests/test_gguf.c (test_gguf_permute_*). */
#include <stdlib.h>
#include <string.h>

#include "lq_formats.h"

lq_status lq_permute_qk_to_hf(float *w, int n_heads, int head_dim, int64_t cols) {
    LQ_RETURN_IF(w == NULL || n_heads <= 0 || head_dim <= 0 || cols <= 0, LQ_ERR_ARG,
                 "lq_permute_qk_to_hf: bad arguments (n_heads %d, head_dim %d, cols %lld)",
                 n_heads, head_dim, (long long)cols);
    LQ_RETURN_IF(head_dim % 2 != 0, LQ_ERR_SHAPE,
                 "lq_permute_qk_to_hf: head_dim %d is odd (RoPE rotates pairs)", head_dim);
    size_t row_bytes, head_bytes;
    LQ_RETURN_IF(lq_mul_overflow((size_t)cols, sizeof(float), &row_bytes) ||
                     lq_mul_overflow(row_bytes, (size_t)head_dim, &head_bytes),
                 LQ_ERR_SHAPE, "lq_permute_qk_to_hf: head of %d x %lld floats overflows", head_dim,
                 (long long)cols);
    /* one head's rows at a time: the scratch stays small (head_dim x cols) */
    float *tmp;
    LQ_FORWARD(lq_malloc((void **)&tmp, head_bytes, "q/k permutation scratch"));
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (size_t)h * (size_t)head_dim * (size_t)cols;
        memcpy(tmp, head, head_bytes);
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(head + (size_t)(j * half + i) * (size_t)cols,
                       tmp + (size_t)(2 * i + j) * (size_t)cols, row_bytes);
    }
    free(tmp);
    return LQ_OK;
}
