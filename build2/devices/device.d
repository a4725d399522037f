build2/devices/device.o: devices/device.c devices/devices.h \
 devices/../supernet/arch.h devices/../supernet/../util/util.h \
 devices/../supernet/space.h
devices/devices.h:
devices/../supernet/arch.h:
devices/../supernet/../util/util.h:
devices/../supernet/space.h:
