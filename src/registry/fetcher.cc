#include "registry/fetcher.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/auth.h"
#include "registry/foreign_url.h"

namespace hoist::registry {
namespace {

using std::chrono::milliseconds;

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// "41.2 MB", "512 kB", "17 B" (decimal units, as docker prints sizes).
std::string ShortSize(int64_t bytes) {
  char buf[32];
  if (bytes >= 1000 * 1000) {
    std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  } else if (bytes >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.1f kB", static_cast<double>(bytes) / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(bytes));
  }
  return buf;
}

// "2s", "0.2s", "20ms".
std::string ShortDelay(milliseconds d) {
  char buf[32];
  if (d.count() < 100) {
    std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(d.count()));
  } else if (d.count() < 1000) {
    std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(d.count()) / 1000);
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>((d.count() + 500) / 1000));
  }
  return buf;
}

// What went wrong, in a few words, for the retry line.
std::string ShortReason(const Status& s) {
  const std::string& m = s.message();
  auto has = [&](const char* text) { return m.find(text) != std::string::npos; };
  if (has("reset by peer") || has("Connection reset")) return "connection reset";
  if (has("timed out")) return "timed out";
  if (has("transfer closed") || has("Partial file") || has("partial file")) {
    return "connection closed early";
  }
  if (has("Couldn't connect") || has("Failed to connect")) return "connection refused";
  if (size_t at = m.find("HTTP "); at != std::string::npos && at + 8 <= m.size()) {
    return m.substr(at, 8);
  }
  std::string out = m.size() > 80 ? m.substr(0, 77) + "..." : m;
  return out;
}

uint64_t Random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

bool IsRetryable(const Status& s) { return s.code() == StatusCode::kUnavailable; }

std::optional<milliseconds> ParseRetryAfter(std::string_view value,
                                            std::chrono::system_clock::time_point now) {
  value = TrimSpace(value);
  if (value.empty()) return std::nullopt;
  if (AllDigits(value)) return std::chrono::seconds(std::stoll(std::string(value)));
  // An HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"); curl_getdate also reads the obsolete forms.
  const time_t when = curl_getdate(std::string(value).c_str(), nullptr);
  if (when < 0) return std::nullopt;
  auto delta = std::chrono::system_clock::from_time_t(when) - now;
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(delta));
}

milliseconds RetryDelay(const RetryPolicy& policy, int retry,
                        std::optional<milliseconds> retry_after, uint64_t random) {
  if (retry_after) return std::min(*retry_after, policy.max_delay);
  milliseconds d = policy.base_delay;
  for (int i = 1; i < retry && d < policy.max_delay; ++i) d *= 2;
  d = std::min(d, policy.max_delay);
  const int64_t half = d.count() / 2;
  return milliseconds(half + (half > 0 ? static_cast<int64_t>(random % (half + 1)) : 0));
}

Result<int64_t> BodyOffset(const HttpResponse& head, int64_t offset, int64_t size) {
  if (head.status == 200) return 0;
  const std::string range = head.Header("content-range");
  auto bad = [&]() {
    return UnavailableError("answer to Range: bytes=" + std::to_string(offset) +
                            "- has Content-Range " + Quote(range));
  };
  if (head.status != 206) return bad();
  // "bytes FIRST-LAST/TOTAL", nothing else.
  std::string_view v = range;
  if (!v.starts_with("bytes ")) return bad();
  v.remove_prefix(6);
  const size_t dash = v.find('-');
  const size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return bad();
  }
  std::string_view first = v.substr(0, dash), last = v.substr(dash + 1, slash - dash - 1),
                   total = v.substr(slash + 1);
  if (!AllDigits(first) || !AllDigits(last)) return bad();
  if (std::stoll(std::string(first)) != offset) return bad();
  if (size >= 0) {
    if (!AllDigits(total) || std::stoll(std::string(total)) != size ||
        std::stoll(std::string(last)) != size - 1) {
      return bad();
    }
  } else if (total != "*" && !AllDigits(total)) {
    return bad();
  }
  return offset;
}

Fetcher::Fetcher(RetryPolicy policy, const std::atomic<bool>* cancel,
                 const std::atomic<bool>* also_cancel)
    : policy_(policy), cancel_(cancel), also_cancel_(also_cancel) {}

Status Fetcher::Wait(milliseconds delay) const {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (true) {
    if ((cancel_ != nullptr && cancel_->load()) ||
        (also_cancel_ != nullptr && also_cancel_->load())) {
      return CancelledError("cancelled");
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return OkStatus();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, milliseconds(20)));
  }
}

Status Fetcher::Retry(HttpClient& http, const RetryNotice& notice,
                      const std::function<Status(int64_t* held)>& attempt, const bool* local) {
  const auto started = std::chrono::steady_clock::now();
  for (int n = 1;; ++n) {
    int64_t held = 0;
    Status s = attempt(&held);
    if (s.ok() || *local || s.code() == StatusCode::kCancelled) return s;
    if (!IsRetryable(s) || http.last_error_permanent()) {
      remote_failure_ = true;
      return s;
    }
    const milliseconds delay = RetryDelay(
        policy_, n, ParseRetryAfter(http.last_retry_after(), std::chrono::system_clock::now()),
        Random());
    if (n >= policy_.max_attempts ||
        std::chrono::steady_clock::now() + delay - started > policy_.max_time) {
      remote_failure_ = true;
      if (n == 1) return s;
      return Status(s.code(), s.message() + " (gave up after " + std::to_string(n) + " attempts)");
    }
    if (notice) {
      notice("Retrying in " + ShortDelay(delay) + " (" + ShortReason(s) +
             (held > 0 ? " after " + ShortSize(held) : "") + ")");
    }
    RETURN_IF_ERROR(Wait(delay));
  }
}

Status Fetcher::Call(HttpClient& http, const RetryNotice& notice,
                     const std::function<Status()>& op) {
  const bool local = false;
  return Retry(
      http, notice, [&](int64_t*) { return op(); }, &local);
}

Status Fetcher::CallUnlessFinal(HttpClient& http, const RetryNotice& notice,
                                const std::function<Status(bool* final)>& op) {
  bool final = false;
  return Retry(
      http, notice, [&](int64_t*) { return op(&final); }, &final);
}

Status Fetcher::FetchBlob(HttpClient& http, const BlobSource& source, int64_t size,
                          const BlobSink& sink, const RetryNotice& notice) {
  int64_t held = sink.held;  // bytes the sink holds since its last restart
  bool use_range = true;     // false once a server answered a Range request wrongly
  bool local = false;        // the sink failed: no retry
  auto sink_call = [&](Status s) {
    if (!s.ok()) local = true;
    return s;
  };
  return Retry(
      http, notice,
      [&](int64_t* report) -> Status {
        if (size >= 0 && held == size) return OkStatus();  // all here; the caller verifies
        if (held > 0 && !use_range) {
          RETURN_IF_ERROR(sink_call(sink.restart()));
          held = 0;
        }
        const int64_t from = held;
        BodyStart start = [&](const HttpResponse& head) -> Status {
          auto at = BodyOffset(head, from, size);
          if (!at.ok()) {
            use_range = false;
            return at.status();
          }
          if (*at == 0 && held > 0) {  // the server ignored Range: the whole blob comes again
            RETURN_IF_ERROR(sink_call(sink.restart()));
            held = 0;
          }
          return OkStatus();
        };
        BodySink write = [&](const char* data, size_t n) -> Status {
          RETURN_IF_ERROR(sink_call(sink.write(data, n)));
          held += static_cast<int64_t>(n);
          return OkStatus();
        };
        Status s = source(http, from, start, write);
        *report = held;
        return s;
      },
      &local);
}

Status Fetcher::FetchFromSources(Repository& repo, HttpClient& http, const Descriptor& d,
                                 const std::vector<std::string>& urls, const RetryNotice& notice,
                                 const std::function<Status(const SourceFetch&)>& attempt) {
  std::string failed;  // what went wrong at the URLs, for the registry's error
  if (!urls.empty()) {
    // A URL may point where the registry itself lives, even on loopback or a private network.
    const std::string host = UrlHostname("http://" + repo.registry().host());
    auto resolved = ResolveHost(host.starts_with("[") ? host.substr(1, host.size() - 2) : host);
    const std::vector<std::string> registry_addresses =
        resolved.ok() ? *resolved : std::vector<std::string>{};
    for (const std::string& url : urls) {
      Status s = attempt([&](const BlobSink& sink) {
        return FetchBlob(
            http,
            [&](HttpClient& h, int64_t offset, const BodyStart& start, const BodySink& body) {
              return GetForeignUrl(h, url, registry_addresses, offset, start, body);
            },
            d.size, sink, notice);
      });
      if (s.ok() || s.code() == StatusCode::kCancelled) return s;
      failed += (failed.empty() ? "" : "; ") + TerminalSafe(url) + ": " + s.message();
    }
  }
  Status s = attempt([&](const BlobSink& sink) {
    return FetchBlob(
        http,
        [&](HttpClient& h, int64_t offset, const BodyStart& start, const BodySink& body) {
          return repo.GetBlob(h, d.digest, offset, start, body);
        },
        d.size, sink, notice);
  });
  if (!s.ok() && !failed.empty()) return s.WithContext("foreign URLs failed (" + failed + ")");
  return s;
}

}  // namespace hoist::registry
