#include "manifest/convert.h"

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

using Json = nlohmann::ordered_json;

Json DescriptorJson(const Descriptor& d, std::string_view media_type) {
  Json j;
  j["mediaType"] = media_type;
  j["digest"] = d.digest.String();
  j["size"] = d.size;
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

}  // namespace

Result<std::string> DockerToOciManifest(const Decoded& docker) {
  if (docker.kind != Kind::kImageManifest || docker.media_type != kDockerManifest) {
    return InvalidArgumentError("not a Docker schema2 manifest: " +
                                TerminalSafe(docker.media_type));
  }
  const ImageManifest& m = docker.manifest;
  Json out;
  out["schemaVersion"] = 2;
  out["mediaType"] = kOciManifest;
  out["config"] = DescriptorJson(m.config, kOciConfig);
  out["layers"] = Json::array();
  for (const Descriptor& layer : m.layers) {
    std::string_view type = layer.media_type;
    if (type == kDockerLayer) {
      type = kOciLayerGzip;
    } else if (type == kDockerForeignLayer) {
      type = kOciLayerNondistributableGzip;
    }
    out["layers"].push_back(DescriptorJson(layer, type));
  }
  if (!m.annotations.empty()) out["annotations"] = m.annotations;
  return out.dump();
}

}  // namespace hoist::manifest
