build2/nn/nn_ref.o: nn/nn_ref.c nn/nn.h nn/../util/util.h
nn/nn.h:
nn/../util/util.h:
