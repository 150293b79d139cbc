# fuzz/fuzz.mk - fuzzing, included by the top-level Makefile (uses its CC,
# BUILD, ALL_CFLAGS, ALL_LDFLAGS, LIB_SRCS, STATIC and LIBS).
#   make fuzz          libFuzzer + ASan + UBSan drivers in $(BUILD)/fuzz/ (clang)
#   make fuzz-smoke    runs each driver FUZZ_SECONDS (60) on a copy of its corpus,
#                      FUZZ_JOBS (one per CPU) at a time
#   make fuzz-replay   replays fuzz/corpus/* and fuzz/regression/ through every
#                      driver with $(CC) and a plain main(); `make test` runs it
# Every fuzz/fuzz_NAME.c is a driver; its seeds are fuzz/corpus/NAME/ (http/
# for http_parse) and its findings fuzz/regression/NAME-*. The parser drivers
# compile lib/http_parse*.c alone, so they build while the rest of the library
# does not; the others take the whole library. fuzz/corpus/*/capture_* (and
# conn/http_capture_*) are the exact bytes of real clients (curl, Python
# urllib and requests, Node fetch and http), recorded by fuzz/capture.py.
# A driver uses fuzz/NAME.dict when there is one, NAME cut at its first '_'
# (ws.dict for ws and ws_conn), else http.dict.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?=
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Wall -Wextra -Werror -Iinclude -Ilib $(TLS_CFLAGS)

# The library's objects: coverage instrumentation without libFuzzer's main.
fuzz_comma     := ,
FUZZ_OBJ_FLAGS := $(subst -fsanitize=fuzzer$(fuzz_comma),-fsanitize=fuzzer-no-link$(fuzz_comma),$(FUZZ_FLAGS))

FUZZ_DRIVERS := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_PARSER  := $(filter http_parse chunked,$(FUZZ_DRIVERS))
FUZZ_LIBBED  := $(filter-out $(FUZZ_PARSER),$(FUZZ_DRIVERS))
FUZZ_BINS    := $(FUZZ_DRIVERS:%=$(BUILD)/fuzz/fuzz_%)

REPLAY_DIR  := $(BUILD)/fuzz-replay
PARSE_SRCS  := lib/http_parse.c lib/http_parse_chunked.c
PARSE_HDRS  := lib/http_parse.h lib/http_parse_cls.h
REPLAY_OBJS := $(REPLAY_DIR)/replay_main.o $(REPLAY_DIR)/http_parse.o \
               $(REPLAY_DIR)/http_parse_chunked.o \
               $(FUZZ_DRIVERS:%=$(REPLAY_DIR)/fuzz_%.o)
REPLAY_BINS := $(FUZZ_DRIVERS:%=$(REPLAY_DIR)/replay_%)

.PHONY: fuzz fuzz-smoke fuzz-smoke-one fuzz-replay

fuzz: $(FUZZ_BINS)

$(FUZZ_PARSER:%=$(BUILD)/fuzz/fuzz_%): $(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_check.h \
        $(PARSE_SRCS) $(PARSE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(PARSE_SRCS) -o $@

# The library is compiled once for all these drivers, instrumented for
# coverage (fuzzer-no-link) and the sanitizers; each driver links it.
FUZZ_OBJ_DIR  := $(BUILD)/fuzz/obj
FUZZ_LIB_OBJS := $(LIB_SRCS:lib/%.c=$(FUZZ_OBJ_DIR)/%.o)

$(FUZZ_OBJ_DIR)/%.o: lib/%.c $(wildcard lib/*.h) include/appsrv.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_OBJ_FLAGS) \
	    -c $< -o $@

$(FUZZ_LIBBED:%=$(BUILD)/fuzz/fuzz_%): $(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/conn_harness.h \
        fuzz/fuzz_check.h $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(FUZZ_LIB_OBJS) -o $@ $(LIBS)

# Each driver grows its own corpus copy under $(BUILD)/fuzz/corpus/; the
# seeds and the driver's regression inputs are copied in first. Findings
# land in $(BUILD)/fuzz/artifacts/: minimise them (-minimize_crash=1) and
# commit them as fuzz/regression/NAME-<issue or description>.
# The drivers run FUZZ_JOBS at a time (default: one per CPU), each into
# $(BUILD)/fuzz/NAME.log; a driver's last lines are printed when it ends,
# and its whole log when it fails. FUZZ_JOBS=1 runs them one after another.
FUZZ_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

fuzz-smoke: fuzz
	@printf '%s\n' $(FUZZ_DRIVERS) | xargs -P $(FUZZ_JOBS) -I{} \
	    $(MAKE) -s --no-print-directory fuzz-smoke-one FUZZ_DRV={}

fuzz-smoke-one:
	@set -e; drv=$(FUZZ_DRV); seeds=$$drv; [ $$drv = http_parse ] && seeds=http; \
	dir=$(BUILD)/fuzz/corpus/$$seeds; log=$(BUILD)/fuzz/$$drv.log; \
	mkdir -p $$dir $(BUILD)/fuzz/artifacts; \
	for f in fuzz/corpus/$$seeds/* fuzz/regression/$$drv-* fuzz/regression/$$seeds-*; do \
	    if [ -f "$$f" ]; then cp "$$f" $$dir/; fi; \
	done; \
	echo "fuzz-smoke: fuzz_$$drv for $(FUZZ_SECONDS)s (log: $$log)"; \
	dict=fuzz/$${seeds%%_*}.dict; [ -f $$dict ] || dict=fuzz/http.dict; \
	if $(BUILD)/fuzz/fuzz_$$drv -max_total_time=$(FUZZ_SECONDS) -dict=$$dict \
	        -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/artifacts/$$drv- \
	        $(FUZZ_ARGS) $$dir >$$log 2>&1; then \
	    echo "fuzz-smoke: fuzz_$$drv passed:" \
	        $$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' $$log | tr -s ' ') \
	        $$(grep -oE 'cov: [0-9]+' $$log | tail -n 1); \
	else \
	    cat $$log; echo "fuzz-smoke: fuzz_$$drv FAILED (artifacts in $(BUILD)/fuzz/artifacts/)"; \
	    exit 1; \
	fi

$(REPLAY_DIR)/%.o: fuzz/%.c $(wildcard fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -c $< -o $@

$(REPLAY_DIR)/http_parse.o $(REPLAY_DIR)/http_parse_chunked.o: $(REPLAY_DIR)/%.o: lib/%.c \
        $(PARSE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -c $< -o $@

$(FUZZ_PARSER:%=$(REPLAY_DIR)/replay_%): $(REPLAY_DIR)/replay_%: $(REPLAY_DIR)/replay_main.o \
        $(REPLAY_DIR)/fuzz_%.o $(REPLAY_DIR)/http_parse.o $(REPLAY_DIR)/http_parse_chunked.o
	$(CC) -o $@ $^ $(ALL_LDFLAGS)

$(FUZZ_LIBBED:%=$(REPLAY_DIR)/replay_%): $(REPLAY_DIR)/replay_%: $(REPLAY_DIR)/replay_main.o \
        $(REPLAY_DIR)/fuzz_%.o $(STATIC)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

# Every driver must survive every input, so each one replays all of them.
fuzz-replay: $(REPLAY_BINS)
	@set -e; for drv in $(FUZZ_DRIVERS); do \
	    $(REPLAY_DIR)/replay_$$drv fuzz/corpus/* fuzz/regression; \
	done

# STYLE §6: every committed crasher is replayed by `make test`.
test: fuzz-replay

# Keep the objects: they are intermediate for make, not for us.
.SECONDARY: $(REPLAY_OBJS)

-include $(REPLAY_OBJS:.o=.d)

# fuzz_line.c is fuzz_conn.c in line mode (it #includes it). fuzz_ws_conn.c
# is the WebSocket connection (upgrade, frames, host sends and closes).
$(BUILD)/fuzz/fuzz_line $(REPLAY_DIR)/fuzz_line.o: fuzz/fuzz_conn.c
