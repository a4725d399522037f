build2/tests/test_supernet.o: tests/test_supernet.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h \
 tests/../supernet/supernet.h tests/../supernet/../datasets/datasets.h \
 tests/../supernet/../nn/nn.h tests/../supernet/arch.h \
 tests/../supernet/../util/util.h tests/../supernet/space.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../supernet/supernet.h:
tests/../supernet/../datasets/datasets.h:
tests/../supernet/../nn/nn.h:
tests/../supernet/arch.h:
tests/../supernet/../util/util.h:
tests/../supernet/space.h:
