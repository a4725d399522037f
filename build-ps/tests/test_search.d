build-ps/tests/test_search.o: tests/test_search.c tests/test.h \
 tests/../devices/devices.h tests/../devices/../supernet/arch.h \
 tests/../devices/../supernet/../util/util.h \
 tests/../devices/../supernet/space.h tests/../search/search.h \
 tests/../search/../supernet/arch.h
tests/test.h:
tests/../devices/devices.h:
tests/../devices/../supernet/arch.h:
tests/../devices/../supernet/../util/util.h:
tests/../devices/../supernet/space.h:
tests/../search/search.h:
tests/../search/../supernet/arch.h:
