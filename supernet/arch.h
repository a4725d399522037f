/* arch.h — one candidate network: architecture, pruning and bit policy.
 *
 * A plain value with no pointers (DESIGN.md §4, aesthetics M2): per-stage
 * depth, per-block kernel size and mid channels (the channel pruning), per
 * block four bit-widths (pointwise weight and activation, depthwise weight
 * and activation), and the input resolution. Canonical: inactive blocks
 * (slot >= depth of their stage) and unused struct bytes are zero, so equal
 * networks compare (memcmp) and hash equal. Bits 0 means "full precision":
 * an fp32 arch has all bits 0; a quantized arch has every active block's four
 * bits in the space's bit set, and its fixed layers run at space.fixed_bits.
 *
 * Text form, one line, no spaces or commas, round-trips exactly:
 *   r28_k3m72q8686.k5m96q4444_k7m96.k3m144_...
 *   "r<res>" then one "_"-separated group per stage; in a group, "."-separated
 *   active blocks "k<kernel>m<mid>" followed by "q<pw_w><pw_a><dw_w><dw_a>"
 *   on a quantized arch. The number of blocks in a group is the stage depth.
 */
#ifndef APQ_ARCH_H
#define APQ_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"
#include "space.h"

#define ARCH_STR_MAX 1024

struct arch {
    uint16_t res;                    /* input resolution */
    uint8_t depth[SPACE_MAX_STAGES]; /* active blocks per stage */
    uint8_t ks[SPACE_MAX_BLOCKS];    /* kernel size, 0 when inactive */
    uint16_t mid[SPACE_MAX_BLOCKS];  /* mid channels, 0 when inactive */
    uint8_t pw_w[SPACE_MAX_BLOCKS];  /* bits of the 1x1 convs' weights */
    uint8_t pw_a[SPACE_MAX_BLOCKS];  /* bits of the 1x1 convs' input activations */
    uint8_t dw_w[SPACE_MAX_BLOCKS];  /* bits of the depthwise weights */
    uint8_t dw_a[SPACE_MAX_BLOCKS];  /* bits of the depthwise input activations */
};

static inline int arch_block_active(const struct space *s, const struct arch *a, int i) {
    return s->block[i].slot < a->depth[s->block[i].stage];
}
static inline int arch_is_quantized(const struct arch *a) {
    for (int i = 0; i < SPACE_MAX_BLOCKS; i++)
        if (a->pw_w[i]) return 1;
    return 0;
}

/* Zero the fields of inactive blocks. */
void arch_canonicalize(const struct space *s, struct arch *a);
/* APQ_OK, or APQ_ECONFIG with a detail line saying which field is off. */
int arch_check(const struct space *s, const struct arch *a);
/* Text form into buf (size >= ARCH_STR_MAX). Returns the length. */
int arch_to_string(const struct space *s, const struct arch *a, char *buf, size_t size);
/* Parse and check the text form; APQ_ECONFIG "bad arch 'TEXT': reason" on failure. */
int arch_from_string(const struct space *s, const char *text, struct arch *a);

/* Uniform random arch: depth per stage, kernel and mid (on the grid) per
 * block, resolution; with quantized, each of the four bits per block uniform
 * over the bit set (reference/apq.md §5, §10). */
void arch_sample(const struct space *s, struct rng *r, int quantized, struct arch *a);
/* Largest / smallest subnet (max/min depth, kernel, mid, resolution), all
 * block bits = bits (0 for fp32). */
void arch_largest(const struct space *s, int bits, struct arch *a);
void arch_smallest(const struct space *s, int bits, struct arch *a);
/* Set every active block's four bits to `bits` (0 = fp32). */
void arch_set_bits(const struct space *s, struct arch *a, int bits);
static inline int arch_equal(const struct arch *a, const struct arch *b) {
    return __builtin_memcmp(a, b, sizeof *a) == 0;
}
uint64_t arch_hash(const struct arch *a);

/* ---- the layers of a subnet (for cost models, MACs, memory) ------------- */
enum layer_kind { LAYER_CONV, LAYER_DW, LAYER_PW, LAYER_LINEAR };
enum layer_role {
    ROLE_FIRST_CONV,
    ROLE_FIRST_DW,
    ROLE_FIRST_PW,
    ROLE_EXPAND,
    ROLE_DEPTHWISE,
    ROLE_PROJECT,
    ROLE_FEATURE_MIX,
    ROLE_CLASSIFIER
};
struct layer_desc {
    enum layer_kind kind;
    enum layer_role role;
    int block;          /* elastic block index, -1 for fixed layers */
    int cin, cout;      /* channels (dw: cin == cout == channels) */
    int h_in, h_out;    /* spatial size in and out (1 for the classifier) */
    int k, stride;      /* kernel and stride (1 for pointwise and linear) */
    int w_bits, a_bits; /* bit-widths on a quantized arch (fixed layers: fixed_bits,
                           including the first conv's image input); 0 on an fp32 arch */
    int residual;       /* 1 on a block's project layer when the block has a shortcut */
};
#define ARCH_MAX_LAYERS (3 * SPACE_MAX_BLOCKS + 8)
/* Fill out[] with the subnet's layers in execution order; returns the count. */
int arch_layers(const struct space *s, const struct arch *a, struct layer_desc *out);
/* Multiply-accumulates of one layer and of the whole subnet (conv, dw, pw, linear only). */
double layer_macs(const struct layer_desc *l);
double arch_macs(const struct space *s, const struct arch *a);
/* Weight count of one layer (no BN, no bias) and the subnet's weight storage
 * in bytes at its bit-widths (fp32 arch: 4 bytes per weight). */
double layer_weights(const struct layer_desc *l);
double arch_weight_bytes(const struct space *s, const struct arch *a);

#endif
