build2/search/pareto.o: search/pareto.c search/search.h \
 search/../supernet/arch.h search/../supernet/../util/util.h \
 search/../supernet/space.h
search/search.h:
search/../supernet/arch.h:
search/../supernet/../util/util.h:
search/../supernet/space.h:
