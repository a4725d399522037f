build2/stages/build_lut.o: stages/build_lut.c stages/../devices/devices.h \
 stages/../devices/../supernet/arch.h \
 stages/../devices/../supernet/../util/util.h \
 stages/../devices/../supernet/space.h stages/../util/util.h stages/cli.h
stages/../devices/devices.h:
stages/../devices/../supernet/arch.h:
stages/../devices/../supernet/../util/util.h:
stages/../devices/../supernet/space.h:
stages/../util/util.h:
stages/cli.h:
