build-lead/stages/data.o: stages/data.c stages/data.h \
 stages/../datasets/datasets.h stages/../datasets/../util/util.h
stages/data.h:
stages/../datasets/datasets.h:
stages/../datasets/../util/util.h:
