build-lead/libquant/common.o: libquant/common.c libquant/lq_common.h
libquant/lq_common.h:
