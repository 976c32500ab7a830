# switchboard: plain GNU make, pkg-config for libraries.
#   make deps    install what is missing (apt-get as root; else print the line)
#                for everything; run, test and bench install what they need
#   make all     release build into build/rel
#   make run     the whole system on http://$HOST:$PORT until Ctrl-C
#   make test    sanitized build into build/san, unit and end-to-end tests
#   make bench   throughput and latency figures (not a test)
#   make fuzz    libFuzzer on the AMI parser for FUZZ_SECONDS (not a test;
#                installs clang)
#   make fresh-check  `make run` and `make test` in a fresh Debian 12 root
# run, test and bench install the packages first, then build in a second
# make: pkg-config is asked when a Makefile is read, so the make that
# installs the -dev packages cannot be the one that links against them.
# The project's flags live in SB_*; CFLAGS, CPPFLAGS, LDFLAGS and LDLIBS are
# the user's and are added after them (make CFLAGS=-O0 keeps -Werror).

PREFIX  ?= /usr/local
DESTDIR ?=
B       ?= build/rel
MODE    ?= rel

PKGS     = sqlite3 libpq json-c libjwt libwebsockets libcrypt
DEPS_I  != pkg-config --cflags-only-I $(PKGS) 2>/dev/null | sed 's/-I/-isystem /g'
DEPS_L  != pkg-config --libs $(PKGS) 2>/dev/null

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wpointer-arith -Wcast-qual
SAN      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=all
REL      = -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
MODEFLAGS = $(if $(filter san,$(MODE)),$(SAN),$(REL))

SB_CFLAGS   = -std=c11 $(WARN) $(MODEFLAGS) -MMD -MP $(CFLAGS)
SB_CPPFLAGS = -D_DEFAULT_SOURCE -D_GNU_SOURCE -I. -I$(B)/gen $(DEPS_I) \
              $(CPPFLAGS)
SANLD       = -fsanitize=address,undefined
SB_LDFLAGS  = $(if $(filter san,$(MODE)),$(SANLD)) $(LDFLAGS)
SB_LDLIBS   = $(DEPS_L) -lfcgi -lm $(LDLIBS)

# Debian packages: building, running, testing and benchmarking.
APT_BUILD = build-essential pkg-config libfcgi-dev libsqlite3-dev \
            libjson-c-dev libjwt-dev libwebsockets-dev libcrypt-dev libpq-dev
APT_RUN   = nginx-light spawn-fcgi sqlite3
APT_TEST  = python3 python3-pytest python3-requests python3-websocket \
            valgrind curl chromium apache2 postgresql python3-psycopg2
# Debian's node only when there is none: NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package.
APT_NODE != command -v npm >/dev/null 2>&1 || echo nodejs npm
APT_BENCH = wrk
APT_ALL   = $(APT_BUILD) $(APT_RUN) $(APT_TEST) $(APT_NODE) $(APT_BENCH)
# Only for make fuzz: clang and its libFuzzer runtime.
APT_FUZZ  = clang libclang-rt-14-dev
# Only for make fresh-check, on the machine that runs it.
APT_FRESH = debootstrap curl python3

LIB_SRC   = $(filter-out %_test.c,$(wildcard lib/*.c))
LIB_OBJ   = $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/migrations.o
LIB_TESTS = $(patsubst lib/%_test.c,$(B)/test/%_test,$(wildcard lib/*_test.c))
CGI_COMMON = $(filter cgi-bin/common%.c,$(wildcard cgi-bin/*.c))
# cgi-bin/PROG_part.c is a part of program PROG, linked into it alone.
CGI_PARTS = $(filter-out $(CGI_COMMON),$(wildcard cgi-bin/*_*.c))
CGI_PROGS = $(patsubst cgi-bin/%.c,$(B)/cgi-bin/%,\
            $(filter-out $(CGI_COMMON) $(CGI_PARTS),$(wildcard cgi-bin/*.c)))
RELAY_SRC = $(wildcard relay/*.c)
CLI_SRC   = $(wildcard cli/*.c)
BENCH_PROGS = $(patsubst tests/bench/%.c,$(B)/tests/bench/%,$(wildcard tests/bench/*.c))
# Test drivers of relay modules (tests/tools/NAME.c drives relay/NAME's
# counterpart; amidrive: relay/amilink.c).
TOOL_PROGS = $(B)/tests/tools/amidrive
PROGS     = $(CGI_PROGS) $(B)/bin/switchboard-relay $(B)/bin/switchboard

.PHONY: all deps run test check bench fuzz install clean headers \
        fresh-check deps-run deps-test deps-bench deps-fuzz
.SECONDARY:
all: $(PROGS)

deps:
	@cli/deps.sh $(APT_ALL)
# make run needs no browser, valgrind or wrk.
deps-run:
	@cli/deps.sh $(APT_BUILD) $(APT_RUN)
deps-test:
	@cli/deps.sh $(APT_BUILD) $(APT_RUN) $(APT_TEST) $(APT_NODE)
deps-bench:
	@cli/deps.sh $(APT_BUILD) $(APT_RUN) $(APT_TEST) $(APT_BENCH)
deps-fuzz:
	@cli/deps.sh $(APT_FUZZ) python3

$(B)/gen/migrations.c: $(sort $(wildcard sql/*.sql)) $(wildcard sql/pg/*.sql) \
    sql/embed.sh
	@mkdir -p $(dir $@)
	sql/embed.sh $(sort $(wildcard sql/*.sql)) > $@.tmp && mv $@.tmp $@

$(B)/gen/migrations.o: $(B)/gen/migrations.c
	$(CC) $(SB_CFLAGS) -Wno-missing-prototypes $(SB_CPPFLAGS) -c $< -o $@

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SB_CFLAGS) $(SB_CPPFLAGS) -c $< -o $@

$(B)/lib/libswitchboard.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# A program's parts come in by secondary expansion, once $* is known (no
# % in them: a pattern rule's prerequisites have % replaced by the stem).
.SECONDEXPANSION:
$(B)/cgi-bin/%: $(B)/cgi-bin/%.o \
    $$(addprefix $(B)/,$$(addsuffix .o,$$(basename $$(wildcard cgi-bin/$$*_*.c)))) \
    $(CGI_COMMON:%.c=$(B)/%.o) $(B)/lib/libswitchboard.a
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

$(B)/bin/switchboard-relay: $(RELAY_SRC:%.c=$(B)/%.o) $(B)/lib/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

$(B)/bin/switchboard: $(CLI_SRC:%.c=$(B)/%.o) $(B)/lib/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

$(B)/test/%_test: $(B)/lib/%_test.o $(B)/lib/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

$(B)/tests/bench/%: $(B)/tests/bench/%.o $(B)/lib/libswitchboard.a
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

$(B)/tests/tools/amidrive: $(B)/tests/tools/amidrive.o $(B)/relay/amilink.o \
    $(B)/lib/libswitchboard.a
	$(CC) $(SB_LDFLAGS) $^ $(SB_LDLIBS) -o $@

# Each header compiles alone.
headers:
	@mkdir -p $(B)/hdr
	@for h in lib/*.h; do \
	    echo "#include \"$$h\"" | $(CC) $(SB_CFLAGS) $(SB_CPPFLAGS) -x c -c - \
	        -o $(B)/hdr/$$(basename $$h .h).o || exit 1; done

run:
	@$(MAKE) --no-print-directory deps-run
	@$(MAKE) --no-print-directory all
	@cli/run.sh $(B)

# The browser test's driver (playwright-core; the browser is Debian's).
tests/browser/node_modules/.package-lock.json: tests/browser/package.json \
    tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund

# The test build: sanitizers on, its own build directory. npm ci only once
# deps has installed npm, even under make -j.
test:
	@$(MAKE) --no-print-directory deps-test
	@$(MAKE) --no-print-directory B=build/san MODE=san headers all \
	    $(patsubst $(B)/%,build/san/%,$(LIB_TESTS) $(TOOL_PROGS)) \
	    tests/browser/node_modules/.package-lock.json
	@tests/run.sh build/san

check: test

bench:
	@$(MAKE) --no-print-directory deps-bench
	@$(MAKE) --no-print-directory all $(BENCH_PROGS)
	@tests/bench/run.sh $(B)

# The AMI parser under libFuzzer with ASan and UBSan, seeded from the
# captured transcript, for a bounded time. Its own build directory: the
# fuzzer's instrumentation is clang's and not the project's flags
# (clang also flags err.c's va_list format, which gcc accepts).
FUZZ_SECONDS ?= 60
FUZZ_SRC = tests/fuzz/ami_fuzz.c lib/ami.c lib/err.c
fuzz:
	@$(MAKE) --no-print-directory deps-fuzz
	@$(MAKE) --no-print-directory build/fuzz/ami_fuzz
	@tests/fuzz/run.sh build/fuzz/ami_fuzz $(FUZZ_SECONDS)

build/fuzz/ami_fuzz: $(FUZZ_SRC) lib/ami.h lib/err.h
	@mkdir -p $(dir $@)
	clang -std=c11 $(WARN) -Wno-format-nonliteral -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -D_DEFAULT_SOURCE -D_GNU_SOURCE -I. \
	    $(FUZZ_SRC) -o $@

# A fresh Debian 12 root (debootstrap, cached outside the clone), a clean
# clone of HEAD in it, the README's make run until /health answers, then
# make test. As root.
fresh-check:
	@cli/deps.sh $(APT_FRESH)
	@cli/fresh-check.sh

install: all
	cli/install.sh "$(DESTDIR)" "$(PREFIX)" $(B)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
