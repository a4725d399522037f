/* subnet_internal.h — what extract.c shares with subnet_io.c, not public. */
#ifndef APQ_SUBNET_INTERNAL_H
#define APQ_SUBNET_INTERNAL_H

#include "subnet.h"

/* Allocate net->data for the layers' shapes (n_layers, kinds, channels, k)
 * and point every layer's arrays into it (contents undefined). Exits on out
 * of memory (apq_falloc): callers bound the size first (subnet_check). */
void subnet_alloc(struct subnet *net);

#endif
