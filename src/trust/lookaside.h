// Simple signatures from a lookaside store (registries.d `lookaside`): the files
// BASE/PATH@ALG=HEX/signature-1, -2, … up to the first that is missing (404 over HTTP).
// Fetched with a plain HTTP client: no registry credentials, no Authorization header ever.
#pragma once

#include <string>
#include <vector>

#include "hoist/digest.h"
#include "hoist/reference.h"
#include "hoist/status.h"
#include "registry/http.h"

namespace hoist::trust {

// At most this many signatures are read for one manifest, each at most this large.
inline constexpr int kMaxSignatures = 64;
inline constexpr size_t kMaxSignatureBytes = 4 << 20;

// The signatures of manifest `digest` of `ref` under the lookaside `base` (file://, http://,
// https://). Errors other than a missing signature (a 5xx, a larger file, an unreadable one)
// are returned, naming the URL.
Result<std::vector<std::string>> FetchLookasideSignatures(registry::HttpClient& http,
                                                          const std::string& base,
                                                          const Reference& ref,
                                                          const Digest& digest);

}  // namespace hoist::trust
