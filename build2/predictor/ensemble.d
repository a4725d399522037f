build2/predictor/ensemble.o: predictor/ensemble.c predictor/predictor.h \
 predictor/../supernet/arch.h predictor/../supernet/../util/util.h \
 predictor/../supernet/space.h
predictor/predictor.h:
predictor/../supernet/arch.h:
predictor/../supernet/../util/util.h:
predictor/../supernet/space.h:
