#include "transfer/dispatch.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace hoist::transfer {
namespace {

TEST(ForEachParallel, RunsEveryItemWithinTheBound) {
  std::atomic<bool> cancel{false};
  std::atomic<int> running{0}, peak{0}, done{0};
  Status s = ForEachParallel(20, 3, &cancel, nullptr, [&](size_t, registry::HttpClient&) {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {}
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --running;
    ++done;
    return OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(done.load(), 20);
  EXPECT_LE(peak.load(), 3);
}

TEST(ForEachParallel, FirstErrorCancelsTheRest) {
  std::atomic<bool> cancel{false};
  std::atomic<int> started{0};
  Status s = ForEachParallel(100, 2, &cancel, nullptr, [&](size_t i, registry::HttpClient&) -> Status {
    ++started;
    if (i == 3) return DataLossError("item 3 broke");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (cancel.load()) return CancelledError("cancelled");
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "item 3 broke");
  EXPECT_LT(started.load(), 100);
}

TEST(ForEachParallel, ZeroItems) {
  std::atomic<bool> cancel{false};
  EXPECT_TRUE(ForEachParallel(0, 4, &cancel, nullptr, [](size_t, registry::HttpClient&) {
    return InternalError("never");
  }).ok());
}

TEST(ForEachParallel, OutsideCancelStopsEverything) {
  std::atomic<bool> cancel{false}, outside{false};
  std::atomic<int> started{0};
  Status s = ForEachParallel(100, 2, &cancel, &outside, [&](size_t i, registry::HttpClient&) {
    ++started;
    if (i == 5) outside.store(true);
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_LT(started.load(), 100);
}

}  // namespace
}  // namespace hoist::transfer
