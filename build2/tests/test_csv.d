build2/tests/test_csv.o: tests/test_csv.c tests/test.h \
 tests/../datasets/datasets.h tests/../datasets/../util/util.h \
 tests/../util/csvio.h tests/../util/util.h
tests/test.h:
tests/../datasets/datasets.h:
tests/../datasets/../util/util.h:
tests/../util/csvio.h:
tests/../util/util.h:
