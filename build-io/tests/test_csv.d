build-io/tests/test_csv.o: tests/test_csv.c tests/test.h \
 tests/../util/csvio.h tests/../util/util.h
tests/test.h:
tests/../util/csvio.h:
tests/../util/util.h:
