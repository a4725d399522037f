build2/search/evolve.o: search/evolve.c search/search.h \
 search/../supernet/arch.h search/../supernet/../util/util.h \
 search/../supernet/space.h
search/search.h:
search/../supernet/arch.h:
search/../supernet/../util/util.h:
search/../supernet/space.h:
