// Small string helpers the standard library lacks in C++20.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
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
// `text` as a number when it is 1 to 19 decimal digits and nothing else (no sign, no space).
std::optional<uint64_t> ParseDigits(std::string_view text);

// Text from outside (a registry, a token server, a manifest, a tar header, a config file) made
// safe to print on a terminal. Printable ASCII and printable UTF-8 are kept; everything else is
// written visibly instead of raw:
//  - C0 controls (tab, CR and LF included, so one line stays one line) and DEL as \xNN;
//  - bytes that are not valid UTF-8 (stray continuation bytes such as a lone 0x9b CSI, overlong
//    forms, surrogates, code points past U+10FFFF, cut sequences) as \xNN;
//  - the C1 controls U+0080..U+009F and the code points that move or reorder text (U+061C,
//    U+200E, U+200F, U+2028, U+2029, U+202A..U+202E, U+2066..U+2069) as \uNNNN.
// Backslashes are kept, so applying it twice changes nothing: messages that already hold quoted
// parts stay as they are.
std::string TerminalSafe(std::string_view text);

// `text` as one unambiguous token for a message: TerminalSafe, with '"' and '\' also written as
// \x22 and \x5c, in double quotes, and cut after kMaxQuotedBytes bytes of input ("...").
inline constexpr size_t kMaxQuotedBytes = 300;
std::string Quote(std::string_view text);

// JSON text (a dump) made safe to print on a terminal without changing what it means: every code
// point TerminalSafe would escape is written as a JSON \uNNNN escape, bytes that are not valid
// UTF-8 as \ufffd. Raw LF and tab are kept, as they can only be whitespace between tokens.
std::string TerminalSafeJson(std::string_view json);

}  // namespace hoist
