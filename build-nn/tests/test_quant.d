build-nn/tests/test_quant.o: tests/test_quant.c tests/test.h \
 tests/../quant/quant.h tests/../util/util.h
tests/test.h:
tests/../quant/quant.h:
tests/../util/util.h:
