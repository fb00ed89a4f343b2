# The OCI runtime bundle's config.json, generated from the image config (`unpack --bundle`).
hoist_module(hoist_bundle SOURCES ${CMAKE_CURRENT_LIST_DIR}/bundle.cc
  DEPS hoist_base hoist_extract ${HOIST_THIRD_PARTY})
if(HOIST_BUILD_TESTS)
  find_package(ZLIB REQUIRED)  # the test gzips the layer of the image it hands to umoci
endif()
hoist_test(bundle_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/bundle_test.cc
  MODULES hoist_base hoist_tar hoist_extract hoist_bundle
  LIBS ZLIB::ZLIB)
