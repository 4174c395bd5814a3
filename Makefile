# mbdata — one entry point for a fresh machine: `make demo`, `make test`.
SWIFT        ?= swift
SYSTEM_DEPS  := liblz4-dev libsqlite3-dev zlib1g-dev lz4 sqlite3 nginx gcc
OUT          ?= out
RELEASE_BIN  := .build/release/mbdata
VENV         := .venv
VENV_TORCH   := .venv-torch
PYTHON       ?= python3
CLIENT_FILES := clients/python/pyproject.toml clients/python/setup.py $(wildcard clients/python/mbdata_client/*.py clients/python/src/*.c)
PIP          := -m pip install --quiet --disable-pip-version-check

.PHONY: all deps venv torch-venv build release docs test test-swift test-interop test-serve test-serve-torch test-schemas demo demo-serve reproducibility bench-ingest bench-insert bench-shard bench-loader bench-serve bench-infer bench-cluster bench-packing fuzz fuzz-build fuzz-seeds clean

all: build

# Installs the system libraries and tools the build and the demo need, when missing.
deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@# PostgreSQL for the shared state store's tests, which start servers of their own (Tests/Support/PostgresServer.swift).
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing: postgresql"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Creates the virtualenv $(1) unless it exists, installing python3-venv with apt-get if needed.
make-venv = [ -x $(1)/bin/python ] || $(PYTHON) -m venv $(1) || { \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(1); }

# The interop and serve tests' Python packages (numpy, lz4, safetensors, xxhash, pytest) and the
# Python client (installed from ./clients/python, so that its packaging is tested) go into a
# local virtualenv.
venv: $(VENV)/.installed
# (after deps: gcc builds the client's native module)
$(VENV)/.installed: Tests/interop/requirements.txt Tests/serve/requirements.txt schemas/requirements.txt $(CLIENT_FILES) | deps
	@$(call make-venv,$(VENV))
	$(VENV)/bin/python $(PIP) -r Tests/interop/requirements.txt -r Tests/serve/requirements.txt -r schemas/requirements.txt
	$(VENV)/bin/python $(PIP) ./clients/python
	@touch $@

# The same plus PyTorch, for the client's torch tests and samples/train_digits.py.
torch-venv: $(VENV_TORCH)/.installed
$(VENV_TORCH)/.installed: Tests/serve/requirements.txt $(CLIENT_FILES) | deps
	@$(call make-venv,$(VENV_TORCH))
	$(VENV_TORCH)/bin/python $(PIP) torch -r Tests/serve/requirements.txt
	$(VENV_TORCH)/bin/python $(PIP) ./clients/python
	@touch $@

test: test-swift test-interop test-serve test-schemas

# The DocC documentation of MBDataTraining, MBData, MBDataClient, MBDataServer and MBDataOrigin (swift-docc-plugin)
# into $(OUT)/docs/; any warning — a broken symbol link above all — fails it. Not part of
# `make test`: the five targets take a few minutes together.
docs: deps
	@mkdir -p $(OUT)/docs
	$(SWIFT) package --allow-writing-to-directory $(OUT)/docs generate-documentation --target MBDataTraining --output-path $(OUT)/docs/MBDataTraining --warnings-as-errors
	$(SWIFT) package --allow-writing-to-directory $(OUT)/docs generate-documentation --target MBData --output-path $(OUT)/docs/MBData --warnings-as-errors
	$(SWIFT) package --allow-writing-to-directory $(OUT)/docs generate-documentation --target MBDataClient --output-path $(OUT)/docs/MBDataClient --warnings-as-errors
	$(SWIFT) package --allow-writing-to-directory $(OUT)/docs generate-documentation --target MBDataServer --output-path $(OUT)/docs/MBDataServer --warnings-as-errors
	$(SWIFT) package --allow-writing-to-directory $(OUT)/docs generate-documentation --target MBDataOrigin --output-path $(OUT)/docs/MBDataOrigin --warnings-as-errors

# The example sample schemas against the schema format, and the serve OpenAPI document
# (valid OpenAPI 3.1, examples valid, the same routes as schemas/serve-protocol.md).
test-schemas: venv
	$(VENV)/bin/python schemas/validate_schemas.py --self-test

test-swift: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Third-party readers (lz4 CLI, Python lz4.frame, safetensors.numpy) against what mbdata writes.
test-interop: deps venv
	$(SWIFT) build --product mbdata
	MBDATA_BINARY=.build/debug/mbdata $(VENV)/bin/python -m pytest Tests/interop -q

# `mbdata serve` against its wire protocol, through the Python client (clients/python): a
# daemon per fixture on a free port, SIGTERM at the end (exit 0 required).
test-serve: deps venv
	$(SWIFT) build --product mbdata
	MBDATA_BINARY=.build/debug/mbdata $(VENV)/bin/python -m pytest Tests/serve -q

# The same suite with PyTorch installed, so that the IterableDataset tests run too.
test-serve-torch: deps torch-venv
	$(SWIFT) build --product mbdata
	MBDATA_BINARY=.build/debug/mbdata $(VENV_TORCH)/bin/python -m pytest Tests/serve -q

# Ingests the bundled digits dataset (JSONL and NPY), inspects, verifies and queries it, then
# writes three shuffled epochs of batches for 4 ranks into shards and verifies them, and
# trains softmax regression in Swift through MultiBatchLoader (k = 4 synchronous consumers)
# and writes its val predictions into the output `preds` with InferenceJob (k = 4), checked
# with SQL; then the same through `mbdata serve`: the daemon feeds two trainer processes (ranks 0, 1);
# last, batch inference through the daemon (samples/infer_digits.py, in $(VENV)): outputs
# written back into the dataset, the accuracy by an SQL join, the outputs exported as NPY.
demo: release venv
	@rm -rf $(OUT)/demo && mkdir -p $(OUT)/demo
	$(RELEASE_BIN) ingest $(OUT)/demo/digits.mbdb --schema samples/digits/digits.schema.json --val-fraction 0.2 samples/digits/digits.jsonl
	$(RELEASE_BIN) ingest $(OUT)/demo/digits.mbdb --val-fraction 0.2 \
		id=samples/digits/ids.npy image=samples/digits/images.npy label=samples/digits/labels.npy
	$(RELEASE_BIN) inspect $(OUT)/demo/digits.mbdb
	$(RELEASE_BIN) verify $(OUT)/demo/digits.mbdb
	sqlite3 $(OUT)/demo/digits.mbdb 'select label, count(*) from samples group by 1'
	$(RELEASE_BIN) shard $(OUT)/demo/digits.mbdb --out $(OUT)/demo/shards --split train --batch-size 64 --world 4 --epochs 3 --seed 7
	$(RELEASE_BIN) inspect $(OUT)/demo/shards
	$(RELEASE_BIN) verify $(OUT)/demo/shards --dataset $(OUT)/demo/digits.mbdb
	$(SWIFT) build -c release --product digits-trainer
	.build/release/digits-trainer $(OUT)/demo/digits.mbdb --predict preds
	sqlite3 $(OUT)/demo/digits.mbdb "select 'in-process predictions: ' || count(*) || ' rows, accuracy ' || round(avg(s.label = o.pred), 4) from samples s join outputs_preds o using (_id)"
	MBDATA_BINARY=$(RELEASE_BIN) OUT=$(OUT) TRAINER=swift VENV=$(VENV) bash samples/serve_demo.sh

# Trains a PyTorch MLP on digits through `mbdata serve` with two torchrun ranks (DDP on CPU).
demo-serve: release torch-venv
	MBDATA_BINARY=$(RELEASE_BIN) OUT=$(OUT) bash samples/serve_demo.sh

# Does multi-batch synchronisation change what is learned? Trains the Swift digits sample under
# seeded random delays, SIGKILLs + resumes and asynchronous mode, and prints a table of max |Δw|
# and bitwise equality against an undisturbed run (a few minutes; the short version is in
# `make test`: Tests/mbdataTests/ReproducibilityTests.swift). Then the same for PyTorch through
# `mbdata serve` (samples/train_digits.py, 2 torchrun ranks, DDP on CPU): SIGKILLs + resume, and
# 1 rank against 2. README: "Reproducibility".
reproducibility: deps torch-venv
	$(SWIFT) build --product mbdata
	$(SWIFT) build --product digits-trainer
	BIN_DIR=.build/debug bash Benchmarks/reproducibility/run.sh $(OUT)/reproducibility
	MBDATA_BINARY=.build/debug/mbdata VENV_TORCH=$(VENV_TORCH) bash Benchmarks/reproducibility/torch.sh $(OUT)/reproducibility-torch

bench-ingest: release
	bash Benchmarks/ingest/run.sh

bench-shard: release
	bash Benchmarks/shard/run.sh

# mbdata serve + the Python client and its PyTorch adapter against PyTorch's DataLoader (numpy
# in memory, SQLite rows), then first batch and daemon memory at 50k/200k/1M samples; torch and
# the client come from the torch-venv target. N=200000 by default (50000..1000000).
bench-serve: release torch-venv
	VENV=$(abspath $(VENV_TORCH)) bash Benchmarks/serve/run.sh

# Inference write-back (N=200000): mbdata serve + the Python client and InferenceJob in process,
# against a Python SQLite peer and np.save; appends its summary to Benchmarks/README.md.
bench-infer: release
	bash Benchmarks/inference/run.sh

# Cluster (issue 13): PostgreSQL against SQLite state, four share consumers on one and two daemons, an nginx
# origin cold and warm; starts its own PostgreSQL and nginx; appends its summary to Benchmarks/README.md.
bench-cluster: release
	bash Benchmarks/cluster/run.sh

# Packing (issue 14 §6): `mbdata shard --pack` and the packing loader on 200k log-normal token
# sequences against Grain's first-fit packing (its own virtualenv under Benchmarks/work/packing)
# and the greedy bounds; writes Benchmarks/results/packing.{md,json}.
bench-packing: deps
	$(SWIFT) build -c release --product mbdata
	$(SWIFT) build -c release --product mbdata-packing-bench
	bash Benchmarks/packing/run.sh

SHARDS ?= Benchmarks/work/loader/shards
bench-loader: deps
	$(SWIFT) build -c release --product mbdata-loader-bench
	.build/release/mbdata-loader-bench $(SHARDS)

bench-insert: deps
	$(SWIFT) build -c release --product mbdata-insert-bench
	.build/release/mbdata-insert-bench 200000 3072

# libFuzzer over every parser of outside bytes (Tests/Fuzz/README.md): FUZZ_SECONDS per target
# (default 60), FUZZ_JOBS targets at a time, FUZZ_TARGETS to choose. `make test` only replays
# the committed corpus.
fuzz-build: deps
	MBDATA_FUZZ=1 $(SWIFT) build -c release --scratch-path .build-fuzz --product mbdata-fuzz

fuzz: fuzz-build
	bash Tests/Fuzz/run.sh

# Rewrites the fuzz targets' seed inputs (Tests/Fuzz/corpus/*/seed-*).
fuzz-seeds: venv
	$(VENV)/bin/python Tests/Fuzz/make_seeds.py

clean:
	rm -rf .build .build-fuzz $(OUT)
