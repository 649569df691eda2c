# Thin wrapper over CMake. The two commands a newcomer needs:
#   make run    start the default pipeline on this host
#   make test   install what is missing, build, run the whole suite (also under ASan+UBSan)
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: all deps build build-asan run test test-fast bench format clean

all: build

deps:
	@bash tools/deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DNLGATE_SANITIZE=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: deps build
	$(BUILD)/nlgate run $(SCRIPT)

# The suite in the normal build, then again under ASan+UBSan.
test: deps build build-asan
	cd $(BUILD) && ctest --output-on-failure
	cd $(BUILD_ASAN) && ctest --output-on-failure

test-fast: build
	cd $(BUILD) && ctest --output-on-failure

bench: deps build
	bash tests/bench/sockets

format:
	clang-format -i core/*.c core/*.h include/nlgate/*.h bindings/*.c bindings/*.h tests/unit/*.c tests/bench/*.c tests/fuzz/*.c

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
