build2/stages/evaluate.o: stages/evaluate.c stages/../supernet/supernet.h \
 stages/../supernet/../datasets/datasets.h \
 stages/../supernet/../datasets/../util/util.h \
 stages/../supernet/../nn/nn.h stages/../supernet/arch.h \
 stages/../supernet/../util/util.h stages/../supernet/space.h \
 stages/../util/csvio.h stages/cli.h stages/data.h \
 stages/../datasets/datasets.h stages/../supernet/space.h
stages/../supernet/supernet.h:
stages/../supernet/../datasets/datasets.h:
stages/../supernet/../datasets/../util/util.h:
stages/../supernet/../nn/nn.h:
stages/../supernet/arch.h:
stages/../supernet/../util/util.h:
stages/../supernet/space.h:
stages/../util/csvio.h:
stages/cli.h:
stages/data.h:
stages/../datasets/datasets.h:
stages/../supernet/space.h:
