build2/supernet/space.o: supernet/space.c supernet/space.h \
 supernet/../util/util.h
supernet/space.h:
supernet/../util/util.h:
