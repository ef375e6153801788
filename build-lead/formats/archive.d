build-lead/formats/archive.o: formats/archive.c formats/lq_formats.h \
 formats/lq_checkpoint.h formats/../libquant/lq_common.h \
 formats/../libquant/lq_dtype.h
formats/lq_formats.h:
formats/lq_checkpoint.h:
formats/../libquant/lq_common.h:
formats/../libquant/lq_dtype.h:
