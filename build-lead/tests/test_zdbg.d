build-lead/tests/test_zdbg.o: tests/test_zdbg.c tests/test.h \
 supernet/supernet.h supernet/../datasets/datasets.h \
 supernet/../datasets/../util/util.h supernet/../nn/nn.h supernet/arch.h \
 supernet/../util/util.h supernet/space.h
tests/test.h:
supernet/supernet.h:
supernet/../datasets/datasets.h:
supernet/../datasets/../util/util.h:
supernet/../nn/nn.h:
supernet/arch.h:
supernet/../util/util.h:
supernet/space.h:
