# libFuzzer harnesses for every reader of bytes from outside (included by the Makefile).
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=2]  fuzz each harness for FUZZ_SECONDS
#   make fuzz-replay                          run fuzz/corpus and fuzz/crashes through
#                                             each harness once (part of make test)
#
# Harnesses (fuzz/<name>.c, one per reader family; input formats in each file's header):
#   safetensors  nep_st_read: header length, header JSON, dtypes, shapes, offsets
#   checkpoint   nep_checkpoint_load / _load_optim and train's resume() on whole files
#   ckpt_meta    the metadata JSON alone: arch, normalize, graph (collapsed model), rng
#   idx          nep_idx_load, gzipped and plain
#   cifar        nep_cifar10_load, test and training splits
#   runfiles     log.jsonl, iterations.jsonl and progress.json as --resume reads them
#   glue         nep_glue_load on GLUE TSV files (sst2, qnli, rte, fortunes + task.json),
#                nep_fortunes_task_build on fortune category files
#   tokenizer    nep_tokenizer_open on vocab.txt, vocab.json + merges.txt, tokenizer.json,
#                then nep_tokenizer_encode of text (single, pair, truncation, padding)
#   hf           config.json (parse, read, write back), model.safetensors (nep_st_map
#                against nep_st_read), model.safetensors.index.json with its shards
#   image        nep_image_read: JPEG and PNG through libjpeg-turbo and libpng, resize, crop
#
# They are built with clang (libFuzzer, AddressSanitizer, UBSan, any UB fatal) over a
# clang build of the whole library at -O1 in build/fuzz/. `make fuzz` fuzzes into a
# copy of the corpus under build/fuzz/work/<name> (the seeds in fuzz/corpus/<name> and
# past crashes in fuzz/crashes/<name> are read, never written); new crashes go to
# build/fuzz/artifacts/<name>/, and one that is fixed belongs in fuzz/crashes/<name>/.
# To fold the new inputs into the seeds (keeping the corpus small):
#   build/fuzz/NAME -merge=1 build/fuzz/min fuzz/corpus/NAME build/fuzz/work/NAME
#
# The seed corpus is real files: checkpoints, logs and progress files written by
# `build/nepenthe train/prune/collapse` on tests/tools/make_idx.py data (--size 6, an
# 8,8 MLP), IDX files from make_idx.py, CIFAR-10 batches in the official layout, and
# hand-made variants of each (other dtypes, truncations, edge cases). The text and
# model-folder harnesses' seeds: GLUE-layout TSVs and fortune files, vocab/merges/
# tokenizer.json files trained with `tokenizers` 0.23 on a few sentences or cut from
# all-MiniLM-L6-v2's tokenizer.json, and config.json files of BERT, RoBERTa and Llama
# shape with small safetensors shards (fuzz/make_seeds.py writes them all). The image
# seeds are small JPEG and PNG files PIL wrote in every mode the reader handles.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_NAMES   := safetensors checkpoint ckpt_meta idx cifar runfiles glue tokenizer hf image
FUZZ_BINS    := $(FUZZ_NAMES:%=build/fuzz/%)
# -Wno-pass-failed: at -O1 clang cannot honour some `omp simd` loops and says so; that is
# about optimization, not the code.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(WARN) -Wno-pass-failed -O1 -g -fopenmp $(FUZZ_SAN)
# Inputs longer than this are not tried; each fits its format's real small files.
FUZZ_MAXLEN_safetensors := 65536
FUZZ_MAXLEN_checkpoint  := 65536
FUZZ_MAXLEN_ckpt_meta   := 32768
FUZZ_MAXLEN_idx         := 16384
FUZZ_MAXLEN_cifar       := 32768
FUZZ_MAXLEN_runfiles    := 16384
FUZZ_MAXLEN_glue        := 16384
FUZZ_MAXLEN_tokenizer   := 65536
FUZZ_MAXLEN_hf          := 65536
FUZZ_MAXLEN_image       := 16384
# What each harness links besides the library: the tools code it includes or calls.
FUZZ_TOOLS_checkpoint := build/fuzz/obj/tools/cli.o build/fuzz/obj/tools/cli_data.o
FUZZ_TOOLS_ckpt_meta  := build/fuzz/obj/tools/cli.o build/fuzz/obj/tools/cli_data.o
FUZZ_TOOLS_runfiles   := build/fuzz/obj/tools/cli.o build/fuzz/obj/tools/cli_data.o build/fuzz/obj/tools/cli_text.o build/fuzz/obj/tools/cmd_entropy.o
$(FUZZ_NAMES:%=build/fuzz/obj/fuzz/%.o): fuzz/fuzz_common.h
# Harnesses that #include a tool's source (for its static functions).
build/fuzz/obj/fuzz/checkpoint.o build/fuzz/obj/fuzz/ckpt_meta.o: tools/cmd_train.c
build/fuzz/obj/fuzz/runfiles.o: tools/cmd_prune.c

# Replay (and make test) only needs the binaries; make test depends on this.
FUZZ_REPLAY_DEPS := fuzz-replay

.PHONY: fuzz fuzz-replay fuzz-build
fuzz-build: $(FUZZ_BINS)

# Library and harness objects: instrumented for coverage (fuzzer-no-link), no main.
build/fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CLANG $<"; $(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build/fuzz/libnepenthe.a: $(SRCS:%.c=build/fuzz/obj/%.o)
	@rm -f $@
	@ar rcs $@ $^
$(FUZZ_BINS): build/fuzz/%: build/fuzz/obj/fuzz/%.o build/fuzz/libnepenthe.a
	@echo "LD $@"; $(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $< $(FUZZ_TOOLS_$*) \
	    build/fuzz/libnepenthe.a -o $@ $(LDLIBS)
$(foreach h,$(FUZZ_NAMES),$(eval build/fuzz/$(h): $(FUZZ_TOOLS_$(h))))

# Every run: leaks are errors. An allocation above 1 GiB fails (returns NULL) as it would
# on a small machine: a reader must then fail cleanly with NEP_ERR_NOMEM, and libFuzzer
# (-rss_limit_mb) only sees what a bad input really makes us hold.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:max_allocation_size_mb=1024 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=1

# FUZZ_JOBS harnesses at a time (xargs -P); each one's log in build/fuzz/<name>.log. A
# harness stops at its first crash (the input is in build/fuzz/artifacts/<name>/; run
# `build/fuzz/<name> FILE` to see the report); the target then fails.
fuzz: $(FUZZ_BINS)
	@mkdir -p build/fuzz/work build/fuzz/artifacts
	@printf '%s\n' $(FUZZ_NAMES) | xargs -P $(FUZZ_JOBS) -I{} sh -c '\
	    n={}; mkdir -p build/fuzz/work/$$n build/fuzz/artifacts/$$n fuzz/corpus/$$n; \
	    case $$n in $(foreach h,$(FUZZ_NAMES),$(h)$(rparen) m=$(FUZZ_MAXLEN_$(h));;) esac; \
	    echo "fuzzing $$n for $(FUZZ_SECONDS) s (log: build/fuzz/$$n.log)"; \
	    $(FUZZ_ENV) build/fuzz/$$n build/fuzz/work/$$n fuzz/corpus/$$n \
	        $$( [ -d fuzz/crashes/$$n ] && echo fuzz/crashes/$$n ) \
	        -max_total_time=$(FUZZ_SECONDS) -max_len=$$m -timeout=10 -rss_limit_mb=2048 \
	        -close_fd_mask=3 -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/artifacts/$$n/ >build/fuzz/$$n.log 2>&1; \
	    rc=$$?; \
	    echo "$$n: $$(grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" \
	        build/fuzz/$$n.log | tr -s " " | tr "\n" " ")exit $$rc"; \
	    [ $$rc -eq 0 ] || { tail -n 40 build/fuzz/$$n.log; exit 1; }'

# Each file of fuzz/corpus/<name> and fuzz/crashes/<name> runs once (libFuzzer's mode
# for files given on its command line): any crash, leak, UBSan report or timeout fails.
fuzz-replay: $(FUZZ_BINS)
	@fail=0; for n in $(FUZZ_NAMES); do \
	    files=$$(find fuzz/corpus/$$n fuzz/crashes/$$n -type f 2>/dev/null | sort); \
	    count=$$(printf '%s\n' "$$files" | grep -c .); \
	    if [ "$$count" -eq 0 ]; then echo "not ok - fuzz replay $$n (no inputs)"; fail=1; continue; fi; \
	    if printf '%s\n' "$$files" | $(FUZZ_ENV) xargs build/fuzz/$$n -timeout=10 \
	        -rss_limit_mb=2048 >build/fuzz/replay-$$n.log 2>&1; then \
	        echo "ok - fuzz replay $$n ($$count inputs)"; \
	    else \
	        echo "not ok - fuzz replay $$n ($$count inputs): see build/fuzz/replay-$$n.log"; \
	        grep -a "^Running: " build/fuzz/replay-$$n.log | tail -n 1; \
	        grep -a -E -A10 "ERROR: |runtime error|keeps a bad|round trip failed" \
	            build/fuzz/replay-$$n.log | head -n 24; \
	        fail=1; \
	    fi; \
	done; exit $$fail

rparen := )
