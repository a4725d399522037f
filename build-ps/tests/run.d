build-ps/tests/run.o: tests/run.c tests/test.h tests/../util/util.h \
 build-ps/tests/list.h
tests/test.h:
tests/../util/util.h:
build-ps/tests/list.h:
