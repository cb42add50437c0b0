# One command sets up and runs the main job (`make demo`), one sets up and runs every
# test (`make test`). Both install what is missing and build first.
SHELL := /bin/bash
PRESET ?= release
JOBS ?= $(shell nproc)

.PHONY: all deps build test test-asan demo fuzz format format-check lint clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	@ctest --preset $(PRESET) -j $(JOBS) --timeout 600

test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS) --timeout 600

demo: build
	@bash scripts/demo.sh build/$(PRESET)

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format-19 -i

format-check:
	@git ls-files '*.h' '*.cc' | xargs clang-format-19 --dry-run --Werror

lint: build
	@git ls-files 'src/*.cc' | xargs clang-tidy-19 -p build/$(PRESET) --quiet

clean:
	rm -rf build
