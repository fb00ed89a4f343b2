#include "registry/fetcher.h"

#include <gtest/gtest.h>

#include <vector>

namespace hoist::registry {
namespace {

using std::chrono::milliseconds;

RetryPolicy Fast(int attempts = 4) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.base_delay = milliseconds(1);
  p.max_delay = milliseconds(5);
  return p;
}

TEST(RetryAfterTest, SecondsAndHttpDate) {
  const auto now = std::chrono::system_clock::from_time_t(1445412480);  // 2015-10-21 07:28:00
  EXPECT_EQ(ParseRetryAfter("120", now), milliseconds(120000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), milliseconds(30000));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), milliseconds(0));  // past
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", now), std::nullopt);
}

TEST(RetryDelayTest, ExponentialJitteredAndCapped) {
  RetryPolicy p;
  p.base_delay = milliseconds(100);
  p.max_delay = milliseconds(1000);
  for (uint64_t r : {0ULL, 7ULL, 123456789ULL, ~0ULL}) {
    for (int retry = 1; retry <= 8; ++retry) {
      const int64_t full = std::min<int64_t>(100LL << (retry - 1), 1000);
      const milliseconds d = RetryDelay(p, retry, std::nullopt, r);
      EXPECT_GE(d.count(), full / 2) << retry;
      EXPECT_LE(d.count(), full) << retry;
    }
  }
  // Retry-After wins over the backoff, within the cap.
  EXPECT_EQ(RetryDelay(p, 1, milliseconds(700), 0), milliseconds(700));
  EXPECT_EQ(RetryDelay(p, 1, milliseconds(3600000), 0), milliseconds(1000));
}

HttpResponse Head(int status, std::string content_range = "") {
  HttpResponse r;
  r.status = status;
  if (!content_range.empty()) r.headers["content-range"] = {content_range};
  return r;
}

TEST(BodyOffsetTest, StrictContentRange) {
  EXPECT_EQ(*BodyOffset(Head(200), 100, 1000), 0);  // Range ignored: the whole blob
  EXPECT_EQ(*BodyOffset(Head(206, "bytes 100-999/1000"), 100, 1000), 100);
  EXPECT_EQ(*BodyOffset(Head(206, "bytes 100-999/*"), 100, -1), 100);
  for (const char* bad : {"", "bytes 0-999/1000", "bytes 100-998/1000", "bytes 100-999/1001",
                          "bytes 100-999/*", "bytes=100-999/1000", "bytes 100-999", "items 1-2/3",
                          "bytes -999/1000", "bytes 100-x/1000"}) {
    auto r = BodyOffset(Head(206, bad), 100, 1000);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << bad;
    }
  }
  EXPECT_FALSE(BodyOffset(Head(204), 100, 1000).ok());
}

TEST(FetcherTest, RetriesOnlyRemoteTransientErrors) {
  HttpClient http;
  Fetcher fetcher(Fast(4), nullptr, nullptr);
  std::vector<std::string> notices;
  auto notice = [&](const std::string& line) { notices.push_back(line); };

  int calls = 0;
  Status s = fetcher.Call(http, notice, [&] {
    ++calls;
    return calls < 3 ? UnavailableError("GET x: HTTP 503") : OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].rfind("Retrying in ", 0), 0u) << notices[0];
  EXPECT_NE(notices[0].find("(HTTP 503)"), std::string::npos) << notices[0];

  // Bounded: max_attempts in all, and the error says so.
  calls = 0;
  s = fetcher.Call(http, nullptr, [&] {
    ++calls;
    return UnavailableError("Connection reset by peer");
  });
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("gave up after 4 attempts"), std::string::npos) << s.message();

  // Never retried: 400, 401 after auth, 403, 404, digest/size mismatch, local errors.
  for (const Status& final :
       {InvalidArgumentError("HTTP 400"), UnauthenticatedError("HTTP 401"),
        PermissionDeniedError("HTTP 403"), NotFoundError("HTTP 404"),
        DataLossError("digest mismatch"), ResourceExhaustedError("no space left on device"),
        InternalError("write: Input/output error")}) {
    calls = 0;
    s = fetcher.Call(http, nullptr, [&] {
      ++calls;
      return final;
    });
    EXPECT_EQ(calls, 1) << final.message();
    EXPECT_EQ(s, final);
  }
  EXPECT_TRUE(fetcher.remote_failure());
}

TEST(FetcherTest, TotalTimeIsBounded) {
  RetryPolicy p = Fast(1000);
  p.base_delay = milliseconds(20);
  p.max_delay = milliseconds(20);
  p.max_time = milliseconds(200);
  HttpClient http;
  Fetcher fetcher(p, nullptr, nullptr);
  int calls = 0;
  const auto started = std::chrono::steady_clock::now();
  Status s = fetcher.Call(http, nullptr, [&] {
    ++calls;
    return UnavailableError("HTTP 503");
  });
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(1000));
  EXPECT_GT(calls, 2);
  EXPECT_LT(calls, 40);
}

TEST(FetcherTest, CancelEndsTheWait) {
  RetryPolicy p = Fast(3);
  p.base_delay = p.max_delay = milliseconds(60000);
  std::atomic<bool> cancel{false};
  HttpClient http;
  Fetcher fetcher(p, &cancel, nullptr);
  Status s = fetcher.Call(http, nullptr, [&] {
    cancel = true;
    return UnavailableError("HTTP 503");
  });
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
}

// A blob served from memory. Each call is one "request": it may ignore Range, lie in
// Content-Range, or drop the connection after `cut` bytes.
struct FakeServer {
  std::string blob{};
  bool honour_range = true;
  std::string forced_content_range{};  // non-empty: sent with every 206
  std::vector<int64_t> cuts{};         // per request: drop after this many body bytes (-1: none)
  std::vector<int64_t> offsets{};      // what each request asked for
  int64_t sent = 0;

  Status Get(int64_t offset, const BodyStart& start, const BodySink& sink) {
    const size_t n = offsets.size();
    offsets.push_back(offset);
    HttpResponse head;
    int64_t from = 0;
    if (offset > 0 && honour_range) {
      head.status = 206;
      from = offset;
      head.headers["content-range"] = {forced_content_range.empty()
                                           ? "bytes " + std::to_string(offset) + "-" +
                                                 std::to_string(blob.size() - 1) + "/" +
                                                 std::to_string(blob.size())
                                           : forced_content_range};
    } else {
      head.status = 200;
    }
    if (Status s = start(head); !s.ok()) return s;
    int64_t len = static_cast<int64_t>(blob.size()) - from;
    const bool cut = n < cuts.size() && cuts[n] >= 0 && cuts[n] < len;
    if (cut) len = cuts[n];
    for (int64_t i = 0; i < len; i += 1000) {
      const int64_t k = std::min<int64_t>(1000, len - i);
      sent += k;
      if (Status s = sink(blob.data() + from + i, static_cast<size_t>(k)); !s.ok()) return s;
    }
    return cut ? UnavailableError("GET blob: Recv failure: Connection reset by peer") : OkStatus();
  }
};

struct Collected {
  std::string bytes;  // may start with data kept from an earlier fetch
  int restarts = 0;
  BlobSink Sink() {
    return BlobSink{[this] {
                      ++restarts;
                      bytes.clear();
                      return OkStatus();
                    },
                    [this](const char* d, size_t n) {
                      bytes.append(d, n);
                      return OkStatus();
                    },
                    static_cast<int64_t>(bytes.size())};
  }
};

std::string Blob() {
  std::string b(10000, '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i * 7 + i / 256);
  return b;
}

Status Fetch(Fetcher& f, HttpClient& http, FakeServer& server, Collected& out,
             std::vector<std::string>* notices = nullptr) {
  return f.FetchBlob(
      http,
      [&](HttpClient&, int64_t offset, const BodyStart& start, const BodySink& sink) {
        return server.Get(offset, start, sink);
      },
      static_cast<int64_t>(server.blob.size()), out.Sink(),
      [&](const std::string& line) {
        if (notices != nullptr) notices->push_back(line);
      });
}

TEST(FetcherTest, ResumesWithRangeAfterAReset) {
  HttpClient http;
  Fetcher fetcher(Fast(), nullptr, nullptr);
  FakeServer server;
  server.blob = Blob();
  server.cuts = {4000, 3000};
  Collected out;
  std::vector<std::string> notices;
  ASSERT_TRUE(Fetch(fetcher, http, server, out, &notices).ok());
  EXPECT_EQ(out.bytes, server.blob);
  EXPECT_EQ(out.restarts, 0);
  EXPECT_EQ(server.offsets, (std::vector<int64_t>{0, 4000, 7000}));
  EXPECT_EQ(server.sent, 10000) << "nothing fetched twice";
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_NE(notices[0].find("(connection reset after 4.0 kB)"), std::string::npos) << notices[0];
}

// A sink that holds data kept from an earlier fetch (a pull that died): the first request asks
// for the rest only; a sink that holds all of it needs no request.
TEST(FetcherTest, StartsFromWhatTheSinkHolds) {
  HttpClient http;
  Fetcher fetcher(Fast(), nullptr, nullptr);
  FakeServer server;
  server.blob = Blob();
  Collected out;
  out.bytes = server.blob.substr(0, 6500);
  ASSERT_TRUE(Fetch(fetcher, http, server, out).ok());
  EXPECT_EQ(out.bytes, server.blob);
  EXPECT_EQ(server.offsets, (std::vector<int64_t>{6500}));
  EXPECT_EQ(server.sent, 3500);

  FakeServer idle;
  idle.blob = Blob();
  ASSERT_TRUE(Fetch(fetcher, http, idle, out).ok());
  EXPECT_TRUE(idle.offsets.empty());

  // A server that ignores Range: the kept data is dropped and the whole blob comes.
  FakeServer whole;
  whole.blob = Blob();
  whole.honour_range = false;
  Collected partial;
  partial.bytes = whole.blob.substr(0, 2000);
  ASSERT_TRUE(Fetch(fetcher, http, whole, partial).ok());
  EXPECT_EQ(partial.bytes, whole.blob);
  EXPECT_EQ(partial.restarts, 1);
}

TEST(FetcherTest, ServerIgnoringRangeRestartsTheSink) {
  HttpClient http;
  Fetcher fetcher(Fast(), nullptr, nullptr);
  FakeServer server;
  server.blob = Blob();
  server.honour_range = false;
  server.cuts = {4000};
  Collected out;
  ASSERT_TRUE(Fetch(fetcher, http, server, out).ok());
  EXPECT_EQ(out.bytes, server.blob);
  EXPECT_EQ(out.restarts, 1);
  EXPECT_EQ(server.offsets, (std::vector<int64_t>{0, 4000}));
}

TEST(FetcherTest, WrongContentRangeFallsBackToTheWholeBlob) {
  HttpClient http;
  Fetcher fetcher(Fast(), nullptr, nullptr);
  FakeServer server;
  server.blob = Blob();
  server.forced_content_range = "bytes 0-9999/10000";  // not what was asked
  server.cuts = {4000};
  Collected out;
  ASSERT_TRUE(Fetch(fetcher, http, server, out).ok());
  EXPECT_EQ(out.bytes, server.blob);
  EXPECT_EQ(out.restarts, 1);
  // The bad 206 is refused before any of its bytes reach the sink; then a plain GET.
  EXPECT_EQ(server.offsets, (std::vector<int64_t>{0, 4000, 0}));
}

TEST(FetcherTest, SinkErrorsAreLocalAndNeverRetried) {
  HttpClient http;
  Fetcher fetcher(Fast(), nullptr, nullptr);
  FakeServer server;
  server.blob = Blob();
  int calls = 0;
  // Even an error that carries the Unavailable code: it came from the sink, not the network.
  Status s = fetcher.FetchBlob(
      http,
      [&](HttpClient&, int64_t offset, const BodyStart& start, const BodySink& sink) {
        ++calls;
        return server.Get(offset, start, sink);
      },
      10000,
      BlobSink{[] { return OkStatus(); },
               [](const char*, size_t) { return UnavailableError("write: local trouble"); }},
      nullptr);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(fetcher.remote_failure());
}

}  // namespace
}  // namespace hoist::registry
