# The layer pipeline: inflate → diff_id → tar → extractor, the store's per-layer dirs, and
# their check against their blobs (verify_layer).
hoist_module(hoist_layer SOURCES ${CMAKE_CURRENT_LIST_DIR}/layer.cc ${CMAKE_CURRENT_LIST_DIR}/mount.cc
  ${CMAKE_CURRENT_LIST_DIR}/destination.cc ${CMAKE_CURRENT_LIST_DIR}/verify_layer.cc
  ${CMAKE_CURRENT_LIST_DIR}/merge.cc
  DEPS hoist_base hoist_content hoist_decompress hoist_tar hoist_extract)
hoist_test(layer_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/layer_test.cc
  MODULES hoist_base hoist_content hoist_decompress hoist_tar hoist_extract hoist_layer
  LIBS hoist_test_support)
hoist_test(verify_layer_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/verify_layer_test.cc
  MODULES hoist_base hoist_content hoist_decompress hoist_tar hoist_extract hoist_layer
  LIBS hoist_test_support)
hoist_test(destination_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/destination_test.cc
  MODULES hoist_base hoist_content hoist_decompress hoist_tar hoist_extract hoist_layer
  LIBS hoist_test_support)
hoist_test(mount_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/mount_test.cc
  MODULES hoist_base hoist_content hoist_decompress hoist_tar hoist_extract hoist_layer)
hoist_test(merge_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/merge_test.cc
  MODULES hoist_base hoist_content hoist_decompress hoist_tar hoist_extract hoist_layer
  LIBS hoist_test_support)
