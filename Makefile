# ngx_nixcache: the nginx module, the nixcache CLI, and their tests.
#
#   make          build the module (build/ngx_http_nixcache_module.so) and
#                 the CLI (build/nixcache)
#   make deps     install every Debian package needed (idempotent)
#   make test     deps + build + every suite (unit, t/*.t)
#   make run      deps + build + a cache on 127.0.0.1:$(PORT)
#   make test-long  the module suites again under valgrind (CI runs it too)
#   make test-hup, make test-valgrind, make test-sendfile-off
#                 the module suites with nginx reloaded by HUP between
#                 blocks, under valgrind, or with sendfile off

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
BUILD       ?= build
PORT        ?= 8080
REDIS_PORT  ?= 6380
DATA        ?= $(CURDIR)/run

CC          ?= cc
CFLAGS      ?= -O2 -g
WARN        := -Wall -Wextra -Wpointer-arith -Wno-unused-parameter -Werror
CORE_CFLAGS := $(CFLAGS) $(WARN) -Isrc -D_GNU_SOURCE
CLI_LIBS    := -lhiredis -lzstd -llzma -lbz2 -lsodium -lcrypto -lcurl -ljson-c

CORE_SRCS   := $(wildcard src/nixcache_*.c)
CORE_HDRS   := $(wildcard src/*.h)
CORE_OBJS   := $(CORE_SRCS:src/%.c=$(BUILD)/core/%.o)
MOD_SRCS    := $(wildcard src/ngx_http_nixcache*.c) $(CORE_SRCS)
CLI_SRCS    := $(wildcard tools/*.c)
CLI_HDRS    := $(wildcard tools/*.h)
UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:t/unit/%.c=$(BUILD)/unit/%)

MODULE      := $(BUILD)/ngx_http_nixcache_module.so
CLI         := $(BUILD)/nixcache

.PHONY: all module cli deps unit test test-hup test-valgrind test-sendfile-off \
        readme run clean bench-tools FORCE
.PHONY: fuzz fuzz-build fuzz-smoke bench-deps test-long

all: module cli

deps:
	@tools/deps.sh

bench-deps:
	@tools/deps.sh --bench

module: $(MODULE)

cli: $(CLI)

# config names every src/ file (nginx is configured again when it
# changes); a file it leaves out stops the build here
$(BUILD)/nginx-srcs: FORCE
	@mkdir -p $(dir $@)
	@for f in src/*.c src/*.h; do \
	    grep -qF "/$$f" config \
	        || { echo "config does not list $$f" >&2; exit 1; }; \
	done
	@ls src/*.c src/*.h > $@.new
	@cmp -s $@.new $@ && rm -f $@.new || mv $@.new $@

$(BUILD)/nginx/Makefile: config $(BUILD)/nginx-srcs
	@mkdir -p $(BUILD)/nginx
	cd $(NGINX_SRC) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --builddir=$(abspath $(BUILD)/nginx) \
	    --add-dynamic-module=$(CURDIR) > $(abspath $(BUILD)/nginx/configure.log) 2>&1 \
	    || { tail -20 $(abspath $(BUILD)/nginx/configure.log); exit 1; }

$(MODULE): $(BUILD)/nginx/Makefile $(MOD_SRCS) $(CORE_HDRS)
	$(MAKE) -s -C $(NGINX_SRC) -f $(abspath $(BUILD)/nginx/Makefile) modules
	@# a rename, not an overwrite: running nginx processes map the old file
	cp $(BUILD)/nginx/ngx_http_nixcache_module.so $@.tmp && mv -f $@.tmp $@

$(BUILD)/core/%.o: src/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<

$(BUILD)/libnixcache.a: $(CORE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(CLI): $(CLI_SRCS) $(CLI_HDRS) $(BUILD)/libnixcache.a
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -Itools -o $@ $(CLI_SRCS) $(BUILD)/libnixcache.a $(CLI_LIBS)

$(BUILD)/unit/%: t/unit/%.c t/unit/unit.h t/unit/mem_sink.h $(BUILD)/libnixcache.a
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -It/unit -o $@ $< $(BUILD)/libnixcache.a $(CLI_LIBS)

unit: $(UNIT_BINS)
	@if [ -x t/run-unit ]; then t/run-unit $(UNIT_BINS); \
	 else prove -e '' $(UNIT_BINS); fi

# measurement tools, not part of all (bench/README.md)
BENCH_SRCS  := $(wildcard bench/*.c)
BENCH_BINS  := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

bench-tools: $(BENCH_BINS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libnixcache.a
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -o $@ $< $(BUILD)/libnixcache.a -lzstd -lcrypto

# libFuzzer targets (fuzz/README.md): the core compiled again by clang
# with ASan+UBSan, one binary per parser fed from outside.
#   make fuzz-build                    build them
#   make fuzz FUZZ_SECONDS=3600        build, run each for that long
#   make fuzz-smoke                    build, run each for 10 s (make test)
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) $(WARN) \
                -Isrc -D_GNU_SOURCE
FUZZ_LIBS    := -lzstd -llzma -lbz2 -lsodium -lcrypto -lcurl
FUZZ_SECONDS ?= 60
FUZZ_SRCS    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_OBJS    := $(CORE_SRCS:src/%.c=$(BUILD)/fuzz/core/%.o)

$(BUILD)/fuzz/core/%.o: src/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/%: fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) \
	    $(FUZZ_LIBS)

.SECONDARY: $(FUZZ_OBJS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) fuzz/run $(FUZZ_BINS)

fuzz-smoke: fuzz-build
	@FUZZ_SECONDS=$${FUZZ_SMOKE_SECONDS:-10} BUILD=$(BUILD) fuzz/run $(FUZZ_BINS)

test: deps
	@$(MAKE) --no-print-directory all
	@t/run-all

# The module suites (Test::Nginx format) in the harness's other modes:
# one nginx reloaded by HUP between blocks, or nginx under valgrind.
MODULE_TESTS = $(filter-out t/00%,$(shell grep -l '^use Nixcache::Test' t/*.t))

test-hup: deps
	@$(MAKE) --no-print-directory all
	@TEST_NIXCACHE_HUP=1 t/run-all $(MODULE_TESTS)

test-valgrind: deps
	@$(MAKE) --no-print-directory all
	@TEST_NIXCACHE_VALGRIND=1 t/run-all $(MODULE_TESTS)

# What .ci/run adds to make test: the suites that take minutes.
test-long: test-valgrind

test-sendfile-off: deps
	@$(MAKE) --no-print-directory all
	@TEST_NIXCACHE_SENDFILE=off t/run-all $(MODULE_TESTS)

# README's directive table is a copy of docs/DESIGN.md's (t/002 checks)
readme:
	@tools/readme-sync.pl

run: deps
	@$(MAKE) --no-print-directory all
	@PORT=$(PORT) REDIS_PORT=$(REDIS_PORT) DATA=$(DATA) tools/run.sh

clean:
	rm -rf $(BUILD)
