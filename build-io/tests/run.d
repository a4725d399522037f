build-io/tests/run.o: tests/run.c tests/test.h tests/../util/util.h \
 build-io/tests/list.h
tests/test.h:
tests/../util/util.h:
build-io/tests/list.h:
