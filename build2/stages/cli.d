build2/stages/cli.o: stages/cli.c stages/cli.h stages/../util/util.h
stages/cli.h:
stages/../util/util.h:
