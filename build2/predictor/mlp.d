build2/predictor/mlp.o: predictor/mlp.c predictor/predictor.h \
 predictor/../supernet/arch.h predictor/../supernet/../util/util.h \
 predictor/../supernet/space.h
predictor/predictor.h:
predictor/../supernet/arch.h:
predictor/../supernet/../util/util.h:
predictor/../supernet/space.h:
