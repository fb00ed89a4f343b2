// Small string helpers the standard library lacks in C++20.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hoist {

std::vector<std::string_view> Split(std::string_view s, char sep);
std::string_view TrimSpace(std::string_view s);
std::string ToLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// Bytes as lowercase hex.
std::string HexEncode(std::string_view bytes);
std::string Base64Encode(std::string_view bytes);
// The URL-safe alphabet without padding, as JWS (JWT, signed schema1) writes it.
std::string Base64UrlEncode(std::string_view bytes);
// Standard or URL-safe alphabet, padding optional; false on bad input.
bool Base64Decode(std::string_view in, std::string* out);
// RFC 3986 percent-encoding of everything but unreserved characters.
std::string UrlEncode(std::string_view s);

}  // namespace hoist
