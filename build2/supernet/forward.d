build2/supernet/forward.o: supernet/forward.c supernet/../quant/quant.h \
 supernet/supernet.h supernet/../datasets/datasets.h \
 supernet/../datasets/../util/util.h supernet/../nn/nn.h supernet/arch.h \
 supernet/../util/util.h supernet/space.h
supernet/../quant/quant.h:
supernet/supernet.h:
supernet/../datasets/datasets.h:
supernet/../datasets/../util/util.h:
supernet/../nn/nn.h:
supernet/arch.h:
supernet/../util/util.h:
supernet/space.h:
