// Checked reads of JSON documents from the network, shared by the manifest, schema1 and config
// decoders. Every function returns an error instead of throwing, and every error message
// names the field ("layers[2].size must be ...").
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hoist/descriptor.h"
#include "hoist/status.h"

namespace hoist::manifest::internal {

using Json = nlohmann::json;

// The largest integer a JSON number can carry exactly in every implementation.
inline constexpr int64_t kMaxSafeInteger = int64_t{1} << 53;

// Parses `bytes` as one JSON object. Over `max_bytes`: ResourceExhausted; nested too deep
// (base/json.h), not JSON or not an object: DataLoss. `what` names the document in messages
// ("manifest", "config").
Result<Json> ParseObject(std::string_view bytes, size_t max_bytes, std::string_view what);

// The member `key` of object `obj`, or nullptr when absent.
const Json* Find(const Json& obj, std::string_view key);

// Reads the string member `key` into *out. Absent: error when `required`, else *out is left
// untouched. Present but not a string: DataLoss. `where` prefixes the field name in messages.
Status ReadString(const Json& obj, std::string_view key, bool required, std::string_view where,
                  std::string* out);

// Reads an object of string values ("annotations", "labels") into *out; absent is fine.
Status ReadStringMap(const Json& obj, std::string_view key, std::string_view where,
                     std::map<std::string, std::string>* out);

// Reads the integer member `key`; it must be present, an integer, and in [0, 2^53].
Result<int64_t> ReadSize(const Json& obj, std::string_view key, std::string_view where);

// A descriptor object: mediaType (required string), digest (required, Digest::Parse), size
// (required, ReadSize), urls (array of strings), annotations (object of strings), platform.
Result<Descriptor> ParseDescriptor(const Json& value, std::string_view where);

// A platform object: os and architecture required strings; variant, os.version strings;
// os.features array of strings.
Result<Platform> ParsePlatformObject(const Json& value, std::string_view where);

}  // namespace hoist::manifest::internal
