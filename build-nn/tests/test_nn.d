build-nn/tests/test_nn.o: tests/test_nn.c tests/test.h tests/../nn/nn.h \
 tests/../util/util.h
tests/test.h:
tests/../nn/nn.h:
tests/../util/util.h:
