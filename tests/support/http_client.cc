#include "support/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "base/strings.h"

namespace hoist::testing {
namespace {

constexpr size_t kMaxBody = 256u << 20;

struct Collected {
  ClientResponse* response;
  bool too_big = false;
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* c = static_cast<Collected*>(user);
  size_t n = size * nmemb;
  if (c->response->body.size() + n > kMaxBody) {
    c->too_big = true;
    return 0;  // aborts the transfer
  }
  c->response->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* c = static_cast<Collected*>(user);
  size_t n = size * nmemb;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    c->response->headers.clear();  // a new response (after 100 Continue, say)
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  c->response->headers[ToLower(TrimSpace(line.substr(0, colon)))] =
      std::string(TrimSpace(line.substr(colon + 1)));
  return n;
}

}  // namespace

Result<ClientResponse> HttpCall(std::string_view method, const std::string& url,
                                const std::vector<std::string>& headers, const std::string& body,
                                const std::string& basic_creds, int timeout_s) {
  static std::once_flag init_once;
  std::call_once(init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return InternalError("curl_easy_init failed");
  CURL* h = curl.get();
  ClientResponse response;
  Collected collected{&response};
  const std::string method_str(method);

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &collected);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &collected);
  if (method_str == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method_str != "GET" || !body.empty()) {
    if (!body.empty() || method_str == "PUT" || method_str == "POST" || method_str == "PATCH") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method_str.c_str());
  }
  if (!basic_creds.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERPWD, basic_creds.c_str());
  }
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (const std::string& header : headers) list = curl_slist_append(list, header.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> owned_list(list, curl_slist_free_all);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

  CURLcode rc = curl_easy_perform(h);
  if (collected.too_big) {
    return ResourceExhaustedError(method_str + " " + url + ": body over 256 MiB");
  }
  if (rc != CURLE_OK) {
    return UnavailableError(method_str + " " + url + ": " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace hoist::testing
