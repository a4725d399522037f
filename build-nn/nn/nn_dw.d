build-nn/nn/nn_dw.o: nn/nn_dw.c nn/nn.h nn/../util/util.h
nn/nn.h:
nn/../util/util.h:
