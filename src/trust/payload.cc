#include "trust/payload.h"

#include "base/json.h"
#include "content/digester.h"

namespace hoist::trust {

namespace {

using Json = nlohmann::json;

Status Bad(const std::string& what) { return InvalidArgumentError("signed claims: " + what); }

// `object` has exactly the string field `key` (and nothing else when `only`).
Result<std::string> OnlyString(const Json& object, const char* where, const char* key) {
  if (!object.is_object()) return Bad(std::string(where) + " is not an object");
  if (object.size() != 1) return Bad(std::string(where) + " must hold exactly " + key);
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return Bad(std::string(where) + "." + key + " is missing or not a string");
  }
  return it->get<std::string>();
}

}  // namespace

Result<SignedClaims> ParseSignedClaims(std::string_view payload, std::string_view type) {
  if (payload.size() > kMaxPayloadBytes) return Bad("larger than 4 MiB");
  auto doc = ParseJson(payload, "signed claims");
  if (!doc.ok()) return InvalidArgumentError(doc.status().message());
  if (!doc->is_object()) return Bad("not a JSON object");
  for (const auto& [key, value] : doc->items()) {
    if (key != "critical" && key != "optional") return Bad("unknown field " + key);
  }
  auto critical = doc->find("critical");
  if (critical == doc->end() || !critical->is_object()) return Bad("no critical object");
  auto optional = doc->find("optional");
  if (optional == doc->end() || !(optional->is_object() || optional->is_null())) {
    return Bad("no optional object");
  }
  if (critical->size() != 3) return Bad("critical must hold exactly type, image and identity");
  auto t = critical->find("type");
  if (t == critical->end() || !t->is_string()) return Bad("critical.type is missing");
  if (t->get<std::string>() != type)
    return Bad("critical.type is not \"" + std::string(type) + "\"");
  auto image = critical->find("image");
  auto identity = critical->find("identity");
  if (image == critical->end() || identity == critical->end()) {
    return Bad("critical must hold exactly type, image and identity");
  }
  SignedClaims claims;
  auto digest = OnlyString(*image, "critical.image", "docker-manifest-digest");
  if (!digest.ok()) return digest.status();
  claims.manifest_digest = *digest;
  auto reference = OnlyString(*identity, "critical.identity", "docker-reference");
  if (!reference.ok()) return reference.status();
  claims.docker_reference = *reference;
  if (optional->is_object()) {
    if (auto c = optional->find("creator"); c != optional->end() && !c->is_string()) {
      return Bad("optional.creator is not a string");
    }
    if (auto ts = optional->find("timestamp"); ts != optional->end() && !ts->is_number_integer()) {
      return Bad("optional.timestamp is not an integer");
    }
  }
  return claims;
}

bool MatchesManifest(std::string_view signed_digest, const Digest& digest,
                     std::string_view canonical) {
  auto want = Digest::Parse(signed_digest);
  if (!want.ok()) return false;
  if (want->algorithm() == digest.algorithm()) return *want == digest;
  auto got = content::DigestOf(want->algorithm(), canonical);
  return got.ok() && *got == *want;
}

}  // namespace hoist::trust
