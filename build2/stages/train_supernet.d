build2/stages/train_supernet.o: stages/train_supernet.c \
 stages/../supernet/supernet.h stages/../supernet/../datasets/datasets.h \
 stages/../supernet/../datasets/../util/util.h \
 stages/../supernet/../nn/nn.h stages/../supernet/arch.h \
 stages/../supernet/../util/util.h stages/../supernet/space.h \
 stages/cli.h stages/data.h stages/../datasets/datasets.h \
 stages/../supernet/space.h
stages/../supernet/supernet.h:
stages/../supernet/../datasets/datasets.h:
stages/../supernet/../datasets/../util/util.h:
stages/../supernet/../nn/nn.h:
stages/../supernet/arch.h:
stages/../supernet/../util/util.h:
stages/../supernet/space.h:
stages/cli.h:
stages/data.h:
stages/../datasets/datasets.h:
stages/../supernet/space.h:
