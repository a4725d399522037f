build2/tests/run.o: tests/run.c tests/test.h tests/../datasets/datasets.h \
 tests/../datasets/../util/util.h tests/../util/util.h \
 build2/tests/list.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../util/util.h:
build2/tests/list.h:
