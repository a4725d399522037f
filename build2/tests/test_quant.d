build2/tests/test_quant.o: tests/test_quant.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h \
 tests/../quant/quant.h tests/../util/util.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../quant/quant.h:
tests/../util/util.h:
