# Test registration, included from the top-level CMakeLists.txt.
# Unit tests (cmocka): tests/unit/test_<module>.c linked with the core.
# Integration tests: tests/integration/*.sh, exit 77 to skip (e.g. not root).

set(NLG_TEST_ENV
  "NLGATE=$<TARGET_FILE:nlgate>"
  "NLGATE_BUILD=${CMAKE_BINARY_DIR}"
  "NLGATE_SRC=${CMAKE_SOURCE_DIR}"
  "LUA_CPATH=${CMAKE_BINARY_DIR}/?.so\;\;"
  "LUA_PATH=${CMAKE_SOURCE_DIR}/scripts/?.lua\;${CMAKE_SOURCE_DIR}/tests/spec/?.lua\;\;")
if(NLGATE_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE NLG_LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE NLG_LIBUBSAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  # The Lua interpreter is not instrumented: preload the runtimes for it.
  set(NLG_LUA_ENV "LD_PRELOAD=${NLG_LIBASAN} ${NLG_LIBUBSAN}" "ASAN_OPTIONS=detect_leaks=0")
endif()

if(CMOCKA_FOUND)
  file(GLOB NLG_UNIT_TESTS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
  foreach(src ${NLG_UNIT_TESTS})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE nlgcore PkgConfig::CMOCKA)
    if(name STREQUAL "test_source_contract" OR name STREQUAL "test_script") # CLI and Lua
      target_link_libraries(${name} PRIVATE nlgcli)
    endif()
    if(name STREQUAL "test_capture_ring") # the kernel's ENOMEM, simulated
      target_link_options(${name} PRIVATE -Wl,--wrap=setsockopt -Wl,--wrap=mmap)
    endif()
    add_test(NAME unit/${name} COMMAND ${name})
    set_tests_properties(unit/${name} PROPERTIES
      ENVIRONMENT "NLGATE_SRC=${CMAKE_SOURCE_DIR}")
  endforeach()
endif()

find_program(BUSTED busted)
if(BUSTED)
  add_test(NAME spec/busted
    COMMAND ${BUSTED} --output=plainTerminal ${CMAKE_SOURCE_DIR}/tests/spec)
  set_tests_properties(spec/busted PROPERTIES
    ENVIRONMENT "${NLG_TEST_ENV};${NLG_LUA_ENV}"
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endif()

file(GLOB NLG_INTEGRATION_TESTS ${CMAKE_SOURCE_DIR}/tests/integration/test_*.sh)
foreach(src ${NLG_INTEGRATION_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME integration/${name} COMMAND bash ${src})
  set_tests_properties(integration/${name} PROPERTIES
    ENVIRONMENT "${NLG_TEST_ENV}"
    SKIP_RETURN_CODE 77
    TIMEOUT 600
    RUN_SERIAL TRUE)
endforeach()

# Benchmark helpers: tests/bench/<name>.c → bench_<name> (run by the bench scripts, not by ctest).
file(GLOB NLG_BENCH_PROGS ${CMAKE_SOURCE_DIR}/tests/bench/*.c)
foreach(src ${NLG_BENCH_PROGS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(bench_${name} ${src})
  target_link_libraries(bench_${name} PRIVATE nlgcore)
  if(name STREQUAL "lua_driver") # starts scripts through include/nlgate/script.h
    target_link_libraries(bench_${name} PRIVATE nlgcli)
  endif()
endforeach()

# Fuzz targets (libFuzzer): built with clang directly, whatever compiler
# builds the rest, and run by ctest as fuzz/<name> for a bounded time over
# their seeds (new finds go to the build dir). No clang → skipped, said so.
add_executable(fuzz_gen_frames tests/fuzz/gen_frames.c)
target_link_libraries(fuzz_gen_frames PRIVATE nlgcore)
include(tests/fuzz/fuzz.cmake)
