# The safe in-root extractor: path resolution inside a root, whiteouts, one entry at a time.
hoist_module(hoist_extract
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/path.cc ${CMAKE_CURRENT_LIST_DIR}/extractor.cc
  DEPS hoist_base hoist_tar)
hoist_test(extract_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/extractor_test.cc
  MODULES hoist_base hoist_tar hoist_extract)
