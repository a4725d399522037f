build2/predictor/metrics.o: predictor/metrics.c predictor/predictor.h \
 predictor/../supernet/arch.h predictor/../supernet/../util/util.h \
 predictor/../supernet/space.h
predictor/predictor.h:
predictor/../supernet/arch.h:
predictor/../supernet/../util/util.h:
predictor/../supernet/space.h:
