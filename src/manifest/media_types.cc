#include "manifest/media_types.h"

namespace hoist::manifest {

std::string AcceptHeader() {
  std::string out;
  for (std::string_view type : {kOciManifest, kOciIndex, kDockerManifest, kDockerManifestList,
                                kDockerSchema1Signed, kDockerSchema1}) {
    if (!out.empty()) out += ", ";
    out += type;
  }
  return out;
}

bool IsImageManifestType(std::string_view media_type) {
  return media_type == kOciManifest || media_type == kDockerManifest;
}

bool IsIndexType(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

bool IsSchema1Type(std::string_view media_type) {
  return media_type == kDockerSchema1 || media_type == kDockerSchema1Signed;
}

bool IsManifestType(std::string_view media_type) {
  return IsImageManifestType(media_type) || IsIndexType(media_type) || IsSchema1Type(media_type);
}

bool IsConfigType(std::string_view media_type) {
  return media_type == kOciConfig || media_type == kDockerConfig;
}

bool IsLayerType(std::string_view media_type) {
  for (std::string_view type : {kOciLayerTar, kOciLayerGzip, kOciLayerZstd,
                                kOciLayerNondistributableTar, kOciLayerNondistributableGzip,
                                kOciLayerNondistributableZstd, kDockerLayer, kDockerForeignLayer}) {
    if (media_type == type) return true;
  }
  return false;
}

bool IsForeignLayerType(std::string_view media_type) {
  for (std::string_view type : {kOciLayerNondistributableTar, kOciLayerNondistributableGzip,
                                kOciLayerNondistributableZstd, kDockerForeignLayer}) {
    if (media_type == type) return true;
  }
  return false;
}

}  // namespace hoist::manifest
