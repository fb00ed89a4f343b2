#include "content/index_file.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::content {
namespace {

using nlohmann::json;

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsSeparator(char c) {
  return c == '-' || c == '.' || c == '_' || c == ':' || c == '@' || c == '+';
}

bool IsValidComponent(std::string_view c) {
  size_t i = 0;
  for (;;) {
    size_t start = i;
    while (i < c.size() && IsAlnum(c[i])) ++i;
    if (i == start) return false;  // a separator (or nothing) where an alphanum must be
    if (i == c.size()) return true;
    if (c.substr(i, 2) == "--") {
      i += 2;
    } else if (IsSeparator(c[i])) {
      ++i;
    } else {
      return false;
    }
  }
}

Result<std::string> GetString(const json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return DataLossError(std::string("missing \"") + key + "\"");
    return std::string();
  }
  if (!it->is_string()) return DataLossError(std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

Result<std::vector<std::string>> GetStrings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end()) return out;
  if (!it->is_array()) return DataLossError(std::string("\"") + key + "\" is not an array");
  for (const json& e : *it) {
    if (!e.is_string()) return DataLossError(std::string("\"") + key + "\" has a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<Platform> PlatformFromJson(const json& j) {
  if (!j.is_object()) return DataLossError("\"platform\" is not an object");
  Platform p;
  auto os = GetString(j, "os", true);
  if (!os.ok()) return os.status().WithContext("platform");
  auto arch = GetString(j, "architecture", true);
  if (!arch.ok()) return arch.status().WithContext("platform");
  auto variant = GetString(j, "variant", false);
  if (!variant.ok()) return variant.status().WithContext("platform");
  auto os_version = GetString(j, "os.version", false);
  if (!os_version.ok()) return os_version.status().WithContext("platform");
  auto features = GetStrings(j, "os.features");
  if (!features.ok()) return features.status().WithContext("platform");
  p.os = std::move(*os);
  p.architecture = std::move(*arch);
  p.variant = std::move(*variant);
  p.os_version = std::move(*os_version);
  p.os_features = std::move(*features);
  return p;
}

}  // namespace

std::string EmptyIndexJson() {
  json j = {{"schemaVersion", 2}, {"mediaType", kOciIndexMediaType}, {"manifests", json::array()}};
  return j.dump();
}

nlohmann::json DescriptorToJson(const Descriptor& d) {
  json j = json::object();
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest.String();
  j["size"] = d.size;
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform.has_value()) {
    const Platform& p = *d.platform;
    json pj = {{"architecture", p.architecture}, {"os", p.os}};
    if (!p.os_version.empty()) pj["os.version"] = p.os_version;
    if (!p.os_features.empty()) pj["os.features"] = p.os_features;
    if (!p.variant.empty()) pj["variant"] = p.variant;
    j["platform"] = std::move(pj);
  }
  return j;
}

Result<Descriptor> DescriptorFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return DataLossError("descriptor is not an object");
  Descriptor d;
  auto media_type = GetString(j, "mediaType", true);
  if (!media_type.ok()) return media_type.status();
  d.media_type = std::move(*media_type);
  auto digest_text = GetString(j, "digest", true);
  if (!digest_text.ok()) return digest_text.status();
  auto digest = Digest::Parse(*digest_text);
  if (!digest.ok()) return DataLossError(digest.status().message());
  d.digest = std::move(*digest);
  auto size = j.find("size");
  if (size == j.end()) return DataLossError("missing \"size\"");
  if (size->is_number_unsigned()) {
    uint64_t u = size->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return DataLossError("\"size\" out of range");
    }
    d.size = static_cast<int64_t>(u);
  } else if (size->is_number_integer()) {
    d.size = size->get<int64_t>();
    if (d.size < 0) return DataLossError("\"size\" is negative");
  } else {
    return DataLossError("\"size\" is not an integer");
  }
  auto urls = GetStrings(j, "urls");
  if (!urls.ok()) return urls.status();
  d.urls = std::move(*urls);
  auto annotations = j.find("annotations");
  if (annotations != j.end()) {
    if (!annotations->is_object()) return DataLossError("\"annotations\" is not an object");
    for (const auto& [key, value] : annotations->items()) {
      if (!value.is_string()) return DataLossError("annotation " + Quote(key) + " is not a string");
      d.annotations[key] = value.get<std::string>();
    }
  }
  auto platform = j.find("platform");
  if (platform != j.end()) {
    auto p = PlatformFromJson(*platform);
    if (!p.ok()) return p.status();
    d.platform = std::move(*p);
  }
  return d;
}

Result<nlohmann::json> ParseIndex(std::string_view text) {
  ASSIGN_OR_RETURN(json j, ParseJson(text, "index"));
  if (!j.is_object()) return DataLossError("index is not a JSON object");
  auto version = j.find("schemaVersion");
  if (version == j.end() || !version->is_number_integer() || version->get<int64_t>() != 2) {
    return DataLossError("index: \"schemaVersion\" is not 2");
  }
  auto media_type = j.find("mediaType");
  if (media_type != j.end() &&
      (!media_type->is_string() || media_type->get<std::string>() != kOciIndexMediaType)) {
    return DataLossError(std::string("index: \"mediaType\" is not ") + kOciIndexMediaType);
  }
  auto manifests = j.find("manifests");
  if (manifests == j.end() || !manifests->is_array()) {
    return DataLossError("index: \"manifests\" is not an array");
  }
  return j;
}

bool IsValidRefName(std::string_view name) {
  if (name.empty() || name.size() > 4096) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = name.find('/', start);
    std::string_view component = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!IsValidComponent(component)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace hoist::content
