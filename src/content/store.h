// The content-addressed store: verified blobs and the image records (index.json) of an OCI
// image layout (see layout.h for the names on disk).
//
// A blob becomes visible only through Writer::Commit, after its size and digest were checked
// and its data fsynced, by one rename; so every file under blobs/ is complete and correct.
// One writer per digest at a time across all processes (an advisory lock per digest), and
// index.json is changed only under its own lock, by writing a new file and renaming it.
//
// Every change to the disk goes through the FileSystem given to Open, so tests can inject
// faults. Store is thread-safe; a Writer belongs to one thread at a time.
//
// Permissions. The store is its owner's alone (as /var/lib/docker is root's): it may hold
// setuid binaries, device nodes and private images.
//  - STORE/ is 0700, owned by the running user: nobody else can reach anything inside, so the
//    modes below it (blobs 0444, image files as the image says) never open it to others.
//    Directories hoist creates inside are 0700 too, files 0600 (blobs 0444, read-only).
//  - Open refuses (FailedPrecondition, naming the path and saying how to fix it) a store
//    directory, or any directory hoist uses inside it, that is not owned by the running user or
//    that is writable by group or others: someone else could have planted entries there (a
//    "layer", an ingest/ symlink) or could swap them. An existing store of ours that others can
//    merely read or enter (e.g. 0755, as older hoist versions made it) is tightened to 0700.
//  - Every change is made relative to directory fds opened with O_NOFOLLOW|O_DIRECTORY and
//    checked as above, walking from the root's fd; no rename or unlink goes through a path
//    whose components someone could swap. Only the root path itself is resolved by the kernel
//    (its parents may be symlinks; the root itself may not).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "content/digester.h"
#include "content/layout.h"
#include "hoist/descriptor.h"
#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::content {

class Writer;

// Options of Store::OpenWriter.
struct WriterOptions {
  // Called once, before blocking, when another writer of the digest holds its lock.
  std::function<void()> on_wait;
  // Gets the partial data a previous writer left (see OpenWriter), in order, as it is
  // re-read: e.g. to extract a layer from it before the rest arrives. An error ends
  // OpenWriter with it (the partial data stays).
  std::function<Status(const char*, size_t)> replay;
  // False: start from nothing, emptying any partial data (for a source that is to send the
  // whole blob).
  bool resume = true;
};

class Store {
 public:
  // Opens the store at `root`, creating what is missing (the root 0700, its missing parents
  // 0755): oci-layout, index.json (an empty index), blobs/sha256/, ingest/, locks/. Safe when
  // several processes do it at once. An existing oci-layout or index.json that is not valid is
  // DataLoss; a root or directory that is not private (see above) is FailedPrecondition. `fs`
  // must outlive the Store and its Writers.
  static Result<std::unique_ptr<Store>> Open(std::string root,
                                             FileSystem* fs = FileSystem::Default());

  const Layout& layout() const { return layout_; }
  FileSystem* fs() const { return fs_; }

  // Opens the store directory `path` (one of layout()'s directory paths) by a walk from the
  // root's fd, each component with O_NOFOLLOW|O_DIRECTORY and checked by CheckPrivateDir.
  // With `create`, missing components are made (0700); without, a missing one is NotFound.
  Result<UniqueFd> OpenDir(const std::string& path, bool create) const;

  // True if a committed blob with this digest exists (and has this size, when size >= 0).
  bool Has(const Digest& d, int64_t size = -1) const;
  // The size of a committed blob; NotFound if there is none.
  Result<int64_t> BlobSize(const Digest& d) const;
  // The whole blob, checked against its digest again (DataLoss if the file was damaged).
  // NotFound if absent; ResourceExhausted if larger than max_bytes.
  Result<std::string> ReadBlob(const Digest& d, size_t max_bytes) const;

  // Starts writing the blob `d`, which must have this size when expected_size >= 0.
  // Blocks until no other thread or process writes the same digest (an flock on
  // locks/<alg>-<hex>.lock, held for the Writer's life). If the blob is then already
  // committed, the Writer reports already_committed() and needs nothing written; if it is
  // committed with another size than expected_size, that is DataLoss. Otherwise data goes to
  // ingest/<alg>-<hex>/data, and the Writer resumes: what a previous writer of this digest left
  // there (it failed or its process died) is re-read to rebuild the hash, and written() starts
  // at its size; Write appends. Partial data larger than expected_size is discarded. The data
  // is never visible as a blob until Commit verified all of it.
  Result<std::unique_ptr<Writer>> OpenWriter(const Digest& d, int64_t expected_size,
                                             const WriterOptions& options = {});
  // A whole blob in one call (manifests, configs), verified like Writer::Commit (the digest
  // before anything is written). OK if the blob was already there.
  Status WriteBlob(const Digest& d, std::string_view bytes);

  // The storage of the image records (index.json entries); what a record holds and means is
  // image/records.h's, which writes and reads them through these.
  //
  // Records `manifest` under ref_name in index.json: the entry whose annotation
  // org.opencontainers.image.ref.name equals ref_name is replaced (or one is added); other
  // entries and fields are kept. The stored descriptor is `manifest` with that annotation
  // added. The manifest blob must be committed (FailedPrecondition otherwise); ref_name must
  // satisfy IsValidRefName (InvalidArgument). Serialized across processes by
  // locks/index.lock; the new index is written to index.json.tmp, fsynced and renamed.
  Status PutRef(const std::string& ref_name, const Descriptor& manifest);
  // Removes the entry named ref_name from index.json (and any duplicates), under
  // locks/index.lock like PutRef; NotFound if there is none. No blob is removed: what no record
  // references any more is gc's to reclaim.
  Status RemoveRef(const std::string& ref_name);
  // Every entry of index.json as stored (annotations included), in file order.
  Result<std::vector<Descriptor>> ListRefs() const;
  // The entry named ref_name, or nullopt.
  Result<std::optional<Descriptor>> GetRef(const std::string& ref_name) const;

  // The lock between pulls and garbage collection (locks/gc.lock). A pull holds it shared from
  // before it fetches its first blob until after its record is written, so everything it has
  // fetched is protected while no record references it yet; gc (and verify --repair) hold it
  // exclusively, so while they decide what no record references, no pull is half-way. Pulls
  // do not exclude each other. Unlike FileLock's files, gc.lock is never removed (a shared
  // lock has no last holder that could remove it safely).
  class GcLock {
   public:
    bool held() const { return fd_.valid(); }

   private:
    friend class Store;
    UniqueFd fd_;
  };
  // Shared; waits while a gc holds the lock.
  Result<GcLock> LockAgainstGc() const;
  // Exclusive; waits up to timeout_seconds (0: not at all) for pulls in progress to finish,
  // then Unavailable naming the lock and saying why.
  Result<GcLock> LockForGc(int64_t timeout_seconds) const;

 private:
  Store(Layout layout, FileSystem* fs) : layout_(std::move(layout)), fs_(fs) {}
  Status Initialize();
  Status OpenRoot();
  // Rewrites the manifests array of index.json with `edit` under locks/index.lock.
  Status EditIndex(const std::string& context,
                   const std::function<Status(nlohmann::json& manifests)>& edit);
  Result<UniqueFd> OpenGcLockFile() const;

  const Layout layout_;
  FileSystem* const fs_;
  UniqueFd root_;  // STORE/, O_RDONLY|O_DIRECTORY|O_NOFOLLOW, checked private
};

// OK if the directory open at `fd` is owned by the running user (euid) and not writable by
// group or others; otherwise FailedPrecondition naming `path` and saying how to fix it.
Status CheckPrivateDir(int fd, const std::string& path);

// Writes one blob: hashes while writing, verifies on Commit. Made by Store::OpenWriter.
// Not thread-safe. After a failed Write or Commit, every later call returns that error.
class Writer {
 public:
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // Without a successful Commit, the ingest data stays for the next writer of the digest to
  // resume from (unless it is empty, or it was found not to be the blob). Always releases the
  // lock.
  ~Writer();

  const Digest& digest() const { return digest_; }
  // The blob was committed before this writer got the lock: nothing to write, Commit is a
  // no-op and Write is FailedPrecondition.
  bool already_committed() const { return already_committed_; }

  // Appends n bytes. Writing past expected_size is DataLoss ("size exceeds expected N"),
  // writes nothing and discards the ingest data; disk errors are ErrnoError (ENOSPC →
  // ResourceExhausted) naming the ingest file, and keep the data written so far (resumable).
  Status Write(const void* data, size_t n);
  Status Write(std::string_view bytes) { return Write(bytes.data(), bytes.size()); }
  // The bytes the ingest data holds: resumed ones included.
  int64_t written() const { return written_; }
  // Forgets everything written (resumed data included): the ingest data is emptied and the
  // hashing starts again, for a source that sends the blob from byte zero.
  Status Restart();

  // Checks size and digest of what was written (the same DataLoss errors as Commit), without
  // committing: for a caller that must know whether the bytes were the blob before deciding
  // what went wrong. The digest is computed once; a later Commit reuses it.
  Status Verify();

  // Checks size ("size mismatch: got N, want M") and digest ("digest mismatch: got
  // sha256:…"), both DataLoss, makes the data read-only (0444), fsyncs it (data and mode),
  // renames it to blobs/<alg>/<hex> and fsyncs that directory. On any failure the ingest
  // data is removed and no blob is visible. Calling it again after success is a no-op.
  Status Commit();

 private:
  friend class Store;
  // The directory fds this writer works in, opened and checked by the Store.
  struct Dirs {
    UniqueFd ingest;  // ingest/
    UniqueFd entry;   // ingest/<alg>-<hex>/, holding data
    UniqueFd blobs;   // blobs/<alg>/
  };
  Writer(const Layout& layout, FileSystem* fs, Digest digest, int64_t expected_size, FileLock lock,
         Dirs dirs, UniqueFd data, Digester digester, bool already_committed);
  // Removes the ingest data and directory (best effort).
  void RemoveIngest();
  // Re-reads the ingest data left by a previous writer (see Store::OpenWriter).
  Status Resume(const std::function<Status(const char*, size_t)>& replay);
  // Records the first error; `discard`: the data is not the blob, remove it.
  Status Fail(Status s, bool discard);

  const Layout layout_;
  FileSystem* const fs_;
  const Digest digest_;
  const int64_t expected_size_;  // -1: unknown
  FileLock lock_;                // held until destruction
  Dirs dirs_;
  UniqueFd data_;  // the ingest data file; closed once committed or failed
  Digester digester_;
  const bool already_committed_;
  int64_t written_ = 0;
  bool committed_ = false;
  Status failure_;             // the first error; later calls return it
  std::optional<Digest> got_;  // the digest of what was written, once all of it is
};

}  // namespace hoist::content
