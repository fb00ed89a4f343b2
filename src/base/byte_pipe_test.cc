#include "base/byte_pipe.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace hoist {
namespace {

using std::chrono::milliseconds;

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

// Waits (at most ~5 s) until `done` is true.
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(milliseconds(10));
  return done();
}

TEST(BytePipe, DeliversEverythingInOrderInBlocks) {
  const std::string in = Pattern(3 << 20);
  std::string out;
  size_t largest = 0;
  std::thread::id sink_thread;
  BytePipe pipe(
      [&](const char* data, size_t n) {
        out.append(data, n);
        largest = std::max(largest, n);
        sink_thread = std::this_thread::get_id();
        return OkStatus();
      },
      64 << 10, 3);
  for (size_t at = 0, step = 1; at < in.size(); at += step, step = step * 3 % 100003 + 1) {
    step = std::min(step, in.size() - at);
    ASSERT_TRUE(pipe.Write(in.data() + at, step).ok());
  }
  ASSERT_TRUE(pipe.Close().ok());
  EXPECT_TRUE(out == in);
  EXPECT_EQ(largest, size_t{64 << 10});
  EXPECT_NE(sink_thread, std::this_thread::get_id());  // the sink ran on the other thread
  EXPECT_TRUE(pipe.Close().ok());                      // idempotent
}

// While the sink is stuck, the writer gets at most the pipe's blocks in, then waits.
TEST(BytePipe, WriterWaitsWhenEveryBlockIsFull) {
  constexpr size_t kBlock = 4096, kBlocks = 3;
  std::atomic<bool> release{false};
  std::atomic<int> sink_calls{0};
  BytePipe pipe(
      [&](const char*, size_t) {
        while (!release) std::this_thread::sleep_for(milliseconds(1));
        ++sink_calls;
        return OkStatus();
      },
      kBlock, kBlocks);
  std::atomic<size_t> written{0};
  const std::string block(kBlock, 'x');
  std::thread writer([&] {
    for (int i = 0; i < 100; ++i) {
      if (!pipe.Write(block.data(), block.size()).ok()) return;
      written += block.size();
    }
  });
  std::this_thread::sleep_for(milliseconds(200));
  // The blocks, plus one the sink took, plus the one the last Write filled.
  EXPECT_LE(written.load(), (kBlocks + 1) * kBlock);
  release = true;
  writer.join();
  EXPECT_EQ(written.load(), 100 * kBlock);
  EXPECT_TRUE(pipe.Close().ok());
  EXPECT_EQ(sink_calls.load(), 100);
}

// A failed sink gets nothing more, and the writer is never left waiting for it: its writes
// return the error at once, however much it still writes.
TEST(BytePipe, SinkErrorReachesTheWriterWithoutBlockingIt) {
  std::atomic<int> sink_calls{0};
  BytePipe pipe(
      [&](const char*, size_t) {
        return ++sink_calls == 2 ? DataLossError("corrupt") : OkStatus();
      },
      1024, 2);
  const std::string chunk(1000, 'y');
  Status last;
  for (int i = 0; i < 100000 && last.ok(); ++i) last = pipe.Write(chunk.data(), chunk.size());
  EXPECT_EQ(last.code(), StatusCode::kDataLoss) << last.ToString();
  for (int i = 0; i < 1000; ++i) {  // 1 MB more, far more than the pipe holds
    EXPECT_EQ(pipe.Write(chunk.data(), chunk.size()).code(), StatusCode::kDataLoss);
  }
  EXPECT_EQ(pipe.Close().code(), StatusCode::kDataLoss);
  EXPECT_EQ(sink_calls.load(), 2);
}

// The writer's side stops the sink: Abort returns once the thread is gone, also while the
// writer is waiting for a free block or the sink for a full one; no sink call starts after.
TEST(BytePipe, AbortStopsTheSinkWhateverItWaitsFor) {
  {
    std::atomic<int> calls{0};
    BytePipe idle([&](const char*, size_t) { return ++calls, OkStatus(); }, 1024, 2);
    idle.Abort();  // the sink waits for data that never comes
    EXPECT_EQ(idle.Close().code(), StatusCode::kCancelled);
    EXPECT_EQ(calls.load(), 0);
  }
  std::atomic<bool> in_sink{false}, release{false};
  std::atomic<int> calls{0};
  auto pipe = std::make_unique<BytePipe>(
      [&](const char*, size_t) {
        ++calls;
        in_sink = true;
        while (!release) std::this_thread::sleep_for(milliseconds(1));
        return OkStatus();
      },
      1024, 2);
  const std::string chunk(1024, 'z');
  std::atomic<bool> writer_done{false};
  Status writer_status;
  std::thread writer([&] {
    for (int i = 0; i < 1000 && writer_status.ok(); ++i) {
      writer_status = pipe->Write(chunk.data(), chunk.size());
    }
    writer_done = true;
  });
  ASSERT_TRUE(WaitFor([&] { return in_sink.load(); }));
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(writer_done.load());  // waits for a free block
  release = true;                    // the sink call under way ends...
  writer.join();                     // (the writer finishes its blocks meanwhile)
  pipe->Abort();                     // ...and Abort drops what waits
  const int after_abort = calls.load();
  EXPECT_EQ(pipe->Close().code(), StatusCode::kCancelled);
  pipe.reset();
  EXPECT_EQ(calls.load(), after_abort);
  EXPECT_LE(after_abort, 1000);
}

}  // namespace
}  // namespace hoist
