# Thin wrapper over CMake. The two commands a newcomer needs:
#   make run    start the default pipeline on this host
#   make test   install what is missing, build, run the whole suite (also under ASan+UBSan)
BUILD         ?= build
BUILD_ASAN    ?= build-asan
BUILD_TSAN    ?= build-tsan
BUILD_RELEASE ?= build-release
BUILD_CLANG   ?= build-clang
JOBS          ?= $(shell nproc)
# Warnings fail our own builds; a packager calling cmake can pass -DNLGATE_WERROR=OFF.
WERROR        ?= -DNLGATE_WERROR=ON

.PHONY: all deps build build-asan build-tsan build-release build-clang run test test-fast bench format clean

all: build

deps:
	@bash tools/deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DNLGATE_SANITIZE=ON $(WERROR)
	cmake --build $(BUILD_ASAN) -j $(JOBS)

build-tsan:
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNLGATE_TSAN=ON $(WERROR)
	cmake --build $(BUILD_TSAN) -j $(JOBS)

# What packagers build: Release (-O3) with gcc, and clang. `make test` builds
# both so neither breaks unnoticed; the suite itself does not run there.
build-release:
	cmake -S . -B $(BUILD_RELEASE) -DCMAKE_BUILD_TYPE=Release $(WERROR)
	cmake --build $(BUILD_RELEASE) -j $(JOBS)

build-clang:
	cmake -S . -B $(BUILD_CLANG) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR)
	cmake --build $(BUILD_CLANG) -j $(JOBS)

run: deps build
	$(BUILD)/nlgate run $(SCRIPT)

# The suite in the normal build, then again under ASan+UBSan, then the unit
# tests (threads: the ring) under TSan; the Release and clang builds must build.
test: deps build build-asan build-tsan build-release build-clang
	cd $(BUILD) && ctest --output-on-failure
	cd $(BUILD_ASAN) && ctest --output-on-failure
	cd $(BUILD_TSAN) && ctest -R '^unit/' --output-on-failure

test-fast: build
	cd $(BUILD) && ctest --output-on-failure

bench: deps build
	$(BUILD)/bench_ring
	bash tests/bench/sockets

format:
	clang-format -i core/*.c include/nlgate/*.h bindings/*.c bindings/*.h cli/*.c cli/*.h tests/unit/*.c tests/bench/*.c tests/fuzz/*.c

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_RELEASE) $(BUILD_CLANG)
