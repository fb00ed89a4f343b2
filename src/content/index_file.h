// The JSON of the store's index.json: an OCI image index whose entries are the image records,
// each named by the annotation org.opencontainers.image.ref.name. Also used for any descriptor
// the store writes. Decoding is strict: the file may have been edited by other tools.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hoist/descriptor.h"
#include "hoist/status.h"

namespace hoist::content {

inline constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
inline constexpr char kOciIndexMediaType[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciLayoutJson[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

// {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}
std::string EmptyIndexJson();

// The OCI descriptor JSON: mediaType, digest, size, then urls, annotations, platform (os,
// architecture, variant, os.version, os.features) when set.
nlohmann::json DescriptorToJson(const Descriptor& d);
// The inverse; wrong types, a bad digest or a negative size are DataLoss. Unknown fields are
// ignored.
Result<Descriptor> DescriptorFromJson(const nlohmann::json& j);

// Parses index.json and checks its frame: an object with schemaVersion 2, mediaType (if
// present) the OCI index type, and a manifests array. Anything else is DataLoss. The entries
// themselves are checked by DescriptorFromJson when read.
Result<nlohmann::json> ParseIndex(std::string_view text);

// True if `name` is a valid ref name for the image layout:
//   ref       ::= component ("/" component)*
//   component ::= alphanum (separator alphanum)*
//   alphanum  ::= [A-Za-z0-9]+
//   separator ::= [-._:@+] | "--"
// Full references such as "127.0.0.1:5000/app:1" and "docker.io/library/a@sha256:<hex>" are.
bool IsValidRefName(std::string_view name);

}  // namespace hoist::content
