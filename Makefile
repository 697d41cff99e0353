# nepenthe: `make` builds build/libnepenthe.a and build/nepenthe; `make test` runs the
# tests (plain, AddressSanitizer+UBSan, and float64 gradient checks); `make bench`
# benchmarks against PyTorch; `make demo` runs the main job on Fashion-MNIST.
# Every source file under src/ is part of the library; every tests/test_*.c is a test.

CC      ?= cc
BLASDIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CPPFLAGS := -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp -D_GNU_SOURCE
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers -Werror
OPT     ?= -O3 -march=native
CFLAGS  := $(WARN) $(OPT) -fopenmp -g
LDLIBS  := -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas -ldnnl -lcjson -lz -lm -fopenmp
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

SRCS    := $(shell find src -name '*.c' | sort)
TESTS   := $(sort $(wildcard tests/test_*.c))
F64_TESTS := $(sort $(wildcard tests/f64_*.c))
HDRS    := $(shell find include src tools -name '*.h')
TOOL_SRCS := $(sort $(wildcard tools/*.c))

.PHONY: all test bench demo deps clean golden
# Keep object files of test binaries (otherwise make deletes them as intermediates).
.SECONDARY:
all: build/libnepenthe.a build/nepenthe

deps:
	@scripts/install-deps.sh

# --- release library and CLI ---------------------------------------------------
build/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
build/libnepenthe.a: $(SRCS:%.c=build/obj/%.o)
	@rm -f $@
	@ar rcs $@ $^
build/nepenthe: $(TOOL_SRCS:%.c=build/obj/%.o) build/libnepenthe.a
	@echo "LD $@"; $(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# --- sanitized library and tests -------------------------------------------------
build/asan/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CPPFLAGS) $(WARN) -O1 -g -fopenmp $(SANITIZE) -c $< -o $@
build/asan/libnepenthe.a: $(SRCS:%.c=build/asan/obj/%.o)
	@rm -f $@
	@ar rcs $@ $^
build/asan/nepenthe: $(TOOL_SRCS:%.c=build/asan/obj/%.o) build/asan/libnepenthe.a
	@echo "LD $@"; $(CC) $(SANITIZE) $^ -o $@ $(LDLIBS)
build/asan/tests/%: build/asan/obj/tests/%.o build/asan/obj/tests/testutil.o build/asan/libnepenthe.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(SANITIZE) $^ -o $@ $(LDLIBS) -lcmocka

build/tests/%: build/obj/tests/%.o build/obj/tests/testutil.o build/libnepenthe.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) -lcmocka

# --- float64 library for finite-difference gradient checks ----------------------
build/f64/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CPPFLAGS) -DNEP_DOUBLE $(WARN) -O2 -g -fopenmp $(SANITIZE) -c $< -o $@
build/f64/libnepenthe.a: $(SRCS:%.c=build/f64/obj/%.o)
	@rm -f $@
	@ar rcs $@ $^
build/f64/tests/%: build/f64/obj/tests/%.o build/f64/obj/tests/testutil.o build/f64/libnepenthe.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(SANITIZE) $^ -o $@ $(LDLIBS) -lcmocka

# --- golden data from PyTorch (written by the tests' own generators) -------------
GOLDEN_PY := $(sort $(wildcard tests/golden/gen_*.py))
golden: build/golden/.stamp
build/golden/.stamp: $(GOLDEN_PY) tests/tools/safetensors_np.py
	@mkdir -p build/golden
	@for g in $(GOLDEN_PY); do echo "golden: $$g"; /usr/bin/python3 $$g build/golden || exit 1; done
	@touch $@

TEST_BINS := $(TESTS:tests/%.c=build/asan/tests/%) $(F64_TESTS:tests/%.c=build/f64/tests/%)

test: deps all build/asan/nepenthe golden $(TEST_BINS)
	@tests/run.sh $(TEST_BINS) tests/cli_test.sh tests/entropy_prune_test.sh

bench: deps all
	@bench/run.sh

demo: deps all
	@scripts/demo.sh

clean:
	rm -rf build
