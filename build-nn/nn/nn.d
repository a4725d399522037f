build-nn/nn/nn.o: nn/nn.c nn/nn.h nn/../util/util.h
nn/nn.h:
nn/../util/util.h:
