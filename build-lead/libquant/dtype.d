build-lead/libquant/dtype.o: libquant/dtype.c libquant/lq_dtype.h
libquant/lq_dtype.h:
