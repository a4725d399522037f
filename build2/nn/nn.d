build2/nn/nn.o: nn/nn.c nn/nn.h nn/nn_act.h nn/nn_internal.h \
 nn/../util/util.h
nn/nn.h:
nn/nn_act.h:
nn/nn_internal.h:
nn/../util/util.h:
