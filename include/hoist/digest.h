// A content digest "algorithm:hex" as in the OCI image spec. Only sha256 and sha512 are
// accepted, with lowercase hex of the exact length, so a Digest is always safe to use as a
// path component and a URL segment.
#pragma once

#include <string>
#include <string_view>

#include "hoist/status.h"

namespace hoist {

class Digest {
 public:
  Digest() = default;
  // Accepts "sha256:<64 hex>" or "sha512:<128 hex>"; anything else is InvalidArgument.
  static Result<Digest> Parse(std::string_view text);

  const std::string& algorithm() const { return algorithm_; }
  const std::string& hex() const { return hex_; }
  std::string String() const { return algorithm_ + ":" + hex_; }
  // "sha256:0123456789ab" — for progress lines and error messages.
  std::string Short() const { return algorithm_ + ":" + hex_.substr(0, 12); }
  bool empty() const { return hex_.empty(); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  Digest(std::string algorithm, std::string hex)
      : algorithm_(std::move(algorithm)), hex_(std::move(hex)) {}
  std::string algorithm_;
  std::string hex_;
};

}  // namespace hoist
