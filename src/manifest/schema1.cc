#include "manifest/schema1.h"

#include <set>
#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::manifest::internal {
namespace {

// docker's rule for v1 image ids: exactly 64 lowercase hex digits.
bool IsV1Id(std::string_view id) {
  if (id.size() != 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct V1Entry {
  Digest blob_sum;
  std::string v1_compatibility;
  std::string id;
  std::string parent;
};

Result<V1Entry> ReadEntry(const Json& fs_layer, const Json& history, size_t i) {
  std::string where = "fsLayers[" + std::to_string(i) + "]";
  if (!fs_layer.is_object()) return DataLossError(where + " must be an object");
  V1Entry e;
  std::string blob_sum;
  RETURN_IF_ERROR(ReadString(fs_layer, "blobSum", true, where, &blob_sum));
  Result<Digest> digest = Digest::Parse(blob_sum);
  if (!digest.ok()) return DataLossError(where + ".blobSum: " + digest.status().message());
  e.blob_sum = *std::move(digest);

  where = "history[" + std::to_string(i) + "]";
  if (!history.is_object()) return DataLossError(where + " must be an object");
  RETURN_IF_ERROR(ReadString(history, "v1Compatibility", true, where, &e.v1_compatibility));
  where += ".v1Compatibility";
  ASSIGN_OR_RETURN(Json v1, ParseObject(e.v1_compatibility, kMaxManifestBytes, where));
  RETURN_IF_ERROR(ReadString(v1, "id", true, where, &e.id));
  if (!IsV1Id(e.id)) return DataLossError(where + ": invalid image id " + Quote(e.id));
  RETURN_IF_ERROR(ReadString(v1, "parent", false, where, &e.parent));
  return e;
}

std::string Short(std::string_view id) { return TerminalSafe(id.substr(0, 12)); }

// The first signature's protected header fields, as libtrust reads them.
struct FormatInfo {
  int64_t length = 0;
  std::string tail;
};

Result<FormatInfo> ReadProtectedHeader(const Json& signature, size_t i) {
  std::string where = "signatures[" + std::to_string(i) + "]";
  if (!signature.is_object()) return DataLossError(where + " must be an object");
  std::string encoded;
  RETURN_IF_ERROR(ReadString(signature, "protected", true, where, &encoded));
  std::string header_bytes;
  if (!Base64Decode(encoded, &header_bytes)) {
    return DataLossError(where + ".protected is not base64url");
  }
  ASSIGN_OR_RETURN(Json header, ParseObject(header_bytes, kMaxManifestBytes, where + ".protected"));
  FormatInfo info;
  ASSIGN_OR_RETURN(info.length, ReadSize(header, "formatLength", where + ".protected"));
  std::string tail;
  RETURN_IF_ERROR(ReadString(header, "formatTail", true, where + ".protected", &tail));
  if (!Base64Decode(tail, &info.tail)) {
    return DataLossError(where + ".protected.formatTail is not base64url");
  }
  return info;
}

}  // namespace

Result<Schema1> DecodeSchema1(const Json& doc) {
  Schema1 out;
  RETURN_IF_ERROR(ReadString(doc, "name", false, "", &out.name));
  RETURN_IF_ERROR(ReadString(doc, "tag", false, "", &out.tag));
  RETURN_IF_ERROR(ReadString(doc, "architecture", false, "", &out.architecture));

  const Json* fs_layers = Find(doc, "fsLayers");
  const Json* history = Find(doc, "history");
  if (fs_layers == nullptr || !fs_layers->is_array()) {
    return DataLossError("schema1 fsLayers must be an array");
  }
  if (history == nullptr || !history->is_array()) {
    return DataLossError("schema1 history must be an array");
  }
  if (fs_layers->empty()) return DataLossError("schema1 manifest has no fsLayers");
  if (fs_layers->size() != history->size()) {
    return DataLossError("schema1 fsLayers and history differ in length (" +
                         std::to_string(fs_layers->size()) + " vs " +
                         std::to_string(history->size()) + ")");
  }

  // entries[0] is the top layer, entries.back() the base.
  std::vector<V1Entry> entries;
  for (size_t i = 0; i < fs_layers->size(); ++i) {
    ASSIGN_OR_RETURN(V1Entry e, ReadEntry((*fs_layers)[i], (*history)[i], i));
    entries.push_back(std::move(e));
  }
  if (!entries.back().parent.empty()) {
    return DataLossError("invalid parent ID in the base layer: " + Short(entries.back().parent));
  }
  // An id may repeat only immediately after itself.
  std::set<std::string> seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    bool repeat_of_previous = i > 0 && entries[i].id == entries[i - 1].id;
    if (!repeat_of_previous && !seen.insert(entries[i].id).second) {
      return DataLossError("invalid parent ID: id " + Short(entries[i].id) +
                           " appears more than once in the schema1 history");
    }
  }
  // Walk from the base up, keeping one entry per run of equal ids, and check the parent chain.
  for (size_t n = entries.size(); n-- > 0;) {
    const V1Entry& e = entries[n];
    if (!out.layers.empty()) {
      const V1Entry& older = entries[n + 1];
      if (e.id == older.id) {
        if (e.blob_sum != older.blob_sum) {
          return DataLossError("schema1 id " + Short(e.id) +
                               " is listed twice with different blobSums");
        }
        continue;
      }
      if (e.parent != older.id) {
        return DataLossError("invalid parent ID in history[" + std::to_string(n) + "]: expected " +
                             Short(older.id) + ", got \"" + Short(e.parent) + "\"");
      }
    }
    out.layers.push_back(e.blob_sum);
    out.v1_compatibility.push_back(e.v1_compatibility);
  }

  if (const Json* signatures = Find(doc, "signatures"); signatures != nullptr) {
    if (!signatures->is_array() || signatures->empty()) {
      return DataLossError("schema1 signatures must be a non-empty array");
    }
    out.signed_ = true;
  }
  return out;
}

Result<std::string> Schema1Payload(std::string_view bytes) {
  ASSIGN_OR_RETURN(Json doc, ParseObject(bytes, kMaxManifestBytes, "signed schema1 manifest"));
  const Json* signatures = Find(doc, "signatures");
  if (signatures == nullptr || !signatures->is_array() || signatures->empty()) {
    return DataLossError("signed schema1 manifest has no signatures");
  }
  FormatInfo first;
  for (size_t i = 0; i < signatures->size(); ++i) {
    ASSIGN_OR_RETURN(FormatInfo info, ReadProtectedHeader((*signatures)[i], i));
    if (i == 0) {
      first = std::move(info);
    } else if (info.length != first.length || info.tail != first.tail) {
      return DataLossError("schema1 signatures disagree on the signed payload");
    }
  }
  if (static_cast<uint64_t>(first.length) > bytes.size()) {
    return DataLossError("schema1 formatLength " + std::to_string(first.length) +
                         " exceeds the document size " + std::to_string(bytes.size()));
  }
  std::string payload(bytes.substr(0, static_cast<size_t>(first.length)));
  payload += first.tail;
  return payload;
}

}  // namespace hoist::manifest::internal
