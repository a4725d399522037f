# pipeline.mk — the data flow of DESIGN.md §1 as file targets (included by Makefile).
# Every artifact depends on its inputs, on the program that makes it and on the
# profile, so an edit to the search code reruns the search and not the training.
#
#   make [PROFILE=tiny|quick|full] [DEVICE=bitfusion | DEVICES="a b"] [SEED=1]
#        [LATENCY_MS=x] [ENERGY_MJ=x] [PREDICTOR=path/to/predictor-quant.h5]
#        [SCHEDULE=sandwich|ps]
#        [DATA_DIR=/usr/share/datasets/fashion-mnist]

PROFILE  ?= quick
DEVICE   ?= bitfusion
DEVICES  ?= $(DEVICE)
SEED     ?= 1
DATA_DIR ?= /usr/share/datasets/fashion-mnist
RUNS     ?= runs
REPORTS  ?= reports
SPACE    ?= $(if $(filter tiny,$(PROFILE)),supernet/spaces/tiny.ini,supernet/spaces/fmnist-mbv2.ini)

PROF := profiles/$(PROFILE).ini
R    := $(RUNS)/$(PROFILE)
COMMON = --space $(SPACE) --profile $(PROF) --seed $(SEED)

# ---- checks that fail early with one line --------------------------------
ifeq ($(filter all report scratch-baseline supernet-eval $(R)/% $(REPORTS)/%,$(or $(MAKECMDGOALS),all)),)
else
  ifeq ($(wildcard $(PROF)),)
    $(error unknown profile '$(PROFILE)': no $(PROF); choose one of: $(basename $(notdir $(wildcard profiles/*.ini))))
  endif
  $(foreach d,$(DEVICES),$(if $(wildcard devices/$(d).ini),,$(error unknown device '$(d)': no devices/$(d).ini; choose one of: $(basename $(notdir $(wildcard devices/*.ini))) or add a file)))
endif

# Command-line settings live in small .args files, rewritten at parse time only
# when they change: `make SCHEDULE=ps` retrains, `make LATENCY_MS=x` reruns the
# search and what follows, and a plain second `make` has nothing to do.
PIPELINE_GOAL := $(filter all report scratch-baseline supernet-eval $(R)/% $(REPORTS)/%,$(or $(MAKECMDGOALS),all))
args_file = $(if $(PIPELINE_GOAL),$(shell mkdir -p $(dir $(1)) && (echo '$(2)' | cmp -s - $(1) || echo '$(2)' > $(1))))
TRAIN_ARGS  := $(strip $(if $(SCHEDULE),--schedule $(SCHEDULE)))
BUDGET_ARGS := $(strip $(if $(LATENCY_MS),--latency-ms $(LATENCY_MS)) $(if $(ENERGY_MJ),--energy-mj $(ENERGY_MJ)))
$(call args_file,$(R)/train.args,$(TRAIN_ARGS))
$(foreach d,$(DEVICES),$(call args_file,$(R)/$(d)/budget.args,$(BUDGET_ARGS)))

# ---- device-independent artifacts ------------------------------------------
# A killed training resumes from $@.ckpt (saved every epoch) on the next make.
$(R)/supernet.h5: $(B)/apq-train-supernet $(SPACE) $(PROF) $(R)/train.args
	@mkdir -p $(@D)
	$(B)/apq-train-supernet $(COMMON) --data $(DATA_DIR) $(TRAIN_ARGS) --out $@

$(R)/samples-fp32.h5: $(B)/apq-sample-fp32 $(R)/supernet.h5 $(PROF)
	$(B)/apq-sample-fp32 $(COMMON) --data $(DATA_DIR) --supernet $(R)/supernet.h5 --out $@

$(R)/predictor-fp32.h5: $(B)/apq-train-predictor $(R)/samples-fp32.h5 $(PROF)
	$(B)/apq-train-predictor $(COMMON) --samples $(R)/samples-fp32.h5 --out $@

$(R)/samples-quant.h5: $(B)/apq-sample-quant $(R)/supernet.h5 $(PROF)
	$(B)/apq-sample-quant $(COMMON) --data $(DATA_DIR) --supernet $(R)/supernet.h5 --out $@

$(R)/predictor-quant.h5: $(B)/apq-transfer-predictor $(R)/samples-quant.h5 $(R)/predictor-fp32.h5 $(PROF)
	$(B)/apq-transfer-predictor $(COMMON) --samples $(R)/samples-quant.h5 --init $(R)/predictor-fp32.h5 --out $@

# PREDICTOR=path reuses a quantization-aware predictor from another run.
PRED_Q := $(or $(PREDICTOR),$(R)/predictor-quant.h5)

# ---- per device --------------------------------------------------------------
$(R)/%/lut.h5: $(B)/apq-build-lut devices/%.ini $(SPACE) $(PROF)
	@mkdir -p $(@D)
	$(B)/apq-build-lut $(COMMON) --device devices/$*.ini --out $@

$(R)/%/search.h5: $(B)/apq-search $(R)/%/lut.h5 $(PRED_Q) $(R)/%/budget.args $(PROF)
	$(B)/apq-search $(COMMON) --predictor $(PRED_Q) --lut $(R)/$*/lut.h5 $$(cat $(R)/$*/budget.args) --out $@

$(R)/%/verified.h5: $(B)/apq-verify $(R)/%/search.h5 $(R)/supernet.h5 $(PROF)
	$(B)/apq-verify $(COMMON) --data $(DATA_DIR) --supernet $(R)/supernet.h5 --search $(R)/$*/search.h5 --out $@

$(REPORTS)/$(PROFILE)/%/README.md: $(B)/apq-report $(R)/%/verified.h5
	$(B)/apq-report --verified $(R)/$*/verified.h5 --supernet $(R)/supernet.h5 \
	    --predictor-fp32 $(R)/predictor-fp32.h5 --predictor-quant $(PRED_Q) \
	    --profile $(PROFILE) --device $* --seed $(SEED) --out-dir $(@D)

report all: $(foreach d,$(DEVICES),$(REPORTS)/$(PROFILE)/$(d)/README.md)

# ---- OFA's claim checked: extracted subnets vs the same subnets from scratch ----
SCRATCH := smallest middle largest
$(R)/scratch/%.h5: $(B)/apq-train-supernet $(B)/apq-evaluate $(SPACE) $(PROF)
	@mkdir -p $(@D)
	$(B)/apq-train-supernet $(COMMON) --data $(DATA_DIR) --fixed $$($(B)/apq-evaluate --space $(SPACE) --print-arch $*) --out $@

$(REPORTS)/$(PROFILE)/scratch-baseline.md: $(B)/apq-evaluate $(R)/supernet.h5 $(SCRATCH:%=$(R)/scratch/%.h5)
	@mkdir -p $(@D)
	$(B)/apq-evaluate $(COMMON) --data $(DATA_DIR) --supernet $(R)/supernet.h5 --scratch-dir $(R)/scratch --out-dir $(@D)

scratch-baseline: $(REPORTS)/$(PROFILE)/scratch-baseline.md

# ---- the supernet alone: five extracted subnets on val and test -----------------
$(REPORTS)/$(PROFILE)/supernet-eval.md: $(B)/apq-evaluate $(R)/supernet.h5 $(PROF)
	@mkdir -p $(@D)
	$(B)/apq-evaluate $(COMMON) --data $(DATA_DIR) --supernet $(R)/supernet.h5 --out-dir $(@D)

supernet-eval: $(REPORTS)/$(PROFILE)/supernet-eval.md

.PRECIOUS: $(R)/%/lut.h5 $(R)/%/search.h5 $(R)/%/verified.h5
.PHONY: report scratch-baseline supernet-eval
