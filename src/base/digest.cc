#include "hoist/digest.h"

#include "base/strings.h"
#include "hoist/descriptor.h"

namespace hoist {

Result<Digest> Digest::Parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("invalid digest " + Quote(text) + ": no algorithm");
  }
  std::string_view algorithm = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  size_t want = 0;
  if (algorithm == "sha256") {
    want = 64;
  } else if (algorithm == "sha512") {
    want = 128;
  } else {
    return InvalidArgumentError("invalid digest " + Quote(text) +
                                ": unsupported algorithm (want sha256 or sha512)");
  }
  bool hex_ok = hex.size() == want;
  for (char c : hex) hex_ok = hex_ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex_ok) {
    return InvalidArgumentError("invalid digest " + Quote(text) + ": want " + std::to_string(want) +
                                " lowercase hex digits");
  }
  return Digest(std::string(algorithm), std::string(hex));
}

std::string Platform::String() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

}  // namespace hoist
