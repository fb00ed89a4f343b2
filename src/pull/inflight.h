// In-process sharing of work between concurrent pulls: a runtime that pulls several images at
// once through one library transfers each blob and extracts each layer once. Across processes
// the store's file locks do the same; this table makes threads of one process wait for each
// other without holding a worker in a lock or a poll, and lets a pull start all of its own
// work before it waits for anyone else's.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "hoist/status.h"

namespace hoist::pull {

// A claim on one piece of work (named by a key, e.g. the path of the blob it stores). At most
// one live claim per key in the process owns it; the others wait for that claim to end and
// then claim again. The work itself is checked again after a wait: the owner may have failed
// or stopped, and then the next claim owns it and does it.
//
// Thread-safe. A Claim is used by one thread at a time.
class Claim {
 public:
  // Claims `key`: owner() if no live claim owns it.
  static Claim Take(const std::string& key);

  Claim() = default;
  Claim(Claim&& other) noexcept { *this = std::move(other); }
  Claim& operator=(Claim&& other) noexcept;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  // An owner's claim ends here (or when assigned over), waking the claims that wait for it.
  ~Claim();

  bool owner() const { return owner_; }
  // For a claim that does not own its key: blocks until the owning claim ends, then claims
  // again (so owner() may now be true). Cancelled, without a new claim, when either flag (each
  // may be null) becomes true first; they are looked at every 100 ms while waiting.
  Status Wait(const std::atomic<bool>* cancel, const std::atomic<bool>* also_cancel = nullptr);

  struct Entry;

 private:
  Claim(std::string key, std::shared_ptr<Entry> entry, bool owner)
      : key_(std::move(key)), entry_(std::move(entry)), owner_(owner) {}
  void Release();

  std::string key_;
  std::shared_ptr<Entry> entry_;  // the owner's: ended by Release
  bool owner_ = false;
};

}  // namespace hoist::pull
