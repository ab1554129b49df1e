# seek.c: one Makefile.
#   make          build ./seek (release, -O2)
#   make test     install missing Debian packages (and chromium, for the browser test), build, run every test (release and ASan/UBSan)
#   make debug    build ./seek-debug with AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-cuda on a machine with a GPU: the CUDA twins, seek verify --backend cuda, compute-sanitizer
#   make demo     install missing packages and build (output in $(B)/demo.log), run the main job on a shipped model
#   make lessons  render every lesson as a page: $(B)/lessons/NN-*.html (needs libcmark)
#   make clean
#   make bench    forward and training tokens/s, --backend ref vs cpu, and sgemm GFLOP/s vs OpenBLAS's peak
# Opt-outs: NO_CUDA=1, NO_BLAS=1, NO_OPENMP=1. Arch override: CUDA_ARCH=90.

CC       ?= gcc
CSTD      = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN      = -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers
# The reference is portable C: no -ffast-math, no -march=native (results must not depend on the host).
OPT      ?= -O2 -g
SAN       = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
INCLUDES  = -Iref -Ifast -Iviz
CUDA_ARCH ?= 90
# Build folder (helpers building side by side can each use their own: make B=build-x ...).
B ?= build

PKG_CONFIG ?= pkg-config
have = $(shell $(PKG_CONFIG) --exists $(1) 2>/dev/null && echo yes)

HAVE_JANSSON := $(call have,jansson)
HAVE_PNG     := $(call have,libpng)
HAVE_EDIT    := $(call have,libedit)
HAVE_CMARK   := $(call have,libcmark)
HAVE_PCRE2   := $(call have,libpcre2-8)
HAVE_CMOCKA  := $(call have,cmocka)
HAVE_UTF8PROC := $(call have,libutf8proc)
ifndef NO_BLAS
HAVE_BLAS    := $(call have,openblas)
endif
ifndef NO_OPENMP
HAVE_OPENMP  := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
endif
ifndef NO_CUDA
NVCC         ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
endif

DEFS =
LIBS = -lm
ifeq ($(HAVE_JANSSON),yes)
  LIBS += $(shell $(PKG_CONFIG) --libs jansson)
endif
ifeq ($(HAVE_PCRE2),yes)
  DEFS += -DSEEK_HAVE_PCRE2
  LIBS += $(shell $(PKG_CONFIG) --libs libpcre2-8)
endif
ifeq ($(HAVE_UTF8PROC),yes)
  DEFS += -DSEEK_HAVE_UTF8PROC
  LIBS += $(shell $(PKG_CONFIG) --libs libutf8proc)
endif
ifeq ($(HAVE_PNG),yes)
  DEFS += -DSEEK_HAVE_PNG
  LIBS += $(shell $(PKG_CONFIG) --libs libpng)
endif
ifeq ($(HAVE_EDIT),yes)
  DEFS += -DSEEK_HAVE_EDIT
  LIBS += $(shell $(PKG_CONFIG) --libs libedit)
endif
ifeq ($(HAVE_CMARK),yes)
  DEFS += -DSEEK_HAVE_CMARK
  LIBS += $(shell $(PKG_CONFIG) --libs libcmark)
endif
ifeq ($(HAVE_BLAS),yes)
  DEFS += -DSEEK_HAVE_BLAS $(shell $(PKG_CONFIG) --cflags openblas)
  LIBS += $(shell $(PKG_CONFIG) --libs openblas)
endif
# OpenMP: fast/cpu splits the loops BLAS does not cover over the cores (ref/ has no pragmas).
ifeq ($(HAVE_OPENMP),yes)
  DEFS += -fopenmp
  LIBS += -fopenmp
endif

# CUDA (fast/cuda): compiled and linked whenever nvcc is found, so a build without a GPU (CI)
# still proves the CUDA code builds; whether a GPU is present is asked at run time.
ifneq ($(NVCC),)
  HAVE_CUDA  := yes
  CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
  DEFS       += -DSEEK_HAVE_CUDA -I$(CUDA_HOME)/include
  LIBS       += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
  # strict fp32 (fast/cuda): -fmad=false keeps x*y+z rounded twice, as the reference built for
  # plain x86-64; the bf16 backend (fast/cuda-fast) is not bit-matched and lets nvcc fuse (FMAD)
  NVCCFLAGS  ?= -O2 -g -lineinfo
  FMAD        = -fmad=false
  NVCC_ALL    = $(NVCCFLAGS) -std=c++17 -arch=sm_$(CUDA_ARCH) $(FMAD) $(INCLUDES) $(filter -D% -I%,$(DEFS)) \
                -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Wno-missing-field-initializers -MMD -MP
  CUDA_SRC    = $(wildcard fast/cuda/*.cu) $(wildcard fast/cuda-fast/*.cu)
  CUDA_OBJ    = $(CUDA_SRC:%.cu=$(B)/cuda/%.o)
endif

CFLAGS_ALL = $(CSTD) $(WARN) $(INCLUDES) $(DEFS) -MMD -MP

REF_SRC  = $(wildcard ref/*.c) $(wildcard fast/*.c) $(wildcard fast/cpu/*.c)
VIZ_SRC  = $(filter-out viz/seek.c,$(wildcard viz/*.c))
LIB_SRC  = $(REF_SRC) $(VIZ_SRC)
TEST_SRC = $(wildcard tests/test_*.c)

REL_OBJ  = $(LIB_SRC:%.c=$(B)/rel/%.o)
DBG_OBJ  = $(LIB_SRC:%.c=$(B)/dbg/%.o)
# the CUDA objects (no sanitizer instrumentation in device code) go into both builds
REL_OBJ += $(CUDA_OBJ)
DBG_OBJ += $(CUDA_OBJ)
REL_TESTS = $(TEST_SRC:tests/%.c=$(B)/rel/tests/%)
DBG_TESTS = $(TEST_SRC:tests/%.c=$(B)/dbg/tests/%)

.SECONDARY:
.PHONY: all debug test test-unit deps features demo clean cuda test-cuda bench bench-cpu

all: features seek

# Installs missing Debian packages when a required library is absent (scripts/install-deps.sh).
deps:
	@if [ "$(HAVE_JANSSON)" != yes ] || [ "$(HAVE_CMOCKA)" != yes ] || [ "$(HAVE_PCRE2)" != yes ] || [ "$(HAVE_UTF8PROC)" != yes ] || \
	    [ "$(HAVE_PNG)" != yes ] || [ "$(HAVE_EDIT)" != yes ] || [ "$(HAVE_CMARK)" != yes ] || \
	    { [ -z "$(NO_BLAS)" ] && [ "$(HAVE_BLAS)" != yes ]; }; then \
	  bash scripts/install-deps.sh; fi

mark = $(if $(filter yes,$(1)),✓,✗)
features:
	@echo "seek.c build features:"
	@echo "  $(call mark,$(HAVE_JANSSON)) jansson (required: config.json, safetensors headers)"
	@echo "  $(call mark,$(HAVE_BLAS)) OpenBLAS$(if $(NO_BLAS), (NO_BLAS=1),) (the cpu backend, fast/cpu)"
	@echo "  $(call mark,$(HAVE_OPENMP)) OpenMP$(if $(NO_OPENMP), (NO_OPENMP=1),)"
	@echo "  $(call mark,$(HAVE_PNG)) libpng"
	@echo "  $(call mark,$(HAVE_EDIT)) libedit"
	@echo "  $(call mark,$(HAVE_CMARK)) libcmark (seek lesson --html, make lessons)"
	@echo "  $(call mark,$(HAVE_PCRE2)) PCRE2"
	@echo "  $(call mark,$(HAVE_UTF8PROC)) utf8proc (tokenizer NFC normalizer)"
	@echo "  $(call mark,$(HAVE_CMOCKA)) cmocka (tests)"
	@echo "  $(if $(NVCC),✓ nvcc ($(NVCC)) sm_$(CUDA_ARCH) (the cuda backend, fast/cuda; a GPU is asked for at run time),✗ nvcc$(if $(NO_CUDA), (NO_CUDA=1),) (no cuda backend))"
	@if [ "$(HAVE_JANSSON)" != yes ]; then echo "jansson is missing: run 'bash scripts/install-deps.sh' (or 'make demo' / 'make test', which do)"; exit 1; fi

seek: $(B)/rel/viz/seek.o $(REL_OBJ)
	$(CC) $(OPT) -o $@ $^ $(LIBS)

seek-debug: $(B)/dbg/viz/seek.o $(DBG_OBJ)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

debug: features seek-debug

$(B)/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(CFLAGS_ALL) -c $< -o $@

$(B)/dbg/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(CFLAGS_ALL) -c $< -o $@

$(B)/cuda/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_ALL) -c $< -o $@
$(B)/cuda/fast/cuda-fast/%.o: FMAD = -fmad=true

# fast/cpu/optim.c: AdamW vectorises only without errno for sqrtf (same results; see the file)
$(B)/rel/fast/cpu/optim.o $(B)/dbg/fast/cpu/optim.o: CFLAGS_ALL += -fno-math-errno

$(B)/rel/tests/%: $(B)/rel/tests/%.o $(REL_OBJ)
	$(CC) $(OPT) -o $@ $^ $(LIBS) -lcmocka

$(B)/dbg/tests/%: $(B)/dbg/tests/%.o $(DBG_OBJ)
	$(CC) $(SAN) -o $@ $^ $(LIBS) -lcmocka

# `make test`: every unit-test binary and the command-line tests, first against the release
# build, then against the ASan/UBSan build; the driver ends with "N passed, N failed".
# the build runs one job per core (JOBS=1 for a serial build); the suites then run one at a time
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
test: deps
	@command -v chromium >/dev/null 2>&1 || bash scripts/install-deps.sh --browser
	@$(MAKE) --no-print-directory -j$(JOBS) features seek seek-debug $(REL_TESTS) $(DBG_TESTS) $(if $(NVCC),$(LAB_BIN))
	@bash scripts/fetch_deepseek_tokenizer.sh || echo "DeepSeek-V3 tokenizer.json unavailable: the tokenizer tests will fail"
	@B=$(B) bash tests/run.sh

# `make test-cuda` (on a machine with a GPU): every CUDA twin against its reference op by op
# (tests/test_cuda.c), `seek verify --backend cuda` over every fixture, and compute-sanitizer
# memcheck and racecheck on the op tests (tests/cuda_run.sh). `make test` runs test_cuda too and
# says on one line that it was skipped (not passed) where there is no GPU.
test-cuda:
	@if [ -z "$(NVCC)" ]; then echo "make test-cuda: nvcc not found$(if $(NO_CUDA), (NO_CUDA=1),): the CUDA backend is not built"; exit 1; fi
	@$(MAKE) --no-print-directory features seek $(B)/rel/tests/test_cuda $(LAB_BIN)
	@B=$(B) bash tests/cuda_run.sh

# `make lab` (the kernel lab, fast/lab/: after llm.c's dev/cuda): one program per kernel, each
# version validated against the linked ref/ function at every block size, then timed. Not part of
# `all`; `make test` compiles them (so CI keeps them building) and `make test-cuda` runs them (each
# must validate every version); they print SKIP and exit 77 without a GPU.
.PHONY: lab
LAB_BIN = $(B)/lab/attention $(B)/lab/mla_decode $(B)/lab/moe_dispatch
LAB_REF = $(addprefix $(B)/rel/ref/,attention.o matmul.o mla.o mlp.o moe.o precision.o rmsnorm.o)
lab:
	@if [ -z "$(NVCC)" ]; then echo "make lab: nvcc not found$(if $(NO_CUDA), (NO_CUDA=1),): the kernel lab needs it"; exit 1; fi
	@$(MAKE) --no-print-directory $(LAB_BIN)

$(B)/lab/%.o: fast/lab/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_ALL) -c $< -o $@

$(LAB_BIN): $(B)/lab/%: $(B)/lab/%.o $(LAB_REF)
	$(NVCC) -arch=sm_$(CUDA_ARCH) -o $@ $^ -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart \
	  $(if $(filter yes,$(HAVE_OPENMP)),-Xcompiler -fopenmp) -lm

# `make bench`: encode MB/s for DeepSeek-V3's tokenizer, seek.c and (where installed) HF tokenizers.
bench: deps
	@$(MAKE) --no-print-directory features seek
	@bash scripts/bench_tokenizer.sh

# `make bench-cpu` (part of `make bench`): forward and training-step tokens/s with --backend ref
# and cpu side by side (tiny fixtures and a 40M-parameter random-weight config) and sgemm GFLOP/s
# against OpenBLAS's own peak in the same run (viz/cmd_bench.c); where the environment pins an
# older OpenBLAS core type on an AVX-512 CPU, a second run with the AVX-512 kernels.
bench: bench-cpu
bench-cpu: deps
	@$(MAKE) --no-print-directory features seek
	./seek bench
	@if grep -qw avx512f /proc/cpuinfo 2>/dev/null && [ -n "$$OPENBLAS_CORETYPE" ] && [ "$$OPENBLAS_CORETYPE" != SkylakeX ]; then \
	  echo; echo "The environment pins OPENBLAS_CORETYPE=$$OPENBLAS_CORETYPE on a CPU with AVX-512; the same bench with the"; \
	  echo "AVX-512 kernels seek picks itself when nothing is pinned (OPENBLAS_CORETYPE=SkylakeX):"; \
	  OPENBLAS_CORETYPE=SkylakeX ./seek bench; fi

# `make demo`: the package installation and the compiler go to $(DEMO_LOG) (one line says so), so the
# first screen is the model and the tour (scripts/demo.sh); when they fail, the log's last lines.
# The build is a second make, so the libraries the first one installed are detected.
DEMO_LOG = $(B)/demo.log
demo:
	@mkdir -p $(B)
	@echo "make demo: installing missing Debian packages and building ./seek (their output goes to $(DEMO_LOG))"
	@if ! { $(MAKE) --no-print-directory deps && $(MAKE) --no-print-directory features seek; } >$(DEMO_LOG) 2>&1 </dev/null; then \
	  echo "make demo: the build failed; the end of $(DEMO_LOG):"; tail -n 20 $(DEMO_LOG); exit 1; fi
	@bash scripts/demo.sh

# `make lessons`: every lessons/NN-*.md as one self-contained page, $(B)/lessons/NN-*.html
# (seek lesson FILE --html; the cells run as --check runs them, so a lesson that fails its check
# makes no page and fails the target). The pages are build output, not committed.
.PHONY: lessons
LESSON_MD   = $(wildcard lessons/[0-9][0-9]-*.md)
LESSON_HTML = $(LESSON_MD:lessons/%.md=$(B)/lessons/%.html)
lessons: deps
	@$(MAKE) --no-print-directory features seek
	@$(MAKE) --no-print-directory $(LESSON_HTML)
	@echo "make lessons: $(words $(LESSON_HTML)) page(s) in $(B)/lessons/"

$(B)/lessons/%.html: lessons/%.md seek
	@mkdir -p $(dir $@)
	./seek lesson $< --html $@

# ---- fuzz targets (tests/fuzz/, docs/fuzzing.md) ----------------------------------------------
# Each tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput. `make test` builds it twice with gcc
# and tests/fuzz/replay.c's main(), as $(B)/rel/fuzz/NAME and $(B)/dbg/fuzz/NAME (ASan/UBSan), and
# tests/cli_fuzz.sh replays the seed corpus tests/fuzz/corpus/NAME/ through both. `make fuzz`
# builds the libFuzzer version with clang ($(B)/fuzz/fuzz_NAME) and runs each target for
# FUZZ_SECONDS (or SECONDS: make fuzz SECONDS=120) on a working corpus $(B)/fuzz/corpus-NAME seeded
# from tests/fuzz/corpus/NAME/; FUZZ_TARGETS picks some of them (make fuzz FUZZ_TARGETS=tasks).
# The clang build links every library source ($(LIB_SRC): the model, the REPL, ...) with the
# libraries ./seek links, except CUDA (device code is not instrumented; fast/backend.c then says
# the cuda backend is not built) and OpenMP (the host kernels run on one thread).
.PHONY: fuzz
FUZZ_NAMES    = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
REL_TESTS    += $(FUZZ_NAMES:%=$(B)/rel/fuzz/%)
DBG_TESTS    += $(FUZZ_NAMES:%=$(B)/dbg/fuzz/%)
CLANG        ?= clang
FUZZ_SECONDS ?= $(if $(SECONDS),$(SECONDS),60)
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_LIB     = $(LIB_SRC)
FUZZ_DEFS    = $(filter-out -fopenmp -DSEEK_HAVE_CUDA -I$(CUDA_HOME)/include,$(DEFS))
FUZZ_COV     = -fsanitize=fuzzer-no-link
FUZZ_CFLAGS  = -g -O1 $(FUZZ_COV) -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
               $(CSTD) $(WARN) $(INCLUDES) $(FUZZ_DEFS) -MMD -MP
# The numeric kernels are built without libFuzzer's coverage (still with ASan and UBSan): their
# loops' comparisons, traced, took three quarters of the REPL target's time and guide nothing. So
# are the pixel loops of viz/image.c (the rllog target draws pictures of up to 1920 x 1262).
FUZZ_KERNELS = ref/matmul.c ref/attention.c ref/mla.c ref/mlp.c ref/rmsnorm.c ref/rope.c ref/loss.c ref/backward.c \
               ref/embedding.c ref/optim.c $(wildcard fast/cpu/*.c)
FUZZ_NOCOV   = $(FUZZ_KERNELS) viz/image.c
$(FUZZ_NOCOV:%.c=$(B)/fuzz/%.o): FUZZ_COV =
# These keep their edge coverage but their comparisons are not traced. The tokenizer's per-byte
# loops (added-token scan, pre-tokenizer, word cache, BPE) spent over half the tokenizer target's
# time in __sanitizer_cov_trace_cmp*, two thirds of the calls for UBSan's own alignment, null and
# pointer-overflow checks, which clang 14 traces as well; its JSON is read by jansson (never
# instrumented) and its string comparisons still reach libFuzzer through the strcmp/memcmp hooks.
# The forward's sampler sorts the vocabulary for every token drawn: a sixth of the REPL target.
FUZZ_NOCMP   = ref/tokenizer.c ref/forward.c
$(FUZZ_NOCMP:%.c=$(B)/fuzz/%.o): FUZZ_COV = -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp
FUZZ_LIBS    = -lm $(shell $(PKG_CONFIG) --libs jansson $(if $(HAVE_PCRE2),libpcre2-8) $(if $(HAVE_UTF8PROC),libutf8proc) \
               $(if $(HAVE_PNG),libpng) $(if $(HAVE_EDIT),libedit) $(if $(HAVE_CMARK),libcmark) $(if $(HAVE_BLAS),openblas) 2>/dev/null)

$(B)/rel/fuzz/%: $(B)/rel/tests/fuzz/fuzz_%.o $(B)/rel/tests/fuzz/replay.o $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -o $@ $^ $(LIBS)

$(B)/dbg/fuzz/%: $(B)/dbg/tests/fuzz/fuzz_%.o $(B)/dbg/tests/fuzz/replay.o $(DBG_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(B)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -c $< -o $@

$(B)/fuzz/fuzz_%: $(B)/fuzz/tests/fuzz/fuzz_%.o $(FUZZ_LIB:%.c=$(B)/fuzz/%.o)
	$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(FUZZ_LIBS)

fuzz:
	@command -v $(CLANG) >/dev/null || { echo "make fuzz: $(CLANG) not found (libFuzzer comes with clang: apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
	@for n in $(FUZZ_TARGETS); do \
	  mkdir -p $(B)/fuzz/corpus-$$n $(B)/fuzz/artifacts-$$n; \
	  dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	  echo "make fuzz: $$n for $(FUZZ_SECONDS) s (new inputs in $(B)/fuzz/corpus-$$n, crashes in $(B)/fuzz/artifacts-$$n)"; \
	  $(B)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=65536 $$dict \
	    -artifact_prefix=$(B)/fuzz/artifacts-$$n/ $(FUZZ_ARGS) $(B)/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; \
	done

clean:
	rm -rf $(B) seek seek-debug

-include $(shell find $(B) -name '*.d' 2>/dev/null)
