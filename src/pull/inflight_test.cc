#include "pull/inflight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hoist::pull {
namespace {

TEST(ClaimTest, OneOwnerPerKey) {
  Claim first = Claim::Take("inflight-test/one");
  Claim second = Claim::Take("inflight-test/one");
  Claim other = Claim::Take("inflight-test/other");
  EXPECT_TRUE(first.owner());
  EXPECT_FALSE(second.owner());
  EXPECT_TRUE(other.owner());
}

TEST(ClaimTest, WaiterOwnsOnceTheOwnerEnds) {
  auto owner = std::make_unique<Claim>(Claim::Take("inflight-test/wait"));
  Claim waiter = Claim::Take("inflight-test/wait");
  ASSERT_FALSE(waiter.owner());
  std::atomic<bool> ended{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ended = true;
    owner.reset();
  });
  ASSERT_TRUE(waiter.Wait(nullptr).ok());
  EXPECT_TRUE(ended.load());
  EXPECT_TRUE(waiter.owner());
  releaser.join();
}

TEST(ClaimTest, MovingAClaimMovesItsOwnership) {
  Claim a = Claim::Take("inflight-test/move");
  Claim b = std::move(a);
  EXPECT_FALSE(a.owner());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(b.owner());
  EXPECT_FALSE(Claim::Take("inflight-test/move").owner());
  b = Claim();  // assigning over an owner ends its claim
  EXPECT_TRUE(Claim::Take("inflight-test/move").owner());
}

TEST(ClaimTest, WaitEndsWhenCancelled) {
  Claim owner = Claim::Take("inflight-test/cancel");
  Claim waiter = Claim::Take("inflight-test/cancel");
  std::atomic<bool> cancel{false};
  std::atomic<bool> other{true};
  EXPECT_EQ(waiter.Wait(nullptr, &other).code(), StatusCode::kCancelled);
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel = true;
  });
  EXPECT_EQ(waiter.Wait(&cancel).code(), StatusCode::kCancelled);
  EXPECT_FALSE(waiter.owner());
  canceller.join();
}

// Many threads wanting the same work: one at a time does it, and every one gets its turn.
TEST(ClaimTest, OwnersNeverOverlap) {
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        Claim claim = Claim::Take("inflight-test/many");
        while (!claim.owner()) ASSERT_TRUE(claim.Wait(nullptr).ok());
        int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();
        --inside;
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(most.load(), 1);
  EXPECT_EQ(done.load(), 160);
}

}  // namespace
}  // namespace hoist::pull
