// The one way hoist parses JSON: every document (manifests, configs, index.json, layer records,
// token answers, credential files, helper output) goes through ParseJson, which refuses deep
// nesting before a DOM is built.
//
// Why: nlohmann's dump, copy and comparison recurse once per level, so a document nested
// 300 000 deep would overflow the stack. No document hoist reads nests deeper than a handful of
// levels. Every DOM hoist dumps was either parsed here or built by hoist's own code, so the limit
// on parsing bounds every dump as well.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hoist/status.h"

namespace hoist {

inline constexpr int kMaxJsonDepth = 64;

// OK when no array or object in `text` nests deeper than kMaxJsonDepth; brackets inside strings
// do not count. Too deep: DataLoss "<what>: JSON nested deeper than 64 levels". Malformed input is
// left for the parser to report. Linear and allocation-free.
Status CheckJsonDepth(std::string_view text, std::string_view what);

// `text` parsed as one JSON value (nlohmann::json or nlohmann::ordered_json). Too deep or not
// JSON: DataLoss, "<what>: JSON nested deeper than 64 levels" / "<what> is not valid
// JSON". Never
// throws.
template <typename JsonT = nlohmann::json>
Result<JsonT> ParseJson(std::string_view text, std::string_view what) {
  Status depth = CheckJsonDepth(text, what);
  if (!depth.ok()) return depth;
  JsonT doc = JsonT::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return DataLossError(std::string(what) + " is not valid JSON");
  return doc;
}

}  // namespace hoist
