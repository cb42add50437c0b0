include(GoogleTest)

# Shared build rules: warnings, module libraries, unit tests and fuzz targets.

set(PEERTUN_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast -Wnon-virtual-dtor
    -Woverloaded-virtual -Wimplicit-fallthrough -Werror)
# GCC 12 reports -Wmismatched-new-delete at the end of coroutines whose callee's Asio
# awaitable frame it inlines: Asio allocates recycled frames with aligned_alloc and frees
# them with its own operator delete, which GCC 12 cannot match up (a false positive,
# fixed in later GCCs). It fired on nothing else in the tree.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND PEERTUN_WARNINGS -Wno-mismatched-new-delete)
endif()
# Byte-level modules also forbid silent narrowing.
set(PEERTUN_BYTE_WARNINGS -Wconversion -Wsign-conversion)

# peertun_module(NAME <module> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...] [BYTE_LEVEL])
# Defines library peertun_<module> (alias peertun::<module>) rooted at src/.
function(peertun_module)
  cmake_parse_arguments(M "BYTE_LEVEL" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target peertun_${M_NAME})
  add_library(${target} STATIC ${M_SOURCES})
  add_library(peertun::${M_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${target} PRIVATE ${PEERTUN_WARNINGS})
  if(M_BYTE_LEVEL)
    target_compile_options(${target} PRIVATE ${PEERTUN_BYTE_WARNINGS})
  endif()
  target_link_libraries(${target} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
endfunction()

# peertun_unit_test(NAME <name> SOURCES ... DEPS ... [LABELS <label>])
# One GoogleTest binary; each test case becomes a ctest test labelled `unit` by default.
function(peertun_unit_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_compile_options(${T_NAME} PRIVATE ${PEERTUN_WARNINGS})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} GTest::gtest GTest::gmock GTest::gtest_main
                                          rapidcheck)
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  # One label per binary: gtest_discover_tests cannot carry a list of labels through.
  gtest_discover_tests(${T_NAME} PROPERTIES LABELS ${T_LABELS} DISCOVERY_TIMEOUT 60)
endfunction()

# peertun_fuzz_target(NAME <name> SOURCES <x_fuzz.cc> DEPS ...)
# Always builds <name>_replay (a plain main that feeds every file of fuzz/corpus/<name>/
# to the target) and registers it with ctest; with PEERTUN_FUZZ also builds the libFuzzer
# binary <name>.
function(peertun_fuzz_target)
  cmake_parse_arguments(F "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${F_NAME}_replay ${F_SOURCES} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.cc)
  target_compile_options(${F_NAME}_replay PRIVATE ${PEERTUN_WARNINGS})
  target_link_libraries(${F_NAME}_replay PRIVATE ${F_DEPS})
  add_test(NAME fuzz_replay.${F_NAME}
           COMMAND ${F_NAME}_replay ${PROJECT_SOURCE_DIR}/fuzz/corpus/${F_NAME})
  set_tests_properties(fuzz_replay.${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 120)
  if(PEERTUN_FUZZ)
    add_executable(${F_NAME} ${F_SOURCES})
    target_compile_options(${F_NAME} PRIVATE ${PEERTUN_WARNINGS} -fsanitize=fuzzer)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${F_NAME} PRIVATE ${F_DEPS})
  endif()
endfunction()
