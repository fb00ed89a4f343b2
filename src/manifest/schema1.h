// Docker image manifest v2 schema 1: the layer-list rules docker applies before pulling, and
// the libtrust "pretty JWS" envelope of signed manifests. Internal to the manifest module.
#pragma once

#include <string>
#include <string_view>

#include "hoist/status.h"
#include "manifest/json_fields.h"
#include "manifest/manifest.h"

namespace hoist::manifest::internal {

// Validates a schema1 document (already parsed; schemaVersion already checked) and returns
// its layers base first:
//  - fsLayers and history are non-empty arrays of equal length;
//  - each history[i].v1Compatibility is a JSON object whose `id` is 64 lowercase hex;
//  - the base (last) entry has no parent;
//  - the same id twice in a row is one layer listed twice: the newer entry (fsLayer and
//    history) is dropped, provided both name the same blobSum;
//  - an id repeated anywhere else, or a `parent` that is not the id of the next (older)
//    entry, is refused.
// `signatures`, when present, must be a non-empty array; signed_ is then true.
Result<Schema1> DecodeSchema1(const Json& doc);

// Removes the JWS signatures from a signed schema1 document, returning the signed payload:
// bytes[0, formatLength) + base64url-decode(formatTail), both taken from the protected header
// of each signature (all signatures must agree). Errors are DataLoss.
Result<std::string> Schema1Payload(std::string_view bytes);

}  // namespace hoist::manifest::internal
