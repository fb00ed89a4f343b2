#include "manifest/manifest.h"

#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"
#include "manifest/json_fields.h"
#include "manifest/media_types.h"
#include "manifest/schema1.h"

namespace hoist::manifest {
namespace {

using internal::Find;
using internal::Json;

// The media type of a Content-Type header value: parameters dropped, lowercased.
std::string ContentMediaType(std::string_view content_type) {
  size_t semicolon = content_type.find(';');
  if (semicolon != std::string_view::npos) content_type = content_type.substr(0, semicolon);
  return ToLower(TrimSpace(content_type));
}

// Content types some registries and static file servers send for any JSON document. They
// say nothing about which kind of manifest it is.
bool IsGenericContentType(std::string_view type) {
  return type.empty() || type == "application/json" || type == "text/plain" ||
         type == "application/octet-stream" || type == "binary/octet-stream";
}

// The media type of a document that declares none and arrived with a generic content type.
Result<std::string> MediaTypeFromShape(const Json& doc) {
  const Json* version = Find(doc, "schemaVersion");
  if (version != nullptr && version->is_number_integer() && version->get<int64_t>() == 1) {
    return std::string(Find(doc, "signatures") != nullptr ? kDockerSchema1Signed : kDockerSchema1);
  }
  if (Find(doc, "manifests") != nullptr) return std::string(kOciIndex);
  if (Find(doc, "config") != nullptr || Find(doc, "layers") != nullptr) {
    return std::string(kOciManifest);
  }
  return DataLossError(
      "manifest has no mediaType, no specific Content-Type, and neither manifests nor "
      "config/layers: cannot tell its type");
}

Status CheckSchemaVersion(const Json& doc, int64_t want, std::string_view media_type) {
  const Json* version = Find(doc, "schemaVersion");
  if (version == nullptr) return DataLossError("manifest has no schemaVersion");
  if (!version->is_number_integer()) {
    return DataLossError("manifest schemaVersion must be an integer");
  }
  int64_t got = version->get<int64_t>();
  if (got != want) {
    return DataLossError("manifest of type " + TerminalSafe(media_type) + " must have " +
                         "schemaVersion " + std::to_string(want) + ", got " + std::to_string(got));
  }
  return OkStatus();
}

Result<ImageManifest> DecodeImageManifest(const Json& doc, const std::string& media_type) {
  if (Find(doc, "manifests") != nullptr) {
    return DataLossError("image manifest (" + TerminalSafe(media_type) +
                         ") carries \"manifests\" like an index: refused");
  }
  ImageManifest m;
  m.media_type = media_type;
  const Json* config = Find(doc, "config");
  if (config == nullptr) return DataLossError("image manifest has no config");
  ASSIGN_OR_RETURN(m.config, internal::ParseDescriptor(*config, "config"));
  if (!IsConfigType(m.config.media_type)) {
    return DataLossError("unsupported config media type " + TerminalSafe(m.config.media_type));
  }
  const Json* layers = Find(doc, "layers");
  if (layers == nullptr || !layers->is_array()) {
    return DataLossError("image manifest layers must be an array");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor layer,
                     internal::ParseDescriptor((*layers)[i], "layers[" + std::to_string(i) + "]"));
    if (!IsLayerType(layer.media_type)) {
      return DataLossError("unsupported layer media type " + TerminalSafe(layer.media_type) +
                           " in layers[" + std::to_string(i) + "]");
    }
    m.layers.push_back(std::move(layer));
  }
  RETURN_IF_ERROR(internal::ReadStringMap(doc, "annotations", "", &m.annotations));
  return m;
}

Result<Index> DecodeIndex(const Json& doc, const std::string& media_type) {
  for (std::string_view key : {"layers", "config"}) {
    if (Find(doc, key) != nullptr) {
      return DataLossError("index (" + TerminalSafe(media_type) + ") carries \"" +
                           std::string(key) + "\" like an image manifest: refused");
    }
  }
  Index index;
  index.media_type = media_type;
  const Json* manifests = Find(doc, "manifests");
  if (manifests == nullptr || !manifests->is_array()) {
    return DataLossError("index manifests must be an array");
  }
  for (size_t i = 0; i < manifests->size(); ++i) {
    ASSIGN_OR_RETURN(
        Descriptor entry,
        internal::ParseDescriptor((*manifests)[i], "manifests[" + std::to_string(i) + "]"));
    index.manifests.push_back(std::move(entry));
  }
  std::map<std::string, std::string> annotations;
  RETURN_IF_ERROR(internal::ReadStringMap(doc, "annotations", "", &annotations));
  return index;
}

// A signed document is read as two things: the JSON we decoded and the payload its digest
// covers. They must say the same, or the digest would vouch for something else.
Status CheckSignedPayload(const Json& doc, std::string_view bytes) {
  ASSIGN_OR_RETURN(std::string payload, internal::Schema1Payload(bytes));
  ASSIGN_OR_RETURN(Json signed_doc,
                   internal::ParseObject(payload, kMaxManifestBytes, "signed schema1 payload"));
  Json unsigned_doc = doc;
  unsigned_doc.erase("signatures");
  if (signed_doc != unsigned_doc) {
    return DataLossError("signed schema1 payload differs from the document around it");
  }
  return OkStatus();
}

}  // namespace

Result<Decoded> Decode(std::string_view content_type, std::string_view bytes) {
  ASSIGN_OR_RETURN(Json doc, internal::ParseObject(bytes, kMaxManifestBytes, "manifest"));

  std::string from_header = ContentMediaType(content_type);
  Decoded d;
  if (const Json* declared = Find(doc, "mediaType"); declared != nullptr) {
    if (!declared->is_string()) return DataLossError("manifest mediaType must be a string");
    d.media_type = declared->get<std::string>();
    if (!IsGenericContentType(from_header) && from_header != d.media_type) {
      return DataLossError("Content-Type " + TerminalSafe(from_header) +
                           " conflicts with the manifest's " + "mediaType " +
                           TerminalSafe(d.media_type));
    }
  } else if (!IsGenericContentType(from_header)) {
    d.media_type = from_header;
  } else {
    ASSIGN_OR_RETURN(d.media_type, MediaTypeFromShape(doc));
  }

  if (IsImageManifestType(d.media_type)) {
    RETURN_IF_ERROR(CheckSchemaVersion(doc, 2, d.media_type));
    d.kind = Kind::kImageManifest;
    ASSIGN_OR_RETURN(d.manifest, DecodeImageManifest(doc, d.media_type));
  } else if (IsIndexType(d.media_type)) {
    RETURN_IF_ERROR(CheckSchemaVersion(doc, 2, d.media_type));
    d.kind = Kind::kIndex;
    ASSIGN_OR_RETURN(d.index, DecodeIndex(doc, d.media_type));
  } else if (IsSchema1Type(d.media_type)) {
    RETURN_IF_ERROR(CheckSchemaVersion(doc, 1, d.media_type));
    d.kind = Kind::kSchema1;
    ASSIGN_OR_RETURN(d.schema1, internal::DecodeSchema1(doc));
    if (d.media_type == kDockerSchema1Signed && !d.schema1.signed_) {
      return DataLossError("signed schema1 manifest has no signatures");
    }
    if (d.schema1.signed_) RETURN_IF_ERROR(CheckSignedPayload(doc, bytes));
  } else {
    return DataLossError("unsupported manifest media type " + TerminalSafe(d.media_type));
  }
  return d;
}

std::vector<Descriptor> Children(const Decoded& d) {
  std::vector<Descriptor> out;
  switch (d.kind) {
    case Kind::kImageManifest:
      out.push_back(d.manifest.config);
      out.insert(out.end(), d.manifest.layers.begin(), d.manifest.layers.end());
      break;
    case Kind::kIndex:
      out = d.index.manifests;
      break;
    case Kind::kSchema1:
      for (const Digest& layer : d.schema1.layers) {
        Descriptor desc;
        desc.media_type = std::string(kDockerLayer);
        desc.digest = layer;
        desc.size = -1;
        out.push_back(std::move(desc));
      }
      break;
  }
  return out;
}

Result<std::string> CanonicalBytes(const Decoded& d, std::string_view bytes) {
  if (d.kind == Kind::kSchema1 && d.schema1.signed_) return internal::Schema1Payload(bytes);
  return std::string(bytes);
}

}  // namespace hoist::manifest
