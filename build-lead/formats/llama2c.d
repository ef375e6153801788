build-lead/formats/llama2c.o: formats/llama2c.c formats/lq_formats.h \
 formats/lq_checkpoint.h formats/../libquant/lq_common.h \
 formats/../libquant/lq_dtype.h
formats/lq_formats.h:
formats/lq_checkpoint.h:
formats/../libquant/lq_common.h:
formats/../libquant/lq_dtype.h:
