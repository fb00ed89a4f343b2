#include "registry/foreign_url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>

#include "base/status_macros.h"

namespace hoist::registry {
namespace {

bool PublicV4(const uint8_t* b) {
  const uint32_t a = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  struct Range {
    uint32_t network;
    int bits;
  };
  static constexpr Range kNotPublic[] = {
      {0x00000000, 8},   // 0/8 "this network"
      {0x0A000000, 8},   // 10/8 private
      {0x64400000, 10},  // 100.64/10 shared (carrier-grade NAT)
      {0x7F000000, 8},   // 127/8 loopback
      {0xA9FE0000, 16},  // 169.254/16 link-local (cloud metadata services live here)
      {0xAC100000, 12},  // 172.16/12 private
      {0xC0000000, 24},  // 192.0.0/24 IETF protocol assignments
      {0xC0000200, 24},  // 192.0.2/24 documentation
      {0xC0A80000, 16},  // 192.168/16 private
      {0xC6120000, 15},  // 198.18/15 benchmarking
      {0xC6336400, 24},  // 198.51.100/24 documentation
      {0xCB007100, 24},  // 203.0.113/24 documentation
      {0xE0000000, 4},   // 224/4 multicast
      {0xF0000000, 4},   // 240/4 reserved, 255.255.255.255 broadcast
  };
  for (const Range& r : kNotPublic) {
    if ((a >> (32 - r.bits)) == (r.network >> (32 - r.bits))) return false;
  }
  return true;
}

bool PublicV6(const uint8_t* b) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::equal(kMapped, kMapped + 12, b) || std::equal(kNat64, kNat64 + 12, b)) {
    return PublicV4(b + 12);
  }
  if (std::all_of(b, b + 12, [](uint8_t x) { return x == 0; })) return false;  // ::, ::1, ::a.b.c.d
  if (b[0] == 0x20 && b[1] == 0x02) return PublicV4(b + 2);                    // 6to4 2002::/16
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) return false;    // Teredo 2001::/32
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false;  // 2001:db8::/32
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return false;  // 64:ff9b:1::/48
  if ((b[0] & 0xfe) == 0xfc) return false;                  // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0x80) == 0x80) return false;  // fe80::/10 link-local, fec0::/10
  if (b[0] == 0xff) return false;                           // ff00::/8 multicast
  return true;
}

// The canonical text of an address literal, or "" when `text` is not one.
std::string CanonicalAddress(const std::string& text) {
  uint8_t buf[16];
  char out[INET6_ADDRSTRLEN] = {};
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return inet_ntop(AF_INET, buf, out, sizeof(out));
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    return inet_ntop(AF_INET6, buf, out, sizeof(out));
  }
  return "";
}

// One part of a parsed URL, "" when absent.
std::string UrlPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* value = nullptr;
  std::string out;
  if (curl_url_get(u, part, &value, flags) == CURLUE_OK && value != nullptr) out = value;
  curl_free(value);
  return out;
}

}  // namespace

Result<std::vector<std::string>> ResolveHost(const std::string& hostname) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(hostname.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return UnavailableError("cannot resolve " + hostname + ": " + gai_strerror(rc));
  }
  std::vector<std::string> out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (a->ai_family == AF_INET) addr = &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr;
    if (a->ai_family == AF_INET6) addr = &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr;
    if (addr == nullptr || inet_ntop(a->ai_family, addr, text, sizeof(text)) == nullptr) continue;
    if (std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
  }
  freeaddrinfo(res);
  if (out.empty()) return UnavailableError("cannot resolve " + hostname + ": no address");
  return out;
}

bool IsPublicAddress(const std::string& address) {
  uint8_t buf[16];
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) return PublicV4(buf);
  if (inet_pton(AF_INET6, address.c_str(), buf) == 1) return PublicV6(buf);
  return false;
}

Result<std::string> CheckForeignUrl(const std::string& url,
                                    const std::vector<std::string>& registry_addresses,
                                    const Resolver& resolve) {
  CURLU* u = curl_url();
  std::string scheme, user, host, port;
  bool parsed = curl_url_set(u, CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK;
  if (parsed) {
    scheme = UrlPart(u, CURLUPART_SCHEME);
    user = UrlPart(u, CURLUPART_USER) + UrlPart(u, CURLUPART_PASSWORD);
    host = UrlPart(u, CURLUPART_HOST);
    port = UrlPart(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  }
  curl_url_cleanup(u);
  if (!parsed || host.empty() || (scheme != "http" && scheme != "https")) {
    return InvalidArgumentError("foreign URL \"" + url + "\" is not an http(s) URL");
  }
  if (!user.empty()) {
    return InvalidArgumentError("foreign URL \"" + url + "\" carries credentials");
  }
  std::string hostname = host;
  if (hostname.starts_with("[") && hostname.ends_with("]")) {
    hostname = hostname.substr(1, hostname.size() - 2);
  }
  std::vector<std::string> addresses;
  const std::string literal = CanonicalAddress(hostname);
  if (!literal.empty()) {
    addresses.push_back(literal);
  } else {
    ASSIGN_OR_RETURN(addresses, resolve(hostname));
    if (addresses.empty()) return UnavailableError("cannot resolve " + hostname + ": no address");
  }
  std::string pinned;
  for (const std::string& address : addresses) {
    const bool registry_lives_there =
        std::find(registry_addresses.begin(), registry_addresses.end(), address) !=
        registry_addresses.end();
    if (!IsPublicAddress(address) && !registry_lives_there) {
      return PermissionDeniedError("foreign URL host " + host + " is at " + address +
                                   ", a loopback, private or reserved address where the "
                                   "registry does not live");
    }
    pinned += (pinned.empty() ? "" : ",") +
              (address.find(':') != std::string::npos ? "[" + address + "]" : address);
  }
  if (!literal.empty()) return std::string();
  return host + ":" + port + ":" + pinned;
}

}  // namespace hoist::registry
