build2/tests/test_datasets.o: tests/test_datasets.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
