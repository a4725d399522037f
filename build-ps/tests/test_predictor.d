build-ps/tests/test_predictor.o: tests/test_predictor.c tests/test.h \
 tests/../predictor/predictor.h tests/../predictor/../supernet/arch.h \
 tests/../predictor/../supernet/../util/util.h \
 tests/../predictor/../supernet/space.h
tests/test.h:
tests/../predictor/predictor.h:
tests/../predictor/../supernet/arch.h:
tests/../predictor/../supernet/../util/util.h:
tests/../predictor/../supernet/space.h:
