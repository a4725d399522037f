build2/supernet/schedule.o: supernet/schedule.c supernet/supernet.h \
 supernet/../datasets/datasets.h supernet/../datasets/../util/util.h \
 supernet/../nn/nn.h supernet/arch.h supernet/../util/util.h \
 supernet/space.h
supernet/supernet.h:
supernet/../datasets/datasets.h:
supernet/../datasets/../util/util.h:
supernet/../nn/nn.h:
supernet/arch.h:
supernet/../util/util.h:
supernet/space.h:
