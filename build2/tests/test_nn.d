build2/tests/test_nn.o: tests/test_nn.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h \
 tests/../nn/nn.h tests/../util/util.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../nn/nn.h:
tests/../util/util.h:
