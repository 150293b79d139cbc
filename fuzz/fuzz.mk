# fuzz/fuzz.mk - fuzzing, included by the top-level Makefile (uses its CC,
# BUILD, ALL_CFLAGS and ALL_LDFLAGS).
#   make fuzz          libFuzzer + ASan + UBSan drivers in $(BUILD)/fuzz/ (clang)
#   make fuzz-smoke    runs each driver FUZZ_SECONDS (60) on a copy of its corpus
#   make fuzz-replay   replays fuzz/corpus/* and fuzz/regression/ through both
#                      drivers with $(CC) and a plain main(); `make test` runs it
# The drivers compile lib/http_parse.c directly, so they build while the rest
# of the library does not.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?=
FUZZ_DRIVERS := http_parse chunked
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Wall -Wextra -Werror -Iinclude -Ilib
FUZZ_BINS    := $(FUZZ_DRIVERS:%=$(BUILD)/fuzz/fuzz_%)

REPLAY_DIR  := $(BUILD)/fuzz-replay
REPLAY_OBJS := $(REPLAY_DIR)/replay_main.o $(FUZZ_DRIVERS:%=$(REPLAY_DIR)/fuzz_%.o)
REPLAY_BINS := $(FUZZ_DRIVERS:%=$(REPLAY_DIR)/replay_%)

.PHONY: fuzz fuzz-smoke fuzz-replay

fuzz: $(FUZZ_BINS)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_check.h lib/http_parse.c lib/http_parse.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< lib/http_parse.c -o $@

# Each driver grows its own corpus copy under $(BUILD)/fuzz/corpus/; the
# seeds and the regression inputs are copied in first. Findings land in
# $(BUILD)/fuzz/artifacts/: minimise them and commit them to fuzz/regression/.
fuzz-smoke: fuzz
	@set -e; for pair in http_parse:http chunked:chunked; do \
	    drv=$${pair%%:*}; seeds=$${pair#*:}; dir=$(BUILD)/fuzz/corpus/$$seeds; \
	    mkdir -p $$dir $(BUILD)/fuzz/artifacts; \
	    cp fuzz/corpus/$$seeds/* $$dir/; \
	    for f in fuzz/regression/*; do \
	        case $$f in */README*) ;; *) cp "$$f" $$dir/ ;; esac; \
	    done; \
	    echo "fuzz-smoke: fuzz_$$drv for $(FUZZ_SECONDS)s"; \
	    $(BUILD)/fuzz/fuzz_$$drv -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict \
	        -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/artifacts/$$drv- \
	        $(FUZZ_ARGS) $$dir; \
	done

$(REPLAY_DIR)/%.o: fuzz/%.c fuzz/fuzz_check.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -c $< -o $@

$(REPLAY_DIR)/http_parse.o: lib/http_parse.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -c $< -o $@

$(REPLAY_DIR)/replay_%: $(REPLAY_DIR)/replay_main.o $(REPLAY_DIR)/fuzz_%.o $(REPLAY_DIR)/http_parse.o
	$(CC) -o $@ $^ $(ALL_LDFLAGS)

fuzz-replay: $(REPLAY_BINS)
	@set -e; for drv in $(FUZZ_DRIVERS); do \
	    $(REPLAY_DIR)/replay_$$drv fuzz/corpus/* fuzz/regression; \
	done

# STYLE §6: every committed crasher is replayed by `make test`.
test: fuzz-replay

# Keep the objects: they are intermediate for make, not for us.
.SECONDARY: $(REPLAY_OBJS) $(REPLAY_DIR)/http_parse.o

-include $(REPLAY_OBJS:.o=.d) $(REPLAY_DIR)/http_parse.d
