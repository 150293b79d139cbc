# libappsrv - one non-recursive Makefile. Objects go to $(BUILD)/.
# Targets: all test asan valgrind run examples fuzz fuzz-smoke fuzz-replay
#          adversarial ws-concurrent soak bench install uninstall pkgcheck
#          interop-deps clean

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PKGDIR     ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=

CC    ?= cc
BUILD ?= build

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -fPIC -fvisibility=hidden \
               -Iinclude -MMD -MP
ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# User CFLAGS/LDFLAGS append, never replace.
ALL_CFLAGS  = $(BASE_CFLAGS) $(TLS_CFLAGS) $(ZLIB_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(TLS_LIBS) $(ZLIB_LIBS) -pthread

# TLS (OpenSSL 3 through pkg-config) is optional: TLS=auto (default) builds
# it in when pkg-config finds openssl >= 3, TLS=yes insists, TLS=no builds
# the dependency-free core (the appsrv_tls_* calls then return -ENOTSUP).
TLS ?= auto
ifeq ($(TLS),auto)
override TLS := $(shell pkg-config --exists 'openssl >= 3.0' 2>/dev/null && echo yes || echo no)
endif
ifeq ($(TLS),yes)
ifneq ($(shell pkg-config --exists 'openssl >= 3.0' 2>/dev/null && echo ok),ok)
$(error TLS=yes needs OpenSSL >= 3.0 found by pkg-config: install libssl-dev and pkg-config (Debian/Ubuntu), or build with TLS=no)
endif
TLS_CFLAGS := $(shell pkg-config --cflags openssl) -DAPPSRV_HAVE_TLS=1
TLS_LIBS   := $(shell pkg-config --libs openssl)
TLS_OUT    := lib/tls_none.c
PC_REQUIRES := Requires.private: openssl
else ifeq ($(TLS),no)
TLS_CFLAGS :=
TLS_LIBS   :=
TLS_OUT    := lib/tls.c lib/tls_transport.c
PC_REQUIRES :=
else
$(error TLS must be auto, yes or no (got '$(TLS)'))
endif

# gzip (zlib through pkg-config) is optional the same way: ZLIB=auto
# (default) builds it in when pkg-config finds zlib, ZLIB=yes insists,
# ZLIB=no leaves it out (appsrv_gzip_use() then returns -ENOTSUP).
ZLIB ?= auto
ifeq ($(ZLIB),auto)
override ZLIB := $(shell pkg-config --exists zlib 2>/dev/null && echo yes || echo no)
endif
ifeq ($(ZLIB),yes)
ifneq ($(shell pkg-config --exists zlib 2>/dev/null && echo ok),ok)
$(error ZLIB=yes needs zlib found by pkg-config: install zlib1g-dev and pkg-config (Debian/Ubuntu), or build with ZLIB=no)
endif
ZLIB_CFLAGS := $(shell pkg-config --cflags zlib) -DAPPSRV_HAVE_ZLIB=1
ZLIB_LIBS   := $(shell pkg-config --libs zlib)
ZLIB_OUT    := lib/gzip_none.c
PC_REQUIRES := $(if $(PC_REQUIRES),$(PC_REQUIRES) zlib,Requires.private: zlib)
else ifeq ($(ZLIB),no)
ZLIB_CFLAGS :=
ZLIB_LIBS   :=
ZLIB_OUT    := lib/gzip.c
else
$(error ZLIB must be auto, yes or no (got '$(ZLIB)'))
endif

LIB_SRCS := $(filter-out $(TLS_OUT) $(ZLIB_OUT),$(sort $(wildcard lib/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS := $(BUILD)/cli/appsrv.o $(BUILD)/cli/deploy_cli.o $(BUILD)/cli/routes.o
# tests/support/: the toolkit every suite shares (README in e2e.h). Files
# named *_cr.c use Criterion; the others also build into the adversarial
# program.
SUPPORT_SRCS    := $(sort $(wildcard tests/support/*.c))
SUPPORT_CR_SRCS := $(filter %_cr.c,$(SUPPORT_SRCS))
SUPPORT_PLAIN   := $(filter-out $(SUPPORT_CR_SRCS),$(SUPPORT_SRCS))
TEST_SRCS := $(sort $(wildcard tests/*.c)) $(SUPPORT_SRCS)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
DEPS := $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d)

STATIC := $(BUILD)/libappsrv.a
SONAME := libappsrv.so.$(VERSION_MAJOR)
SHARED := $(BUILD)/libappsrv.so.$(VERSION)
CLI    := $(BUILD)/appsrv
TESTS  := $(BUILD)/tests/run_tests
PC     := $(BUILD)/appsrv.pc

.PHONY: all test asan valgrind run examples fuzz fuzz-smoke bench install uninstall \
        pkgcheck clean criterion-check

all: $(STATIC) $(SHARED) $(CLI) $(PC)

# Every object depends on the TLS and ZLIB choices: switching rebuilds in place.
TLS_STAMP := $(BUILD)/tls-$(TLS)-zlib-$(ZLIB).stamp
$(TLS_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/tls-*.stamp
	@touch $@

$(BUILD)/%.o: %.c $(TLS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# Only appsrv_* symbols leave the shared library: -fvisibility=hidden is the
# first gate, the version script the second.
$(SHARED): $(LIB_OBJS) lib/appsrv.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/appsrv.map \
	    -o $@ $(LIB_OBJS) $(ALL_LDFLAGS) $(LIBS)
	ln -sf libappsrv.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libappsrv.so

$(CLI): $(CLI_OBJS) $(STATIC)
	$(CC) -o $@ $(CLI_OBJS) $(STATIC) $(ALL_LDFLAGS) $(LIBS)

# appsrv.pc bakes in the install paths, so it depends on a stamp holding
# them, rewritten only when they change (make install PREFIX=/x after make).
PC_DIRS := $(PREFIX) $(LIBDIR) $(INCLUDEDIR)
$(BUILD)/pc-dirs: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = '$(PC_DIRS)' ] || printf '%s\n' '$(PC_DIRS)' > $@
FORCE:

$(PC): pkgconfig/appsrv.pc.in Makefile $(BUILD)/pc-dirs $(TLS_STAMP)
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    $(if $(PC_REQUIRES),-e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES)|',-e '/@REQUIRES_PRIVATE@/d') \
	    $< > $@

# ------------------------------------------------------------------ tests
# Criterion comes from the distribution. When it is missing, install it as
# root on Debian/Ubuntu, or say exactly what to install.
criterion-check:
	@if ! printf '#include <criterion/criterion.h>\n' | $(CC) -E -x c - >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "make: installing libcriterion-dev (Criterion test framework)"; \
	        apt-get install -y libcriterion-dev >/dev/null 2>&1 || \
	        { apt-get update && apt-get install -y libcriterion-dev; } || exit 1; \
	    else \
	        echo "make test needs Criterion: run 'sudo apt-get install libcriterion-dev'" \
	             "(Debian/Ubuntu) or 'brew install criterion'" >&2; exit 1; \
	    fi; \
	fi

$(BUILD)/tests/%.o: tests/%.c $(TLS_STAMP) | criterion-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -Itests/support -Wno-missing-prototypes -c $< -o $@

$(TESTS): $(TEST_OBJS) $(STATIC) | $(CLI)
	$(CC) -o $@ $(TEST_OBJS) $(STATIC) $(ALL_LDFLAGS) -lcriterion $(LIBS)

# Tests find the CLI binary through APPSRV_BIN. Most of a run is waiting
# (timeouts, drains, peers starting), so 4 jobs on 2 cores take half the
# time of 2 (69 s -> 37 s for the plain run, 87 s -> 52 s under ASan);
# every test has its own timeout and tolerates a loaded machine. Under
# valgrind the tests are CPU-bound: VALGRIND_JOBS (3) is lower.
TEST_JOBS ?= 4
VALGRIND_JOBS ?= 3
test: all $(TESTS)
	APPSRV_BIN=$(abspath $(CLI)) $(TESTS) --jobs $(TEST_JOBS) $(TEST_ARGS)

asan:
	LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
	    $(MAKE) test BUILD=build/asan SANITIZE=1

# Criterion runs each test in a child process: valgrind follows them, and
# the appsrv CLI the end-to-end tests spawn (not curl, python3, node or
# chromium). APPSRV_VALGRIND=1 tells the tests to scale sizes down and
# stretch deadlines.
valgrind: all $(TESTS)
	APPSRV_BIN=$(abspath $(CLI)) APPSRV_VALGRIND=1 valgrind --quiet --trace-children=yes \
	    --trace-children-skip='*/curl,*/python3*,*/nc,*/sh,*/bash,*/openssl,*/node,*/gnutls-cli,*/promtool,*/grep,*/chromium,*/chrome*' \
	    --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --suppressions=$(abspath tests/valgrind.supp) \
	    --child-silent-after-fork=yes $(TESTS) --jobs $(VALGRIND_JOBS) $(TEST_ARGS)

# Real WebSocket clients for tests/test_ws_cli.c (and the Node peer of the
# benchmark): the npm ws package, pinned by tests/interop/package-lock.json.
# Without it those tests skip and say so.
.PHONY: interop-deps
interop-deps:
	cd tests/interop && npm ci --no-audit --no-fund --ignore-scripts

# Benchmarks against peers (bench/README.md); bounded in time, loopback only.
bench: all
	bench/run.sh

# ------------------------------------------------------ adversarial, soak
# tests/adversarial/: a plain program in its own process (not Criterion,
# not picked up by the tests/*.c wildcard), so thousands of client sockets
# never share the server's open-file limit. CI-sized counts by default.
ADV_BIN        := $(BUILD)/tests/adversarial
ADV_SLOWLORIS  ?= 300
ADV_CONCURRENT ?= 1000
ADV_IDLE_CAP   ?= 2000
SOAK_SECONDS   ?= 600
.PHONY: adversarial soak

# With the toolkit's plain (non-Criterion) files; libappsrv.a only serves
# the ones that run an in-process server, which the program never calls.
$(ADV_BIN): tests/adversarial/adversarial.c $(SUPPORT_PLAIN) $(wildcard tests/support/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -Itests/support -o $@ $< $(SUPPORT_PLAIN) $(STATIC) $(ALL_LDFLAGS) $(LIBS)

adversarial: $(CLI) $(ADV_BIN)
	APPSRV_BIN=$(abspath $(CLI)) ADV_SLOWLORIS=$(ADV_SLOWLORIS) \
	    ADV_CONCURRENT=$(ADV_CONCURRENT) ADV_IDLE_CAP=$(ADV_IDLE_CAP) $(ADV_BIN)

# WS_CLIENTS WebSocket clients echo against the CLI for WS_SECONDS while
# GET /plaintext is timed (tests/adversarial/ws_concurrent.c, its own
# process: the open-file limit is per process).
WS_CLIENTS ?= 5000
WS_SECONDS ?= 10
WSC_BIN    := $(BUILD)/tests/ws_concurrent
.PHONY: ws-concurrent

$(WSC_BIN): tests/adversarial/ws_concurrent.c lib/ws_handshake.c lib/ws_handshake.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ilib -o $@ tests/adversarial/ws_concurrent.c lib/ws_handshake.c \
	    $(ALL_LDFLAGS) $(LIBS)

ws-concurrent: $(CLI) $(WSC_BIN)
	APPSRV_BIN=$(abspath $(CLI)) WS_CLIENTS=$(WS_CLIENTS) WS_SECONDS=$(WS_SECONDS) $(WSC_BIN)

# '+': the scripts run make themselves and share this make's job slots.
soak:
	+SOAK_SECONDS=$(SOAK_SECONDS) sh tests/adversarial/soak.sh

# Deployment end to end (tests/deploy/): systemd socket activation and
# readiness, the drain as load balancers see it, zero-downtime restarts
# under start_server with h2load and ab running. Each script prints its
# counts; about a minute.
.PHONY: deploy-test
deploy-test: $(CLI)
	APPSRV_BIN=$(abspath $(CLI)) sh tests/deploy/run.sh

# The parser against Node's llhttp on the same corpus (tests/differential/).
.PHONY: differential
differential:
	sh tests/differential/run.sh

run: $(CLI)
	$(CLI) --host 127.0.0.1 --port 8080 --line-port 9090

# ----------------------------------------------------------------- fuzzing
-include fuzz/fuzz.mk

# ----------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGDIR) \
	    $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/appsrv.h $(DESTDIR)$(INCLUDEDIR)/appsrv.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libappsrv.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libappsrv.so.$(VERSION)
	ln -sf libappsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libappsrv.so
	install -m 644 $(PC) $(DESTDIR)$(PKGDIR)/appsrv.pc
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/appsrv
	if [ -f cli/appsrv.1 ]; then install -m 644 cli/appsrv.1 $(DESTDIR)$(MANDIR)/man1/appsrv.1; fi
	if [ -f lib/libappsrv.3 ]; then install -m 644 lib/libappsrv.3 $(DESTDIR)$(MANDIR)/man3/libappsrv.3; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/appsrv.h $(DESTDIR)$(LIBDIR)/libappsrv.a \
	    $(DESTDIR)$(LIBDIR)/libappsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libappsrv.so $(DESTDIR)$(PKGDIR)/appsrv.pc \
	    $(DESTDIR)$(BINDIR)/appsrv $(DESTDIR)$(MANDIR)/man1/appsrv.1 \
	    $(DESTDIR)$(MANDIR)/man3/libappsrv.3

# Builds examples/blocking_echo.c against a DESTDIR install with nothing but
# pkg-config, shared and static, and checks the exported symbols.
pkgcheck:
	+sh .ci/pkgcheck.sh

# ------------------------------------------------------------ source checks
# Run by `make test`; read sources only, well under a second.
# check-man: libappsrv.3 covers every APPSRV_API function, appsrv.1 every
# long option of the CLI.
.PHONY: check-man
test: check-man
check-man:
	python3 tests/scripts/check_man.py

# check-deps: lib/'s includes follow the module graph in lib/DEPS, without
# cycles; then the checker's self-test (it must fail on a back-edge).
.PHONY: check-deps
test: check-deps
check-deps:
	python3 tests/scripts/check_deps.py lib
	sh tests/scripts/check_deps_selftest.sh

examples:
	$(MAKE) -C examples

# ------------------------------------------------- behind a load balancer
# tests/deploy/proxy_*.sh: appsrv behind HAProxy (PROXY protocol v2) and
# nginx (X-Forwarded-For), the PROXY header before TLS; each script
# generates its proxy's configuration in a temp dir and bounds its waits
# (about 10 s in all).
.PHONY: proxy-test
proxy-test: $(CLI)
	@set -e; for t in $(filter-out %_lib.sh,$(sort $(wildcard tests/deploy/proxy_*.sh))); do \
	    echo "== $$t"; APPSRV=$(CLI) bash $$t; \
	done

clean:
	rm -rf build

-include $(DEPS)

# ------------------------------------------------------- compile-only check
# Everything `make test` and the CI programs compile, run nothing: .ci/run
# builds it with clang and -Werror (make CC=clang BUILD=build/clang
# test-build) so a clang-only warning in tests/ or fuzz/ fails CI.
.PHONY: test-build
test-build: all $(TESTS) $(ADV_BIN) $(WSC_BIN) $(REPLAY_BINS)
