build2/nn/nn_dw.o: nn/nn_dw.c nn/nn.h nn/nn_act.h nn/nn_internal.h \
 nn/../util/util.h nn/nn_dw_simd.h
nn/nn.h:
nn/nn_act.h:
nn/nn_internal.h:
nn/../util/util.h:
nn/nn_dw_simd.h:
