build2/datasets/idx.o: datasets/idx.c datasets/datasets.h \
 datasets/../util/util.h
datasets/datasets.h:
datasets/../util/util.h:
