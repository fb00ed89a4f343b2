// A minimal blocking HTTP client over libcurl for the test harness: the independent side of
// the tests, sharing no code with hoist's own registry client. Plain http to loopback only;
// never follows redirects, never uses a proxy.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/status.h"

namespace hoist::testing {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; the last value wins
  std::string body;                            // empty for HEAD
};

// Sends one request. `headers` are "Name: value" lines; `basic_creds` is "user:pass" or empty.
// A non-empty body (or a PUT/POST/PATCH) is sent with its Content-Length. Transport failures
// are Unavailable; any HTTP status is a success here (check `status`). Bodies over 256 MiB are
// ResourceExhausted. Total time is bounded by `timeout_s`.
Result<ClientResponse> HttpCall(std::string_view method, const std::string& url,
                                const std::vector<std::string>& headers = {},
                                const std::string& body = "", const std::string& basic_creds = "",
                                int timeout_s = 30);

}  // namespace hoist::testing
