build2/stages/data.o: stages/data.c stages/data.h \
 stages/../datasets/datasets.h stages/../datasets/../util/util.h \
 stages/../supernet/space.h stages/../supernet/supernet.h \
 stages/../supernet/../datasets/datasets.h stages/../supernet/../nn/nn.h \
 stages/../supernet/arch.h stages/../supernet/../util/util.h \
 stages/../supernet/space.h stages/cli.h
stages/data.h:
stages/../datasets/datasets.h:
stages/../datasets/../util/util.h:
stages/../supernet/space.h:
stages/../supernet/supernet.h:
stages/../supernet/../datasets/datasets.h:
stages/../supernet/../nn/nn.h:
stages/../supernet/arch.h:
stages/../supernet/../util/util.h:
stages/../supernet/space.h:
stages/cli.h:
