# apq — build the programs and run the pipeline (pipeline.mk).
#   make                 the whole pipeline for DEVICE (default bitfusion), PROFILE (default quick)
#   make test            unit tests + the whole pipeline on PROFILE=tiny
#   make test-kernels    the unit tests under each OpenBLAS kernel, 1 and 2 threads
#   make test SANITIZE=1 the same with ASan + UBSan, built into build-san/ (test-unit: without the pipeline)
#   make deps            install the Debian packages apq needs
# Non-recursive (reference/aesthetics.md L1): one make, one graph.

.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := all

# Flags: the project's own (APQ_*) are always applied; a user's CPPFLAGS, CFLAGS,
# LDFLAGS and LDLIBS come after them on every compile and link line, so
# `make CFLAGS=-O1` keeps -std=c11, -fopenmp and the include paths and its -O1 wins,
# and `make CFLAGS=-fsanitize=address` reaches the link too.
# SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer into build-san/.
CC      ?= gcc
MARCH   ?= native
ifeq ($(SANITIZE),1) # -O1: under ASan it builds 4x faster than -O3 and the tests run 1.7x slower
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
APQ_CFLAGS  = -O3 -march=$(MARCH) -std=c11 -D_GNU_SOURCE -fopenmp -Wall -Wextra -Wpedantic \
              -Wno-unused-parameter -I/usr/include/hdf5/serial -I. -MMD -MP \
              -DAPQ_SRC_DIR='"$(CURDIR)"' $(SAN_FLAGS)
APQ_LDFLAGS = -L/usr/lib/x86_64-linux-gnu/hdf5/serial -fopenmp $(SAN_FLAGS)
APQ_LDLIBS := -lhdf5_serial_hl -lhdf5_serial -lgsl -lopenblas -lcsv -linih -lz -lm
COMPILE = $(CC) $(APQ_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LINK    = $(CC) $(APQ_LDFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(APQ_LDLIBS) $(LDLIBS)
B       ?= $(if $(filter 1,$(SANITIZE)),build-san,build)

# ---- modules: one folder each, every .c in it ---------------------------
objs = $(patsubst %.c,$(B)/%.o,$(wildcard $(1)/*.c))
UTIL_O     := $(call objs,util)
DATA_O     := $(call objs,datasets)
NN_O       := $(call objs,nn)
# the fake quantizers the training stages run; the integer kernels and models
# (qint*, qmodel*) only in apq-export and the tests, so that they do not relink
# (and make rerun) the training and sampling stages
QUANT_O    := $(B)/quant/quant.o
QINT_O     := $(filter-out $(QUANT_O),$(call objs,quant))
SPACE_O    := $(B)/supernet/space.o $(B)/supernet/arch.o
SUPERNET_O := $(call objs,supernet)
PRED_O     := $(call objs,predictor)
DEV_O      := $(call objs,devices)
SEARCH_O   := $(call objs,search)
ALL_LIB_O  := $(UTIL_O) $(DATA_O) $(NN_O) $(QUANT_O) $(QINT_O) $(SUPERNET_O) $(PRED_O) $(DEV_O) $(SEARCH_O)

# ---- Debian packages ----------------------------------------------------
DEPS_STAMP := $(B)/.deps-ok
$(DEPS_STAMP): scripts/deps.sh
	@bash scripts/deps.sh
	@mkdir -p $(B) && touch $@
deps:
	@bash scripts/deps.sh
	@mkdir -p $(B) && touch $(DEPS_STAMP)

$(B)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(COMPILE) -c $< -o $@

# The text of the integer kernels as C strings, which qmodel_emit_c copies
# into an exported model.c (the generated code is the library's own text), and
# of the exported main.c: one array <file>_text per file (qint.h -> qint_h_text),
# one string per line, backslashes and quotes escaped.
QINT_TEXT = quant/qint.h quant/qint_ref.c quant/qint_internal.h quant/qint_fast.c \
            quant/qint_simd.c quant/emit/main.c
QINT_SRC_LINES = sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/",/'
%/quant/qint_src.h: $(QINT_TEXT)
	@mkdir -p $(dir $@)
	@{ echo '/* generated from $(QINT_TEXT) by the Makefile */'; \
	   for f in $(QINT_TEXT); do n=$$(basename $$f | tr . _); \
	     echo "static const char *const $${n}_text[] = {"; $(QINT_SRC_LINES) $$f; echo '    0};'; \
	   done; } > $@.tmp && mv $@.tmp $@
$(B)/quant/qmodel_emit.o: $(B)/quant/qint_src.h
$(B)/quant/qmodel_emit.o: APQ_CFLAGS += -I$(B)/quant

# ---- stage programs (each links only the modules it runs) ---------------
NET_O := $(B)/stages/data.o $(B)/stages/cli.o $(UTIL_O) $(DATA_O) $(NN_O) $(QUANT_O) $(SUPERNET_O)
STAGES := train-supernet sample-fp32 sample-quant verify train-predictor transfer-predictor \
          build-lut search report evaluate transfer-study export
$(B)/apq-train-supernet:     $(B)/stages/train_supernet.o $(B)/stages/cli.o $(NET_O)
$(B)/apq-sample-fp32:        $(B)/stages/sample.o $(B)/stages/samples_io.o $(B)/stages/cli.o $(NET_O)
$(B)/apq-sample-quant:       $(B)/stages/sample.o $(B)/stages/samples_io.o $(B)/stages/cli.o $(NET_O)
$(B)/apq-evaluate:           $(B)/stages/evaluate.o $(B)/stages/cli.o $(NET_O)
$(B)/apq-verify:             $(B)/stages/verify.o $(B)/stages/cli.o $(NET_O)
$(B)/apq-export:             $(B)/stages/export.o $(B)/stages/cli.o $(NET_O) $(QINT_O)
$(B)/apq-train-predictor:    $(B)/stages/train_predictor.o $(B)/stages/pred_cfg.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(PRED_O)
$(B)/apq-transfer-predictor: $(B)/stages/train_predictor.o $(B)/stages/pred_cfg.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(PRED_O)
$(B)/apq-build-lut:          $(B)/stages/build_lut.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(DEV_O)
$(B)/apq-search:             $(B)/stages/search.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(PRED_O) $(DEV_O) $(SEARCH_O)
$(B)/apq-transfer-study:     $(B)/stages/transfer_study.o $(B)/stages/pred_cfg.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(PRED_O)
$(B)/apq-report:             $(B)/stages/report.o $(B)/stages/cli.o $(UTIL_O) $(SPACE_O) $(SEARCH_O)
$(addprefix $(B)/apq-,$(STAGES)):
	$(LINK)
programs: $(addprefix $(B)/apq-,$(STAGES))

# ---- PyTorch side by side (issue #3) -------------------------------------------
# make bench: apq and bench/torch_reference.py (Debian's python3-torch) on the same
# subnets, batch and threads -> bench/out/results.csv and bench/results.md.
# make goldens: regenerate tests/golden/torch_reference.h5 (only when the reference changed on purpose)
$(B)/apq-bench: $(B)/bench/bench.o $(NET_O)
$(B)/apq-golden-supernet: $(B)/bench/golden_supernet.o $(NET_O)
$(B)/apq-bench-sampling: $(B)/bench/bench_sampling.o $(NET_O)
$(B)/apq-bench-export: $(B)/bench/bench_export.o $(NET_O) $(QINT_O)
$(B)/apq-bench $(B)/apq-golden-supernet $(B)/apq-bench-sampling $(B)/apq-bench-export:
	$(LINK)
bench: $(B)/apq-bench $(B)/apq-bench-sampling $(B)/apq-bench-export
	@EXTRA_PKGS="python3-torch python3-h5py" bash scripts/deps.sh
	bash bench/run.sh $(B)/apq-bench $(B)/apq-bench-sampling $(B)/apq-bench-export
# make ab REV=<git rev> [AB_CASE=train-smallest] [AB_ARGS="--rounds 200 --steps 1"]: that revision's apq-bench and this
# tree's taking turns (bench/ab.py): the median speed ratio with its 95% interval. Both
# build this tree's bench/bench.c, so REV needs the API it calls (sn_sgd_update, supernet_forward).
AB_CASE ?= train-smallest
ab: $(B)/apq-bench
	@test -n "$(REV)" || { echo "make ab: name the revision to compare with: make ab REV=<git rev>" >&2; exit 2; }
	rm -rf $(B)/ab-base && git worktree prune && git worktree add -f --detach $(B)/ab-base $(REV)
	cp bench/bench.c $(B)/ab-base/bench/bench.c # the same driver on both sides (and its one-step turns)
	$(MAKE) -C $(B)/ab-base B=build build/apq-bench
	/usr/bin/python3 bench/ab.py $(B)/ab-base/build/apq-bench $(B)/apq-bench --case $(AB_CASE) $(AB_ARGS)
	git worktree remove --force $(B)/ab-base
goldens: $(B)/apq-golden-supernet
	@EXTRA_PKGS="python3-torch python3-h5py" bash scripts/deps.sh
	/usr/bin/python3 bench/make_goldens.py --golden-supernet $(B)/apq-golden-supernet

# ---- tests ---------------------------------------------------------------
TEST_SRC  ?= $(wildcard tests/test_*.c)
TEST_MODS ?= util datasets nn quant supernet predictor devices search
TEST_LIB_O = $(foreach m,$(TEST_MODS),$(call objs,$(m)))
TEST_O   := $(patsubst %.c,$(B)/%.o,$(TEST_SRC))
$(B)/tests/list.h: $(TEST_SRC) FORCE
	@mkdir -p $(dir $@)
	@sed -n 's/^TEST(\([A-Za-z0-9_]*\)).*/X(\1)/p' $(TEST_SRC) > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
FORCE:
$(B)/tests/run.o: tests/run.c $(B)/tests/list.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(COMPILE) -I$(B)/tests -c $< -o $@
$(B)/apq-test: $(B)/tests/run.o $(TEST_O) $(TEST_LIB_O)
	$(LINK)

# Unit tests first, then the whole pipeline on PROFILE=tiny (tests/test_pipeline.c
# runs `make PROFILE=tiny` into a scratch folder and checks every artifact).
test: $(B)/apq-test programs
	SANITIZE=$(SANITIZE) APQ_BUILD_DIR=$(B) ./$(B)/apq-test $(if $(T),-t $(T))
# The unit tests alone (every test but pipeline_*, no stage programs): the quick
# sanitized pass, `make test-unit SANITIZE=1`.
test-unit: $(B)/apq-test programs
	SANITIZE=$(SANITIZE) APQ_BUILD_DIR=$(B) ./$(B)/apq-test -x pipeline_ $(if $(T),-t $(T))
ifeq ($(SANITIZE),1)
# Stop at the first report, with a stack; LeakSanitizer stays on (it is ASan's default).
export ASAN_OPTIONS ?= abort_on_error=0:detect_leaks=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
endif

# ---- fuzzing (fuzz/README.md) -------------------------------------------------
# make fuzz [FUZZ_SECONDS=60] [FUZZ=arch] [FUZZ_ARGS=-runs=1000000]: every harness
# fuzz/fuzz_<name>.c (libFuzzer; clang -fsanitize=fuzzer,address,undefined, the
# library built the same way into build-fuzz/) for FUZZ_SECONDS each on
# fuzz/corpus/<name>/, with the flags in fuzz/<name>.options if any; fails on
# the first crash, leak or sanitizer report (the input lands in
# build-fuzz/crash-<name>-*). fuzz_h5 runs in fork mode and keeps going after a
# crash; fuzz/triage.sh then fails the run for any crash outside Debian's HDF5.
# New inputs go to build-fuzz/corpus/<name>/.
FB           := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ         ?= $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CFLAGS   = -O1 -g -fno-omit-frame-pointer -fopenmp -std=c11 -D_GNU_SOURCE -Wall -Wextra \
                -Wno-unused-parameter -Wno-unused-function -I/usr/include/hdf5/serial -I. -MMD -MP \
                -DAPQ_SRC_DIR='"$(CURDIR)"' -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_O   := $(patsubst %.c,$(FB)/%.o,$(wildcard $(addsuffix /*.c,util datasets nn quant supernet \
                predictor devices search)) stages/cli.c)
FUZZ_STAMP   := $(FB)/.deps-ok
$(FUZZ_STAMP): scripts/deps.sh
	@EXTRA_PKGS="clang libclang-rt-14-dev libomp-14-dev" bash scripts/deps.sh
	@mkdir -p $(FB) && touch $@
$(FB)/%.o: %.c | $(FUZZ_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
# An archive: a harness that compiles a library file into itself (to reach its
# statics or to tune it) overrides that member.
$(FB)/libapq.a: $(FUZZ_LIB_O)
	rm -f $@ && ar rcs $@ $^
$(FB)/fuzz_%: $(FB)/fuzz/fuzz_%.o $(FB)/libapq.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ \
	    -L/usr/lib/x86_64-linux-gnu/hdf5/serial $(APQ_LDLIBS) $(LDLIBS)
$(FB)/quant/qmodel_emit.o: $(FB)/quant/qint_src.h
$(FB)/quant/qmodel_emit.o: FUZZ_CFLAGS += -I$(FB)/quant
fuzz-build: $(FUZZ:%=$(FB)/fuzz_%)
fuzz: fuzz-build
	@set -e; for h in $(FUZZ); do \
	    mkdir -p $(FB)/corpus/$$h; echo "fuzz_$$h: $(FUZZ_SECONDS) s on fuzz/corpus/$$h"; \
	    $(FB)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	        -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix=$(FB)/crash-$$h- \
	        $$(cat fuzz/$$h.options 2>/dev/null) $(FUZZ_ARGS) $(FB)/corpus/$$h fuzz/corpus/$$h \
	        > $(FB)/fuzz_$$h.log 2>&1 || { \
	        tail -n 40 $(FB)/fuzz_$$h.log; echo "fuzz_$$h failed: the input is $(FB)/crash-$$h-*" >&2; exit 1; }; \
	    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec)' \
	        $(FB)/fuzz_$$h.log || grep -E '^#[0-9]+: cov' $(FB)/fuzz_$$h.log | tail -n 1; \
	    bash fuzz/triage.sh $$h; \
	done

# The unit tests under every OpenBLAS kernel a user may have (unset, Haswell,
# SkylakeX with AVX-512, Prescott) at 1 and 2 threads (scripts/test-kernels.sh).
test-kernels: $(B)/apq-test
	SANITIZE=$(SANITIZE) APQ_BUILD_DIR=$(B) bash scripts/test-kernels.sh ./$(B)/apq-test

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

.PHONY: all deps programs test test-unit test-kernels fuzz fuzz-build bench ab goldens format format-check clean

-include $(wildcard $(B)/*/*.d $(B)/*/*/*.d $(FB)/*/*.d)
-include pipeline.mk
include study.mk
