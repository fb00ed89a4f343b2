#include "manifest/config.h"

#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"
#include "manifest/json_fields.h"
#include "manifest/manifest.h"

namespace hoist::manifest {

using internal::Find;
using internal::Json;
using internal::ReadString;

Result<ImageConfig> ParseConfig(std::string_view bytes) {
  ASSIGN_OR_RETURN(Json doc, internal::ParseObject(bytes, kMaxManifestBytes, "image config"));
  ImageConfig config;
  RETURN_IF_ERROR(ReadString(doc, "os", false, "config", &config.platform.os));
  RETURN_IF_ERROR(ReadString(doc, "architecture", false, "config", &config.platform.architecture));
  RETURN_IF_ERROR(ReadString(doc, "variant", false, "config", &config.platform.variant));
  RETURN_IF_ERROR(ReadString(doc, "os.version", false, "config", &config.platform.os_version));
  if (const Json* features = Find(doc, "os.features");
      features != nullptr && !features->is_null()) {
    if (!features->is_array()) return DataLossError("config.os.features must be an array");
    for (const Json& f : *features) {
      if (!f.is_string()) return DataLossError("config.os.features must be an array of strings");
      config.platform.os_features.push_back(f.get<std::string>());
    }
  }

  const Json* rootfs = Find(doc, "rootfs");
  if (rootfs == nullptr || !rootfs->is_object()) {
    return DataLossError("config.rootfs must be an object");
  }
  std::string type;
  RETURN_IF_ERROR(ReadString(*rootfs, "type", true, "config.rootfs", &type));
  if (type != "layers") {
    return DataLossError("config.rootfs.type must be \"layers\", got " + Quote(type));
  }
  const Json* diff_ids = Find(*rootfs, "diff_ids");
  if (diff_ids == nullptr || !diff_ids->is_array()) {
    return DataLossError("config.rootfs.diff_ids must be an array");
  }
  for (size_t i = 0; i < diff_ids->size(); ++i) {
    std::string where = "config.rootfs.diff_ids[" + std::to_string(i) + "]";
    const Json& id = (*diff_ids)[i];
    if (!id.is_string()) return DataLossError(where + " must be a string");
    Result<Digest> digest = Digest::Parse(id.get<std::string>());
    if (!digest.ok()) return DataLossError(where + ": " + digest.status().message());
    config.diff_ids.push_back(*std::move(digest));
  }
  // Informational only (images lists it), so a config without a usable one is still valid.
  if (const Json* created = Find(doc, "created"); created != nullptr && created->is_string()) {
    config.created = created->get<std::string>();
  }
  config.raw = std::string(bytes);
  return config;
}

}  // namespace hoist::manifest
