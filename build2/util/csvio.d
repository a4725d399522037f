build2/util/csvio.o: util/csvio.c util/csvio.h util/util.h
util/csvio.h:
util/util.h:
