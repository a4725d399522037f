build-nn/tests/run.o: tests/run.c tests/test.h tests/../util/util.h \
 build-nn/tests/list.h
tests/test.h:
tests/../util/util.h:
build-nn/tests/list.h:
