/* space.h — the supernet's search space, read from supernet/spaces/<name>.ini.
 *
 * Everything that depends on the space (the supernet's tensor shapes, the
 * predictor's encoding length, LUT keys) derives from this one value
 * (DESIGN.md §4-5). The network is MobileNetV2 / ProxylessNAS-style:
 *
 *   first conv kxk (stride 1) + BN + ReLU6                  fixed
 *   first block: dw 3x3 + BN + ReLU6, pw + BN (expand 1)    fixed
 *   stages 1..S: blocks of expand 1x1 -> BN -> ReLU6 -> dw kxk (stride on the
 *     stage's first block) -> BN -> ReLU6 -> project 1x1 -> BN, identity
 *     shortcut when stride 1 and cin == cout; elastic depth, kernel, mid channels
 *   feature mix 1x1 + BN + ReLU6, global average pool, dropout, linear  fixed
 *
 * Elastic blocks are numbered 0..n_blocks-1 in stage order, every stage
 * contributing max_depth slots. mid channels of block i lie on the grid
 * mid_min..mid_max step mid_step with mid_min = ratio_min*cin,
 * mid_max = ratio_max*cin (reference/apq.md §2, DESIGN.md §5).
 *
 *   struct space s; int rc = space_load("supernet/spaces/fmnist-mbv2.ini", &s);
 */
#ifndef APQ_SPACE_H
#define APQ_SPACE_H

#include <stdint.h>

#define SPACE_MAX_STAGES  8
#define SPACE_MAX_BLOCKS  32
#define SPACE_MAX_CHOICES 8
#define SPACE_TEXT_MAX    8192

struct space_block {
    int stage, slot;             /* stage index 0..n_stages-1, position in the stage */
    int cin, cout;               /* channels in and out */
    int stride;                  /* 2 on the first block of a stride-2 stage, else 1 */
    int residual;                /* identity shortcut: stride 1 and cin == cout */
    int mid_min, mid_max, n_mid; /* mid-channel grid, step mid_step */
};

struct space {
    char name[64];
    int in_ch, in_size, n_classes;              /* 1, 28, 10 */
    int n_res, res[SPACE_MAX_CHOICES];          /* ascending, e.g. 20 24 28 */
    int n_kernels, kernels[SPACE_MAX_CHOICES];  /* ascending, e.g. 3 5 7 */
    int n_bits, bits[SPACE_MAX_CHOICES];        /* ascending, e.g. 4 6 8 */
    int fixed_bits;                             /* bit-width of the fixed layers (8) */
    int mid_ratio_min, mid_ratio_max, mid_step; /* 3, 6, 8 */
    int first_conv_ch, first_conv_k, first_block_ch, feature_mix_ch; /* 16, 3, 16, 640 */
    int n_stages;
    struct {
        int width, stride, min_depth, max_depth;
        int first_block; /* index of its first elastic block */
    } stage[SPACE_MAX_STAGES];
    int n_blocks;
    struct space_block block[SPACE_MAX_BLOCKS];
    int max_kernel;            /* largest kernel (7) */
    uint64_t hash;             /* FNV-1a of the canonical description (not of comments) */
    char text[SPACE_TEXT_MAX]; /* the .ini text as read, for provenance */
};

/* Parse a space .ini file. Unknown sections or keys, missing keys, values out
 * of range: APQ_ECONFIG naming the file, line and key. Missing file: APQ_EIO. */
int space_load(const char *path, struct space *s);
/* The same from text; `origin` names it in messages. */
int space_parse(const char *text, const char *origin, struct space *s);

/* Spatial size (height = width) of the input of elastic block i at input
 * resolution r (the first conv keeps r; each stride-2 conv maps h to (h+1)/2). */
int space_block_hin(const struct space *s, int block, int res);
/* Spatial size after the last stage at resolution r (input of feature mix). */
int space_final_size(const struct space *s, int res);
/* The space hash as the 16 lowercase hex digits every artifact stores in its
 * `space_hash` attribute (docs/formats.md §2); buf holds >= 17 bytes. */
void space_hash_text(const struct space *s, char *buf);
/* Index of value v in a choice list, -1 when absent. */
int space_choice_index(const int *choices, int n, int v);

#endif
