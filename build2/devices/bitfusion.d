build2/devices/bitfusion.o: devices/bitfusion.c devices/devices.h \
 devices/../supernet/arch.h devices/../supernet/../util/util.h \
 devices/../supernet/space.h
devices/devices.h:
devices/../supernet/arch.h:
devices/../supernet/../util/util.h:
devices/../supernet/space.h:
