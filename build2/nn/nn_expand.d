build2/nn/nn_expand.o: nn/nn_expand.c nn/nn.h nn/nn_internal.h \
 nn/../util/util.h
nn/nn.h:
nn/nn_internal.h:
nn/../util/util.h:
