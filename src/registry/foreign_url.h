// Where a foreign (non-distributable) layer's `urls` may send hoist. A manifest is written by
// whoever pushed the image, so its URLs must not turn hoist into a client of the services
// around it (a metadata endpoint, an admin port on loopback, an intranet host):
//   - http and https only, and no user info ("http://user:pw@host/") in the URL;
//   - every address the host resolves to must be public (IsPublicAddress), or be one of the
//     addresses of the registry the manifest came from (it lives there already);
//   - the request is pinned to the addresses that were checked, so a second DNS answer cannot
//     swap in another (DNS rebinding).
// The request itself never carries credentials (see GetForeignUrl in registry.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hoist/status.h"

namespace hoist::registry {

// Every address (numeric text, "93.184.216.34", "2001:db8::1") of `hostname` (a name or an
// address literal, IPv6 without brackets). Unavailable when it does not resolve.
using Resolver = std::function<Result<std::vector<std::string>>(const std::string& hostname)>;
Result<std::vector<std::string>> ResolveHost(const std::string& hostname);

// False for the addresses a foreign URL must not reach: unspecified, loopback, private (RFC
// 1918, IPv6 unique local), link-local, shared (100.64/10), benchmarking (198.18/15),
// IETF-reserved (192.0.0/24), multicast, reserved and broadcast (240/4), and IPv6 forms that
// embed an IPv4 address (mapped, compatible, NAT64) unless that address is public. Text that
// is not an IP address is not public either.
bool IsPublicAddress(const std::string& address);

// Checks `url` as above. On success, the CURLOPT_RESOLVE entry ("host:port:addr,addr") that
// pins the request to the checked addresses, or "" when the host is an address literal.
// InvalidArgument for a URL that is not http(s) or has user info; PermissionDenied naming the
// host and the address for a refused address; the resolver's error when it fails.
Result<std::string> CheckForeignUrl(const std::string& url,
                                    const std::vector<std::string>& registry_addresses,
                                    const Resolver& resolve = ResolveHost);

}  // namespace hoist::registry
