# Streaming decompression (gzip via isa-l, zstd, none).
hoist_module(hoist_decompress
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/decompress.cc
  DEPS hoist_base PkgConfig::ISAL PkgConfig::ZSTD)
if(HOIST_BUILD_TESTS)
  find_package(ZLIB REQUIRED)
  hoist_test(decompress_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/decompress_test.cc
    MODULES hoist_base hoist_decompress
    LIBS ZLIB::ZLIB PkgConfig::ZSTD)
endif()
