build2/datasets/batch.o: datasets/batch.c datasets/datasets.h \
 datasets/../util/util.h
datasets/datasets.h:
datasets/../util/util.h:
