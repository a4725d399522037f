build-dev/tests/run.o: tests/run.c tests/test.h tests/../util/util.h \
 build-dev/tests/list.h
tests/test.h:
tests/../util/util.h:
build-dev/tests/list.h:
