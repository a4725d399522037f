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

# pipeline.mk checks the settings, takes the run folder's lock and defines
# the rules below inside it (PIPELINE_RULES).
ifeq ($(PIPELINE_RULES),1)

# The profile's [transfer-study] section checked (exit 2 on a bad value) and
# its samples count, first: before the supernet or any sample is made.
# Under make -j (the default, pipeline.mk) nothing else starts before it:
# the supernet waits for it when the study is a goal.
$(R)/transfer/samples.n: $(PROF) | $(B)/apq-transfer-study
	@mkdir -p $(@D)
	$(B)/apq-transfer-study --profile $(PROF) --print-samples > $@.tmp && mv $@.tmp $@
ifneq ($(filter transfer-study,$(PIPELINE_GOAL)),)
$(R)/supernet.h5: | $(R)/transfer/samples.n
endif

# The pipeline's sampling rules (pipeline.mk: SHARDS, resume) with --n that count.
# The study program is order-only above: an edit to it does not resample.
$(eval $(call sampling,quant,$(STUDY_SAMPLES),--n $$(file <$(R)/transfer/samples.n),$(R)/transfer/samples.n))

STUDY_ARGS = $(COMMON) --samples $(STUDY_SAMPLES) --init $(R)/predictor-fp32.h5 --out-dir $(@D)
$(STUDY_DIR)/README.md: $(B)/apq-transfer-study $(STUDY_SAMPLES) $(R)/predictor-fp32.h5 $(PROF) $$(call if_changed,$$(STUDY_ARGS))
	@mkdir -p $(@D)
	$(B)/apq-transfer-study $(STUDY_ARGS)
	@$(call record,$(STUDY_ARGS))

transfer-study: $(STUDY_DIR)/README.md

endif

.PHONY: transfer-study
