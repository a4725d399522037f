# pipeline.mk — the data flow of DESIGN.md §1 as file targets (included by Makefile).
# Every artifact depends on its inputs, on the program that makes it, on the
# profile and on the options the stage is given, so an edit to the search code
# reruns the search and not the training, and `make SEED=2` reruns everything.
#
#   make [PROFILE=tiny|quick|full] [DEVICE=bitfusion | DEVICES="a b"] [SEED=1]
#        [LATENCY_MS=x | LATENCY_MS="x y" | LATENCY_MS=x,y] [ENERGY_MJ=x]
#        [PREDICTOR=path/to/predictor-quant.h5] [SCHEDULE=sandwich|ps]
#        [DATA_DIR=/usr/share/datasets/fashion-mnist] [SPACE=supernet/spaces/x.ini]
#        [SHARDS=n: the sampling stages in n processes of one thread each, run in
#         parallel unless make is given -j itself; default 1]
#        [PRETRAINED=dir | RETRAIN=1: reuse the shipped artifacts of dir (default: the
#         profile's [pretrained] dir) where their settings match, or make all here]
#   make export: every verified point as an integer-only model, reports/<profile>/<device>/models/
#        (also part of make: the report's acc_test_int, flash_kb and peak_ram_kb come from it)
#   make export ARCH=<arch text>: one subnet, into models/<arch>/
#   make PROFILE=full pretrained-pack: copy this run's supernet and predictors into
#        the profile's pretrained dir, with MANIFEST and SHA256SUMS

PROFILE  ?= quick
DEVICE   ?= bitfusion
DEVICES  ?= $(DEVICE)
SEED     ?= 1
# sampling processes, one thread each, run in parallel (below); 1: one process on all CPUs
SHARDS   ?= 1
DATA_DIR ?= /usr/share/datasets/fashion-mnist
RUNS     ?= runs
REPORTS  ?= reports
SPACE    ?= $(if $(filter tiny,$(PROFILE)),supernet/spaces/tiny.ini,supernet/spaces/fmnist-mbv2.ini)

PROF := profiles/$(PROFILE).ini
R    := $(RUNS)/$(PROFILE)
COMMON = --space $(SPACE) --profile $(PROF) --seed $(SEED)
DATA   := $(patsubst %/,%,$(DATA_DIR))
# The IDX files the stages read (plain or .gz): a new copy of the data reruns them.
DATA_FILES = $(wildcard $(addprefix $(DATA)/,$(addsuffix *,train-images-idx3-ubyte \
               train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)))

PIPELINE_GOAL := $(filter all report export scratch-baseline supernet-eval transfer-study pretrained-pack $(R)/% $(REPORTS)/%,$(or $(MAKECMDGOALS),all))
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))

# ---- checks that fail early with one line, before any stage runs -------------
comma := ,
empty :=
space := $(empty) $(empty)
# $(call strip_chars,TEXT,C1 C2 ...): TEXT without any of the characters C1, C2 ...
strip_chars = $(if $(2),$(call strip_chars,$(subst $(firstword $(2)),,$(1)),$(wordlist 2,$(words $(2)),$(2))),$(1))
# $(call numbers_ok,TEXT,MAX): "ok" when TEXT is 1 to MAX different finite decimal
# numbers > 0 separated by blanks or commas (the rule apq-search applies too).
numbers_ok = $(if $(strip $(call strip_chars,$(1),0 1 2 3 4 5 6 7 8 9 . e E + - $(comma))),,$(shell \
  awk 'BEGIN { n = split("$(strip $(1))", v, /[ ,]+/); k = 0; \
    for (i = 1; i <= n; i++) { if (v[i] == "") continue; x = v[i] + 0; \
      if (v[i] !~ /^([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$$/ || !(x > 0) || x > 1e300) exit; \
      for (j = 1; j <= k; j++) if (seen[j] == x) exit; seen[++k] = x } \
    if (k >= 1 && k <= $(2)) print "ok" }'))
# $(call whole_ok,TEXT,MIN,MAX): "ok" when TEXT is a whole number from MIN to MAX.
whole_ok = $(if $(strip $(call strip_chars,$(1),0 1 2 3 4 5 6 7 8 9)),,$(shell \
  awk 'BEGIN { v = "$(strip $(1))"; if (v ~ /^[0-9]+$$/ && v + 0 >= $(2) && v + 0 <= $(3)) print "ok" }'))

ifneq ($(PIPELINE_GOAL),)
  ifeq ($(wildcard $(PROF)),)
    $(error unknown profile '$(PROFILE)': no $(PROF); choose one of: $(basename $(notdir $(wildcard profiles/*.ini))))
  endif
  $(foreach d,$(DEVICES),$(if $(wildcard devices/$(d).ini),,$(error unknown device '$(d)': no devices/$(d).ini; choose one of: $(basename $(notdir $(wildcard devices/*.ini))) or add a file)))
  ifeq ($(wildcard $(SPACE)),)
    $(error SPACE=$(SPACE): no such file; the spaces are supernet/spaces/*.ini)
  endif
  ifeq ($(call whole_ok,$(SEED),0,9223372036854775807),)
    $(error SEED=$(SEED): expected a whole number from 0 to 2^63-1 (e.g. SEED=2))
  endif
  ifneq ($(strip $(LATENCY_MS)),)
    ifeq ($(call numbers_ok,$(LATENCY_MS),32),)
      $(error LATENCY_MS=$(LATENCY_MS): expected latency budgets in ms, each a finite number > 0, up to 32 different ones separated by spaces or commas (e.g. LATENCY_MS=0.5 or LATENCY_MS=0.2,0.5))
    endif
  endif
  ifneq ($(strip $(ENERGY_MJ)),)
    ifeq ($(call numbers_ok,$(ENERGY_MJ),1),)
      $(error ENERGY_MJ=$(ENERGY_MJ): expected one energy budget in mJ, a finite number > 0 (e.g. ENERGY_MJ=0.8))
    endif
  endif
  ifneq ($(ARCH),)
    ifneq ($(words $(ARCH))$(strip $(call strip_chars,$(ARCH),a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R S T U V W X Y Z 0 1 2 3 4 5 6 7 8 9 _ .)),1)
      $(error ARCH=$(ARCH): an arch text is one word of letters, digits, _ and . (docs/formats.md §6, e.g. the arch column of pareto.csv))
    endif
  endif
  ifeq ($(call whole_ok,$(SHARDS),1,64),)
    $(error SHARDS=$(SHARDS): expected a whole number of sampling processes from 1 to 64 (e.g. make -j2 SHARDS=2))
  endif
  ifneq ($(APQ_THREADS),)
    ifeq ($(call whole_ok,$(APQ_THREADS),1,1024),)
      $(error APQ_THREADS=$(APQ_THREADS): expected a whole number of threads from 1 to 1024 (or unset for all CPUs))
    endif
  endif
  ifneq ($(PREDICTOR),)
    ifeq ($(wildcard $(PREDICTOR)),)
      $(error PREDICTOR=$(PREDICTOR): no such file; give the predictor-quant.h5 of another run, e.g. PREDICTOR=runs/quick/predictor-quant.h5)
    endif
    ifneq ($(wildcard $(PREDICTOR)/.),)
      $(error PREDICTOR=$(PREDICTOR): is a folder; give the predictor-quant.h5 file in it)
    endif
  endif
endif

# ---- one make at a time per run folder ------------------------------------------
# A second `make` of the same runs/<profile> waits for the first (flock on
# $(R)/.lock) and then finds its work done, instead of redoing every stage
# beside it. The lock is held by an open file, so a killed make leaves none
# behind. This make only takes the lock and runs the pipeline in a make
# inside it (the same graph); dry runs (-n, -q) take no lock. Settings from
# the command line reach the inner make as usual. Without a -j of the user's,
# the inner make runs -j$(SHARDS), so that the sampling shards run at once
# (one thread each: 1.1x the quantized samples per minute of one process on
# two threads in make bench, docs/predictor.md).
ifneq ($(and $(PIPELINE_GOAL),$(if $(DRY_RUN),,x),$(if $(filter $(R),$(APQ_LOCKED_RUN)),,x)),)

.PRECIOUS: $(PIPELINE_GOAL)
INNER_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(SHARDS))
$(PIPELINE_GOAL): FORCE
	@mkdir -p $(R)
	@export APQ_LOCKED_RUN='$(R)'; \
	flock -n -E 75 '$(R)/.lock' $(MAKE) $(INNER_J) --no-print-directory $@; rc=$$?; \
	if [ $$rc = 75 ]; then \
	  echo "make: $(R) is in use by another make (lock $(R)/.lock); waiting for it to finish" >&2; \
	  flock '$(R)/.lock' $(MAKE) $(INNER_J) --no-print-directory $@; rc=$$?; \
	fi; exit $$rc

else
# the graph itself (study.mk adds to it)
PIPELINE_RULES := 1

# ---- the options each artifact was made with ----------------------------------
# Each recipe records its stage's options (everything but the program path)
# in .<artifact>.args next to the artifact, once the stage succeeded; when
# they differ from the options make would give now (a new SEED, DATA_DIR,
# SPACE, PREDICTOR, SCHEDULE or budget), the artifact depends on FORCE and is
# remade (kbuild's if_changed). A failed attempt records nothing, so it does
# not make the next run redo an artifact that is still right.
.SECONDEXPANSION:
differ = $(subst x$(1),,x$(2))$(subst x$(2),,x$(1))
record_of = $(dir $(1)).$(notdir $(1)).args
# (a missing artifact is made anyway; no FORCE for it keeps a missing secondary
# file, a sampling shard, from forcing what was made from it)
if_changed = $(if $(wildcard $@),$(if $(call differ,$(strip $(1)),$(strip $(file <$(call record_of,$@)))),FORCE))
record = printf '%s\n' '$(strip $(1))' > $(call record_of,$@)

TRAIN_ARGS  := $(strip $(if $(SCHEDULE),--schedule $(SCHEDULE)))
LAT_LIST    := $(subst $(space),$(comma),$(strip $(subst $(comma), ,$(LATENCY_MS))))
BUDGET_ARGS := $(strip $(if $(LAT_LIST),--latency-ms $(LAT_LIST)) $(if $(strip $(ENERGY_MJ)),--energy-mj $(strip $(ENERGY_MJ))))
# PREDICTOR=path reuses a quantization-aware predictor from another run.
PRED_Q := $(or $(PREDICTOR),$(R)/predictor-quant.h5)

# ---- shipped artifacts (pretrained/<name>/, scripts/pretrained.sh) -------------
# The profile's [pretrained] dir (or PRETRAINED=dir) ships a supernet and the two
# predictors with a MANIFEST of their checksums and of the settings they were
# made with. Each one whose settings match this run's is copied instead of made
# (stage by stage: the predictors only over the shipped supernet); the others
# are made here, and the script says why on stderr. RETRAIN=1 makes them all.
PRETRAINED ?= $(shell awk '/^[ \t]*\[/ { s = $$0; gsub(/[ \t]/, "", s) } \
  s == "[pretrained]" && $$1 == "dir" && $$2 == "=" { print $$3 }' $(PROF) 2>/dev/null)
PRETRAINED_ENV = SPACE='$(SPACE)' PROF='$(PROF)' SEED='$(SEED)' SCHEDULE='$(SCHEDULE)' DATA_FILES='$(DATA_FILES)'
REUSE := $(if $(and $(PRETRAINED),$(if $(filter 1,$(RETRAIN)),,x),$(filter-out pretrained-pack,$(PIPELINE_GOAL))),$(shell \
  $(PRETRAINED_ENV) bash scripts/pretrained.sh plan $(PRETRAINED)))
# $(call shipped,NAME): the rule that copies the shipped NAME into $(R)
define shipped
$$(R)/$(1): $$(PRETRAINED)/MANIFEST $$$$(call if_changed,pretrained $$(PRETRAINED))
	@bash scripts/pretrained.sh fetch $$(PRETRAINED) $(1) $$@
	@$$(call record,pretrained $$(PRETRAINED))
endef
$(foreach a,$(REUSE),$(eval $(call shipped,$(a))))

# ---- device-independent artifacts ------------------------------------------
# A killed training resumes from $@.ckpt (saved every epoch) on the next make.
SUPERNET_ARGS = $(COMMON) --data $(DATA) $(TRAIN_ARGS) --out $@
ifeq ($(filter supernet.h5,$(REUSE)),)
$(R)/supernet.h5: $(B)/apq-train-supernet $(SPACE) $(PROF) $(DATA_FILES) $$(call if_changed,$$(SUPERNET_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-train-supernet $(SUPERNET_ARGS)
	@$(call record,$(SUPERNET_ARGS))
endif

# Sampling: one process, or SHARDS processes (make -j SHARDS=n), each its own
# file samples-*.K-of-N.h5, then joined in index order into the same bytes
# (at a fixed APQ_THREADS; shards run one thread each unless it is set).
# The record holds the options without the sharding: samples made with one
# SHARDS stay valid for another. A killed sampling resumes from <file>.partial.
SHARD_IDS  = $(shell seq 1 $(SHARDS))
SHARD_ENV  = $(if $(filter 1,$(SHARDS)),,$(if $(APQ_THREADS),,APQ_THREADS=1 ))
# $(call sampling,KIND,OUT,EXTRA,PREREQS): OUT made by apq-sample-KIND with EXTRA options
# (expanded when the recipe runs) and the extra prerequisites PREREQS
define sampling
$(2)_ARGS = $$(COMMON) --data $$(DATA) --supernet $$(R)/supernet.h5 $(3) --out $(2)
ifeq ($$(SHARDS),1)
$(2): $(4) $$(B)/apq-sample-$(1) $$(R)/supernet.h5 $$(PROF) $$(DATA_FILES) $$$$(call if_changed,$$$$($(2)_ARGS))
	$$(B)/apq-sample-$(1) $$($(2)_ARGS)
	@$$(call record,$$($(2)_ARGS))
else
# the shards are secondary: a finished $(2) does not want them back for another SHARDS
.SECONDARY: $$(foreach k,$$(SHARD_IDS),$$(basename $(2)).$$(k)-of-$$(SHARDS).h5)
$(2): $(4) $$(B)/apq-sample-$(1) $$(foreach k,$$(SHARD_IDS),$$(basename $(2)).$$(k)-of-$$(SHARDS).h5) $$$$(call if_changed,$$$$($(2)_ARGS))
	$$(SHARD_ENV)$$(B)/apq-sample-$(1) $$($(2)_ARGS) --merge $$(SHARDS)
	@$$(call record,$$($(2)_ARGS))
$$(basename $(2)).%-of-$$(SHARDS).h5: $(4) $$(B)/apq-sample-$(1) $$(R)/supernet.h5 $$(PROF) $$(DATA_FILES) $$$$(call if_changed,$$$$($(2)_ARGS) --shard $$$$*/$$(SHARDS))
	$$(SHARD_ENV)$$(B)/apq-sample-$(1) $$(subst --out $(2),--out $$@,$$($(2)_ARGS)) --shard $$*/$$(SHARDS)
	@$$(call record,$$($(2)_ARGS) --shard $$*/$$(SHARDS))
endif
endef
$(eval $(call sampling,fp32,$(R)/samples-fp32.h5,))
$(eval $(call sampling,quant,$(R)/samples-quant.h5,))

PRED_ARGS = $(COMMON) --samples $(R)/samples-fp32.h5 --out $@
ifeq ($(filter predictor-fp32.h5,$(REUSE)),)
$(R)/predictor-fp32.h5: $(B)/apq-train-predictor $(R)/samples-fp32.h5 $(PROF) $$(call if_changed,$$(PRED_ARGS))
	$(B)/apq-train-predictor $(PRED_ARGS)
	@$(call record,$(PRED_ARGS))
endif

TRANSFER_ARGS = $(COMMON) --samples $(R)/samples-quant.h5 --init $(R)/predictor-fp32.h5 --out $@
ifeq ($(filter predictor-quant.h5,$(REUSE)),)
$(R)/predictor-quant.h5: $(B)/apq-transfer-predictor $(R)/samples-quant.h5 $(R)/predictor-fp32.h5 $(PROF) $$(call if_changed,$$(TRANSFER_ARGS))
	$(B)/apq-transfer-predictor $(TRANSFER_ARGS)
	@$(call record,$(TRANSFER_ARGS))
endif

# This run's supernet and predictors into the shipped folder (the profile's
# [pretrained] dir or PRETRAINED=dir), with MANIFEST and SHA256SUMS; the
# predictors as far as they are made (PACK=supernet ships the supernet alone,
# so that a run longer than one sitting goes on from the shipped supernet).
PACK ?= all
pretrained-pack: $(R)/supernet.h5 $(if $(filter supernet,$(PACK)),,$(R)/predictor-fp32.h5 $(R)/predictor-quant.h5)
	@test -n '$(PRETRAINED)' || { echo "make pretrained-pack: profile $(PROFILE) names no [pretrained] dir; give PRETRAINED=dir" >&2; exit 2; }
	@$(PRETRAINED_ENV) bash scripts/pretrained.sh pack $(PRETRAINED) $(R) $(filter supernet,$(PACK))

# ---- per device --------------------------------------------------------------
LUT_ARGS = $(COMMON) --device devices/$*.ini --out $@
$(R)/%/lut.h5: $(B)/apq-build-lut devices/%.ini $(SPACE) $(PROF) $$(call if_changed,$$(LUT_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-build-lut $(LUT_ARGS)
	@$(call record,$(LUT_ARGS))

SEARCH_ARGS = $(COMMON) --predictor $(PRED_Q) --lut $(R)/$*/lut.h5 $(BUDGET_ARGS) --out $@
$(R)/%/search.h5: $(B)/apq-search $(R)/%/lut.h5 $(PRED_Q) $(PROF) $$(call if_changed,$$(SEARCH_ARGS))
	$(B)/apq-search $(SEARCH_ARGS)
	@$(call record,$(SEARCH_ARGS))

VERIFY_ARGS = $(COMMON) --data $(DATA) --supernet $(R)/supernet.h5 --search $(R)/$*/search.h5 --out $@
$(R)/%/verified.h5: $(B)/apq-verify $(R)/%/search.h5 $(R)/supernet.h5 $(PROF) $(DATA_FILES) $$(call if_changed,$$(VERIFY_ARGS))
	$(B)/apq-verify $(VERIFY_ARGS)
	@$(call record,$(VERIFY_ARGS))

# With PREDICTOR= this run makes no fp32 predictor, and the report says so.
OWN_PRED_FP32 := $(if $(PREDICTOR),,$(R)/predictor-fp32.h5)
REPORT_ARGS = --verified $(R)/$*/verified.h5 --exports $(REPORTS)/$(PROFILE)/$*/models/exports.csv \
    --supernet $(R)/supernet.h5 \
    $(if $(OWN_PRED_FP32),--predictor-fp32 $(OWN_PRED_FP32)) --predictor-quant $(PRED_Q) \
    --profile $(PROFILE) --device $* --seed $(SEED) --out-dir $(@D)
$(REPORTS)/$(PROFILE)/%/README.md: $(B)/apq-report $(R)/%/verified.h5 $(REPORTS)/$(PROFILE)/%/models/exports.csv $(R)/supernet.h5 $(PRED_Q) $(OWN_PRED_FP32) $$(call if_changed,$$(REPORT_ARGS))
	$(B)/apq-report $(REPORT_ARGS)
	@$(call record,$(REPORT_ARGS))

report all: $(foreach d,$(DEVICES),$(REPORTS)/$(PROFILE)/$(d)/README.md)

# ---- every verified point as an integer-only model (make export) ---------------
# models/<row>/model.h5 and models/exports.csv: each row's subnet as verify
# measured it, converted to integers and measured against it on the test split.
EXPORT_ARGS = $(COMMON) --data $(DATA) --verified $(R)/$*/verified.h5 --out-dir $(@D)
$(REPORTS)/$(PROFILE)/%/models/exports.csv: $(B)/apq-export $(R)/%/verified.h5 $(PROF) $(DATA_FILES) $$(call if_changed,$$(EXPORT_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-export $(EXPORT_ARGS)
	@$(call record,$(EXPORT_ARGS))

ifeq ($(ARCH),)
export: $(foreach d,$(DEVICES),$(REPORTS)/$(PROFILE)/$(d)/models/exports.csv)
else
# make export ARCH=<arch text>: that one subnet into models/<arch>/ of the
# first device, QAT-finetuned with verify's recipe unless it is a verified
# row (then that row's subnet); needs the supernet only
ARCH_DEV  := $(firstword $(DEVICES))
ARCH_OUT  := $(REPORTS)/$(PROFILE)/$(ARCH_DEV)/models/$(ARCH)/exports.csv
ARCH_VER  = $(wildcard $(R)/$(ARCH_DEV)/verified.h5)
ARCH_ARGS = $(COMMON) --data $(DATA) --supernet $(R)/supernet.h5 --arch $(ARCH) \
    $(if $(ARCH_VER),--verified $(ARCH_VER)) --out-dir $(@D)
$(ARCH_OUT): $(B)/apq-export $(R)/supernet.h5 $(ARCH_VER) $(PROF) $(DATA_FILES) $$(call if_changed,$$(ARCH_ARGS))
	$(B)/apq-export $(ARCH_ARGS)
	@$(call record,$(ARCH_ARGS))
export: $(ARCH_OUT)
endif

# ---- OFA's claim checked: extracted subnets vs the same subnets from scratch ----
SCRATCH := smallest middle largest
SCRATCH_ARGS = $(COMMON) --data $(DATA) --out $@
$(R)/scratch/%.h5: $(B)/apq-train-supernet $(B)/apq-evaluate $(SPACE) $(PROF) $(DATA_FILES) $$(call if_changed,$$(SCRATCH_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-train-supernet $(SCRATCH_ARGS) --fixed $$($(B)/apq-evaluate --space $(SPACE) --print-arch $*)
	@$(call record,$(SCRATCH_ARGS))

EVAL_ARGS = $(COMMON) --data $(DATA) --supernet $(R)/supernet.h5 $(if $(filter %scratch-baseline.md,$@),--scratch-dir $(R)/scratch) --out-dir $(@D)
$(REPORTS)/$(PROFILE)/scratch-baseline.md: $(B)/apq-evaluate $(R)/supernet.h5 $(SCRATCH:%=$(R)/scratch/%.h5) $(DATA_FILES) $$(call if_changed,$$(EVAL_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-evaluate $(EVAL_ARGS)
	@$(call record,$(EVAL_ARGS))

scratch-baseline: $(REPORTS)/$(PROFILE)/scratch-baseline.md

# ---- the supernet alone: five extracted subnets on val and test -----------------
$(REPORTS)/$(PROFILE)/supernet-eval.md: $(B)/apq-evaluate $(R)/supernet.h5 $(PROF) $(DATA_FILES) $$(call if_changed,$$(EVAL_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-evaluate $(EVAL_ARGS)
	@$(call record,$(EVAL_ARGS))

supernet-eval: $(REPORTS)/$(PROFILE)/supernet-eval.md

endif

.PRECIOUS: $(R)/%/lut.h5 $(R)/%/search.h5 $(R)/%/verified.h5
.PHONY: report export scratch-baseline supernet-eval pretrained-pack
