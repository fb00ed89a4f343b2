// Hands a stream of bytes from one thread to another through a few fixed blocks, so that the
// two sides of a stream run on two cores: e.g. a layer's download, blob hash and ingest write
// on the caller's thread, its inflate, diff_id hash and extraction on the pipe's own thread.
//
// The writer's bytes are copied into blocks of `block_size`; a full block goes to the sink's
// thread, which passes it to `sink` in order. At most `blocks` blocks exist, so the memory is
// bounded whatever the stream's length; Write blocks while all of them wait for the sink.
//
// Errors go both ways. Once the sink fails, it gets nothing more: Write drops its bytes and
// returns that error (without blocking), and so does Close. The writer's side stops the sink
// by Abort (or by destroying the pipe): a sink call under way finishes, no other one starts,
// and Abort returns once the thread is gone. Close and Abort are idempotent.
//
// Thread safety: one writer thread calls Write, Close and Abort; `sink` runs on the pipe's own
// thread only, one call at a time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "hoist/status.h"

namespace hoist {

class BytePipe {
 public:
  using Sink = std::function<Status(const char* data, size_t n)>;
  BytePipe(Sink sink, size_t block_size, size_t blocks);
  ~BytePipe() { Abort(); }
  BytePipe(const BytePipe&) = delete;
  BytePipe& operator=(const BytePipe&) = delete;

  // Copies the n bytes into the pipe. The sink's error, once it has failed.
  Status Write(const char* data, size_t n);
  // Hands over the last bytes, waits until the sink has had them all, and returns the sink's
  // status (Cancelled after Abort).
  Status Close();
  // Stops the sink's thread without handing over what is left (see above).
  void Abort();

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t size = 0;
  };
  // Hands `filling_` to the sink's thread (waiting for a free block first); false if the sink
  // failed or the pipe was aborted.
  bool Flush(std::unique_lock<std::mutex>& lock);
  void Run();

  const Sink sink_;
  const size_t block_size_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Block> free_;  // guarded by mu_
  std::deque<Block> full_;   // handed over, in order; guarded by mu_
  Block filling_;            // the writer's; taken from free_
  bool closed_ = false;      // no more blocks will come; guarded by mu_
  bool aborted_ = false;     // guarded by mu_
  bool busy_ = false;        // the sink is working on a block; guarded by mu_
  Status status_;            // the sink's first error; guarded by mu_
  std::thread thread_;
};

}  // namespace hoist
