build2/tests/test_arch.o: tests/test_arch.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h \
 tests/../supernet/arch.h tests/../supernet/../util/util.h \
 tests/../supernet/space.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../supernet/arch.h:
tests/../supernet/../util/util.h:
tests/../supernet/space.h:
