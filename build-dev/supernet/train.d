build-dev/supernet/train.o: supernet/train.c supernet/supernet.h \
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
