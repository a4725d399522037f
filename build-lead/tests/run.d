build-lead/tests/run.o: tests/run.c tests/test.h tests/../util/util.h \
 build-lead/tests/list.h
tests/test.h:
tests/../util/util.h:
build-lead/tests/list.h:
