build2/nn/nn_ops.o: nn/nn_ops.c nn/nn.h nn/../util/util.h
nn/nn.h:
nn/../util/util.h:
