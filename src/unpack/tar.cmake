# The push-driven tar reader (ustar, GNU, PAX, sparse) and its fuzz target.
hoist_module(hoist_tar
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tar_reader.cc
  DEPS hoist_base)
if(HOIST_BUILD_TESTS)
  hoist_test(tar_reader_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/tar_reader_test.cc
    MODULES hoist_base hoist_tar)
  # The fuzz target as a plain program: replays files, or mutates seeds for a while (--smoke).
  add_executable(tar_fuzzer
    ${CMAKE_CURRENT_LIST_DIR}/tar_fuzzer.cc ${CMAKE_CURRENT_LIST_DIR}/tar_fuzzer_main.cc)
  target_link_libraries(tar_fuzzer PRIVATE hoist_tar hoist_base)
  add_test(NAME tar_fuzzer_smoke COMMAND tar_fuzzer --smoke)
  set_tests_properties(tar_fuzzer_smoke PROPERTIES TIMEOUT 120)
  # A real libFuzzer build when the compiler is clang (configure with CXX=clang++).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    add_executable(tar_libfuzzer
      ${CMAKE_CURRENT_LIST_DIR}/tar_fuzzer.cc ${CMAKE_CURRENT_LIST_DIR}/tar_reader.cc)
    target_include_directories(tar_libfuzzer PRIVATE ${PROJECT_SOURCE_DIR}/include
                               ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(tar_libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(tar_libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(tar_libfuzzer PRIVATE hoist_base)
  endif()
endif()
