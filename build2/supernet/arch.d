build2/supernet/arch.o: supernet/arch.c supernet/arch.h \
 supernet/../util/util.h supernet/space.h
supernet/arch.h:
supernet/../util/util.h:
supernet/space.h:
