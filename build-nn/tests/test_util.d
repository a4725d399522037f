build-nn/tests/test_util.o: tests/test_util.c tests/test.h \
 tests/../util/util.h
tests/test.h:
tests/../util/util.h:
