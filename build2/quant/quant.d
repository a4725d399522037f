build2/quant/quant.o: quant/quant.c quant/quant.h quant/../util/util.h
quant/quant.h:
quant/../util/util.h:
