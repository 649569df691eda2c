# libFuzzer targets, included from tests/tests.cmake: fuzz_<name> is
# tests/fuzz/fuzz_<name>.c plus the core sources compiled by clang in one step
# (whatever compiler builds the rest), registered as the ctest fuzz/<name>.

set(NLG_FUZZERS nl_parse frame_json ct_parse decode fwd_reply)
set(NLG_FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
file(MAKE_DIRECTORY ${NLG_FUZZ_DIR})

# Writes the well-formed seeds of corpus/ct_parse/ (regress-* there are the
# fuzzer's finds); any compiler builds it, it is no fuzzer:
#   fuzz_gen_ct tests/fuzz/corpus/ct_parse
add_executable(fuzz_gen_ct ${CMAKE_SOURCE_DIR}/tests/fuzz/gen_ct.c)
target_link_libraries(fuzz_gen_ct PRIVATE nlgcore)
# Likewise the frames of corpus/decode/: fuzz_gen_decode tests/fuzz/corpus/decode
add_executable(fuzz_gen_decode ${CMAKE_SOURCE_DIR}/tests/fuzz/gen_decode.c)
target_link_libraries(fuzz_gen_decode PRIVATE nlgcore)

# clang alone is not enough: Debian ships libFuzzer's runtime separately.
find_program(NLG_CLANG NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
set(NLG_FUZZ_OK FALSE)
if(NLG_CLANG)
  file(WRITE ${NLG_FUZZ_DIR}/probe.c
       "#include <stddef.h>\n#include <stdint.h>\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${NLG_CLANG} -fsanitize=fuzzer,address,undefined
                          ${NLG_FUZZ_DIR}/probe.c -o ${NLG_FUZZ_DIR}/probe
                  RESULT_VARIABLE NLG_FUZZ_PROBE OUTPUT_QUIET ERROR_QUIET)
  if(NLG_FUZZ_PROBE EQUAL 0)
    set(NLG_FUZZ_OK TRUE)
  endif()
endif()

if(NOT NLG_FUZZ_OK)
  message(STATUS "fuzz: no clang with libFuzzer; the fuzz/* tests will be skipped")
  foreach(name ${NLG_FUZZERS})
    add_test(NAME fuzz/${name} COMMAND sh -c
      "echo 'fuzz/${name}: skipped: no clang with libFuzzer (-fsanitize=fuzzer)'; exit 77")
    set_tests_properties(fuzz/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
  return()
endif()

list(TRANSFORM NLG_CORE_SOURCES PREPEND ${CMAKE_SOURCE_DIR}/ OUTPUT_VARIABLE NLG_FUZZ_CORE)
file(GLOB NLG_FUZZ_HEADERS ${CMAKE_SOURCE_DIR}/include/nlgate/*.h ${CMAKE_SOURCE_DIR}/core/*.h)
get_directory_property(NLG_FUZZ_DEFS COMPILE_DEFINITIONS)
list(TRANSFORM NLG_FUZZ_DEFS PREPEND -D)
# No -Werror: a warning only clang gives must not break everyone's build.
set(NLG_FUZZ_CFLAGS -std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    ${NLG_FUZZ_DEFS} -I${CMAKE_SOURCE_DIR}/include ${MNL_CFLAGS} ${NFCT_CFLAGS} ${MSGPACK_CFLAGS} ${CRYPTO_CFLAGS})
set(NLG_FUZZ_LIBS ${MNL_LDFLAGS} ${NFCT_LDFLAGS} ${MSGPACK_LDFLAGS} ${PCAP_LDFLAGS} ${CRYPTO_LDFLAGS} -lpthread -lm)

# Seeds: committed ones under tests/fuzz/corpus/<kind>/ (read only), plus a
# working corpus in the build dir that libFuzzer grows (the first directory).
set(NLG_FUZZ_SEEDS_nl_parse ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/nl)
set(NLG_FUZZ_SEEDS_frame_json ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/frame)
set(NLG_FUZZ_SEEDS_ct_parse ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/ct_parse)
set(NLG_FUZZ_SEEDS_decode ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/decode)
set(NLG_FUZZ_SEEDS_fwd_reply ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/fwd)
file(MAKE_DIRECTORY ${NLG_FUZZ_DIR}/corpus_nl_parse ${NLG_FUZZ_DIR}/corpus_frame_json
     ${NLG_FUZZ_DIR}/corpus_ct_parse ${NLG_FUZZ_DIR}/corpus_decode
     ${NLG_FUZZ_DIR}/corpus_fwd_reply)
file(GLOB NLG_FUZZ_FIXTURES ${CMAKE_SOURCE_DIR}/tests/fixtures/sock_*.bin)
file(COPY ${NLG_FUZZ_FIXTURES} DESTINATION ${NLG_FUZZ_DIR}/corpus_nl_parse)

foreach(name ${NLG_FUZZERS})
  set(bin ${NLG_FUZZ_DIR}/fuzz_${name})
  add_custom_command(OUTPUT ${bin}
    COMMAND ${NLG_CLANG} ${NLG_FUZZ_CFLAGS} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${name}.c
            ${NLG_FUZZ_CORE} ${NLG_FUZZ_LIBS} -o ${bin}
    DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${name}.c ${NLG_FUZZ_CORE} ${NLG_FUZZ_HEADERS}
    COMMENT "Building fuzzer fuzz_${name} with ${NLG_CLANG}"
    VERBATIM)
  add_custom_target(fuzz_${name} ALL DEPENDS ${bin})
  # Bounded: 20 s or 5M runs; a crash, leak or UB report fails the test and
  # leaves the input as ${NLG_FUZZ_DIR}/crash-* (commit it as a seed).
  add_test(NAME fuzz/${name}
    COMMAND ${bin} -max_total_time=20 -runs=5000000 -timeout=10 -print_final_stats=1
            -artifact_prefix=${NLG_FUZZ_DIR}/
            ${NLG_FUZZ_DIR}/corpus_${name} ${NLG_FUZZ_SEEDS_${name}})
  set_tests_properties(fuzz/${name} PROPERTIES TIMEOUT 120)
endforeach()
