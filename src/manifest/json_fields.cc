#include "manifest/json_fields.h"

#include <utility>
#include <vector>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::manifest::internal {
namespace {

std::string Field(std::string_view where, std::string_view key) {
  if (where.empty()) return std::string(key);
  return std::string(where) + "." + std::string(key);
}

Result<std::vector<std::string>> ReadStringArray(const Json& obj, std::string_view key,
                                                 std::string_view where) {
  std::vector<std::string> out;
  const Json* value = Find(obj, key);
  if (value == nullptr) return out;
  if (!value->is_array()) {
    return DataLossError(Field(where, key) + " must be an array of strings");
  }
  for (const Json& item : *value) {
    if (!item.is_string()) {
      return DataLossError(Field(where, key) + " must be an array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

Result<Json> ParseObject(std::string_view bytes, size_t max_bytes, std::string_view what) {
  if (bytes.size() > max_bytes) {
    return ResourceExhaustedError(std::string(what) + " of " + std::to_string(bytes.size()) +
                                  " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  ASSIGN_OR_RETURN(Json doc, ParseJson(bytes, what));
  if (!doc.is_object()) return DataLossError(std::string(what) + " is not a JSON object");
  return doc;
}

const Json* Find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  return it == obj.end() ? nullptr : &*it;
}

Status ReadString(const Json& obj, std::string_view key, bool required, std::string_view where,
                  std::string* out) {
  const Json* value = Find(obj, key);
  if (value == nullptr) {
    if (required) return DataLossError(Field(where, key) + " is missing");
    return OkStatus();
  }
  if (!value->is_string()) return DataLossError(Field(where, key) + " must be a string");
  *out = value->get<std::string>();
  return OkStatus();
}

Status ReadStringMap(const Json& obj, std::string_view key, std::string_view where,
                     std::map<std::string, std::string>* out) {
  const Json* value = Find(obj, key);
  if (value == nullptr || value->is_null()) return OkStatus();
  if (!value->is_object()) {
    return DataLossError(Field(where, key) + " must be an object of strings");
  }
  for (const auto& [name, item] : value->items()) {
    if (!item.is_string()) {
      return DataLossError(Field(where, key) + "[" + Quote(name) + "] must be a string");
    }
    (*out)[name] = item.get<std::string>();
  }
  return OkStatus();
}

Result<int64_t> ReadSize(const Json& obj, std::string_view key, std::string_view where) {
  const Json* value = Find(obj, key);
  if (value == nullptr) return DataLossError(Field(where, key) + " is missing");
  std::string bad = Field(where, key) + " must be an integer in [0, 2^53]";
  if (value->is_number_unsigned()) {
    uint64_t n = value->get<uint64_t>();
    if (n > static_cast<uint64_t>(kMaxSafeInteger)) return DataLossError(bad);
    return static_cast<int64_t>(n);
  }
  if (value->is_number_integer()) {
    int64_t n = value->get<int64_t>();
    if (n < 0) return DataLossError(bad);
    return n;
  }
  return DataLossError(bad);  // a float, string, bool, null, ...
}

Result<Platform> ParsePlatformObject(const Json& value, std::string_view where) {
  if (!value.is_object()) return DataLossError(std::string(where) + " must be an object");
  Platform p;
  RETURN_IF_ERROR(ReadString(value, "os", true, where, &p.os));
  RETURN_IF_ERROR(ReadString(value, "architecture", true, where, &p.architecture));
  RETURN_IF_ERROR(ReadString(value, "variant", false, where, &p.variant));
  RETURN_IF_ERROR(ReadString(value, "os.version", false, where, &p.os_version));
  ASSIGN_OR_RETURN(p.os_features, ReadStringArray(value, "os.features", where));
  return p;
}

Result<Descriptor> ParseDescriptor(const Json& value, std::string_view where) {
  if (!value.is_object()) return DataLossError(std::string(where) + " must be an object");
  Descriptor d;
  RETURN_IF_ERROR(ReadString(value, "mediaType", true, where, &d.media_type));
  std::string digest;
  RETURN_IF_ERROR(ReadString(value, "digest", true, where, &digest));
  Result<Digest> parsed = Digest::Parse(digest);
  if (!parsed.ok()) {
    return DataLossError(Field(where, "digest") + ": " + parsed.status().message());
  }
  d.digest = *std::move(parsed);
  ASSIGN_OR_RETURN(d.size, ReadSize(value, "size", where));
  ASSIGN_OR_RETURN(d.urls, ReadStringArray(value, "urls", where));
  RETURN_IF_ERROR(ReadStringMap(value, "annotations", where, &d.annotations));
  if (const Json* platform = Find(value, "platform"); platform != nullptr) {
    ASSIGN_OR_RETURN(d.platform, ParsePlatformObject(*platform, Field(where, "platform")));
  }
  return d;
}

}  // namespace hoist::manifest::internal
