# study.mk — make transfer-study: APQ's predictor-transfer claim re-measured (issue 14).
# Included by Makefile after pipeline.mk, whose variables, checks and if_changed it uses.
#
#   make transfer-study [PROFILE=quick] [SEED=1]
#     -> reports/<profile>/transfer/README.md, transfer.csv, transfer.png
#
# The study draws its own [transfer-study] samples quantized samples once, into
# runs/<profile>/transfer/samples-quant.h5 (apart from the pipeline's
# samples-quant.h5, with the pipeline's sampling options and --n), and reuses
# the pipeline's supernet.h5 and predictor-fp32.h5. apq-transfer-study holds a
# fixed set out and trains the quantization-aware predictor with transfer and
# from scratch on nested training sets of every size, for every seed.

STUDY_DIR     := $(REPORTS)/$(PROFILE)/transfer
STUDY_SAMPLES := $(R)/transfer/samples-quant.h5

# `make transfer-study` takes the run folder's lock like the pipeline's goals
# (pipeline.mk) and runs inside it; this make only checks and locks. Once
# pipeline.mk's PIPELINE_GOAL lists transfer-study, pipeline.mk does both.
STUDY_LOCK := $(and $(filter transfer-study,$(MAKECMDGOALS)),$(if $(filter transfer-study,$(PIPELINE_GOAL)),,x),$(if $(DRY_RUN),,x),$(if $(filter $(R),$(APQ_LOCKED_RUN)),,x))

ifneq ($(STUDY_LOCK),)
  ifeq ($(wildcard $(PROF)),)
    $(error unknown profile '$(PROFILE)': no $(PROF); choose one of: $(basename $(notdir $(wildcard profiles/*.ini))))
  endif
  ifeq ($(call whole_ok,$(SEED),0,9223372036854775807),)
    $(error SEED=$(SEED): expected a whole number from 0 to 2^63-1 (e.g. SEED=2))
  endif

transfer-study: FORCE
	@mkdir -p $(R)
	@export APQ_LOCKED_RUN='$(R)'; \
	flock -n -E 75 '$(R)/.lock' $(MAKE) --no-print-directory $@; rc=$$?; \
	if [ $$rc = 75 ]; then \
	  echo "make: $(R) is in use by another make (lock $(R)/.lock); waiting for it to finish" >&2; \
	  flock '$(R)/.lock' $(MAKE) --no-print-directory $@; rc=$$?; \
	fi; exit $$rc

else ifneq ($(value if_changed),)

# The profile's [transfer-study] section checked (exit 2 on a bad value) and
# its samples count, first: before the supernet or any sample is made.
$(R)/transfer/samples.n: $(PROF) | $(B)/apq-transfer-study
	@mkdir -p $(@D)
	$(B)/apq-transfer-study --profile $(PROF) --print-samples > $@

# The pipeline's sampling options (pipeline.mk SAMPLE_ARGS) and --n that count.
# The study program is order-only above: an edit to it does not resample.
$(STUDY_SAMPLES): $(R)/transfer/samples.n $(B)/apq-sample-quant $(R)/supernet.h5 $(PROF) $(DATA_FILES) $$(call if_changed,$$(SAMPLE_ARGS))
	$(B)/apq-sample-quant $(SAMPLE_ARGS) --n $(file <$<)
	@$(call record,$(SAMPLE_ARGS))

STUDY_ARGS = $(COMMON) --samples $(STUDY_SAMPLES) --init $(R)/predictor-fp32.h5 --out-dir $(@D)
$(STUDY_DIR)/README.md: $(B)/apq-transfer-study $(STUDY_SAMPLES) $(R)/predictor-fp32.h5 $(PROF) $$(call if_changed,$$(STUDY_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-transfer-study $(STUDY_ARGS)
	@$(call record,$(STUDY_ARGS))

transfer-study: $(STUDY_DIR)/README.md

endif

.PHONY: transfer-study
