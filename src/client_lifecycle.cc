// hoist::Client: the image lifecycle. rmi (drop a record), gc (reclaim what no record or live
// mount references), verify (re-hash blobs, check layer directories) and df (usage).
//
// What a record references is image::CollectReferences's to say (image/references.h).
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/fs.h"
#include "base/status_macros.h"
#include "client_impl.h"
#include "content/digester.h"
#include "content/store.h"
#include "hoist/client.h"
#include "hoist/reference.h"
#include "image/records.h"
#include "image/references.h"
#include "unpack/layer.h"
#include "unpack/mount.h"
#include "unpack/verify_layer.h"

namespace hoist {
namespace {

// The digest algorithms the store may hold directories of (blobs/<alg>, layers/<alg>).
constexpr const char* kAlgorithms[] = {"sha256", "sha512"};

// The store directory `path`, or nullopt if it does not exist.
Result<std::optional<UniqueFd>> OpenIfExists(const content::Store& store, const std::string& path) {
  auto fd = store.OpenDir(path, false);
  if (!fd.ok() && fd.status().code() == StatusCode::kNotFound) return std::optional<UniqueFd>();
  if (!fd.ok()) return fd.status();
  return std::optional<UniqueFd>(std::move(*fd));
}

// The bytes of the regular files under `path`, each inode once (reads only; symlinks are not
// followed). Zero if missing.
thread_local std::set<std::pair<dev_t, ino_t>>* t_seen = nullptr;
thread_local int64_t* t_bytes = nullptr;
int CountEntry(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && S_ISREG(st->st_mode) && t_seen->insert({st->st_dev, st->st_ino}).second) {
    *t_bytes += st->st_size;
  }
  return 0;
}
int64_t TreeBytes(const std::string& path) {
  std::set<std::pair<dev_t, ino_t>> seen;
  int64_t bytes = 0;
  t_seen = &seen;
  t_bytes = &bytes;
  (void)::nftw(path.c_str(), CountEntry, 32, FTW_PHYS);
  t_seen = nullptr;
  t_bytes = nullptr;
  return bytes;
}

Result<Digest> HashFile(const std::string& path, const std::string& algorithm) {
  ASSIGN_OR_RETURN(content::Digester digester, content::Digester::New(algorithm));
  RETURN_IF_ERROR(unpack::FeedFile(path, [&](const char* data, size_t n) {
    digester.Update(data, n);
    return OkStatus();
  }));
  return digester.Finish();
}

// Mount directories whose mount is live, and the layers those mounts use.
struct LiveMounts {
  std::set<std::string> dirs;  // names under mounts/
  std::set<Digest> layers;
};

Result<LiveMounts> FindLiveMounts(const content::Store& store) {
  LiveMounts live;
  const content::Layout& layout = store.layout();
  ASSIGN_OR_RETURN(auto mounts, OpenIfExists(store, layout.MountsDir()));
  if (!mounts) return live;
  std::stringstream mountinfo;
  mountinfo << std::ifstream("/proc/self/mountinfo").rdbuf();
  auto names = ListDir(mounts->get());
  if (!names.ok()) return names.status().WithContext("list " + layout.MountsDir());
  for (const std::string& name : *names) {
    auto dir = store.OpenDir(layout.MountDir(name), false);
    if (!dir.ok()) continue;  // not a directory of ours: a leftover
    auto record = unpack::ReadMountRecord(dir->get(), layout.MountRecordFile(name));
    if (!record.ok()) continue;  // a mount that failed half-way
    auto lowerdirs = unpack::MountedLowerdirs(mountinfo.str(), *record);
    if (!lowerdirs) continue;  // unmounted without hoist umount
    live.dirs.insert(name);
    for (std::string path : *lowerdirs) {
      // STORE/layers/<alg>/<hex>/rootfs
      if (BaseName(path) != "rootfs") continue;
      const std::string layer = DirName(path);
      if (auto d = Digest::Parse(BaseName(DirName(layer)) + ":" + BaseName(layer)); d.ok()) {
        live.layers.insert(*d);
      }
    }
  }
  return live;
}

// One thing in the store that gc may remove.
struct Entry {
  std::string dir;   // the store directory holding it
  std::string name;  // its name there
  int64_t bytes = 0;
  std::optional<Digest> digest;  // blobs, layers; ingest and staging when the key parses
  time_t mtime = 0;
};

// What is on disk, by kind.
struct Contents {
  std::vector<Entry> blobs, layers, ingest, staging, mounts;
};

Status ListEntries(const content::Store& store, const std::string& dir_path,
                   const std::function<Status(int dir_fd, const std::string& name)>& each) {
  ASSIGN_OR_RETURN(auto dir, OpenIfExists(store, dir_path));
  if (!dir) return OkStatus();
  auto names = ListDir(dir->get());
  if (!names.ok()) return names.status().WithContext("list " + dir_path);
  for (const std::string& name : *names) RETURN_IF_ERROR(each(dir->get(), name));
  return OkStatus();
}

Result<Contents> ListContents(const content::Store& store) {
  const content::Layout& layout = store.layout();
  Contents c;
  for (const char* alg : kAlgorithms) {
    const std::string blobs = layout.BlobAlgorithmDir(alg);
    RETURN_IF_ERROR(ListEntries(store, blobs, [&](int fd, const std::string& name) {
      auto d = Digest::Parse(std::string(alg) + ":" + name);
      struct stat st;
      if (!d.ok() || ::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return OkStatus();
      c.blobs.push_back({blobs, name, st.st_size, *d, st.st_mtime});
      return OkStatus();
    }));
    const std::string layers = layout.LayerAlgorithmDir(alg);
    RETURN_IF_ERROR(ListEntries(store, layers, [&](int, const std::string& name) {
      auto d = Digest::Parse(std::string(alg) + ":" + name);
      if (d.ok()) c.layers.push_back({layers, name, TreeBytes(layout.LayerDir(*d)), *d, 0});
      return OkStatus();
    }));
  }
  auto keyed = [&](const std::string& dir, std::vector<Entry>* out) {
    return ListEntries(store, dir, [&](int fd, const std::string& name) {
      std::optional<Digest> d = content::Layout::DigestOfKey(name);
      if (!d) return OkStatus();  // not hoist's
      // The newest change to the entry or its data.
      struct stat st;
      time_t mtime = 0;
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) mtime = st.st_mtime;
      if (::fstatat(fd, (name + "/data").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        mtime = std::max(mtime, st.st_mtime);
      }
      out->push_back({dir, name, TreeBytes(dir + "/" + name), d, mtime});
      return OkStatus();
    });
  };
  RETURN_IF_ERROR(keyed(layout.IngestDir(), &c.ingest));
  RETURN_IF_ERROR(keyed(layout.LayersStagingDir(), &c.staging));
  RETURN_IF_ERROR(ListEntries(store, layout.MountsDir(), [&](int, const std::string& name) {
    c.mounts.push_back({layout.MountsDir(), name, TreeBytes(layout.MountDir(name)), {}, 0});
    return OkStatus();
  }));
  return c;
}

// What gc removes (see Client::GarbageCollect), and the lock each removal needs: an ingest
// entry is removed only under its blob's lock, a staging directory only under its layer's.
struct Candidate {
  SpaceUsage GcReport::*kind;
  Entry entry;
  std::string lock;  // a lock file under locks/ to take without waiting; empty: none
};

std::vector<Candidate> Plan(const content::Store& store, const Contents& c,
                            const image::References& refs, const LiveMounts& live,
                            const GcOptions& options) {
  const content::Layout& layout = store.layout();
  std::vector<Candidate> out;
  for (const Entry& e : c.blobs) {
    if (!refs.blobs.contains(*e.digest)) out.push_back({&GcReport::blobs, e, ""});
  }
  for (const Entry& e : c.layers) {
    if (!refs.layers.contains(*e.digest) && !live.layers.contains(*e.digest)) {
      out.push_back({&GcReport::layers, e, ""});
    }
  }
  const time_t now = ::time(nullptr);
  for (const Entry& e : c.ingest) {
    if (now - e.mtime >= options.ingest_max_age_seconds) {
      out.push_back({&GcReport::ingest, e, BaseName(layout.BlobLockFile(*e.digest))});
    }
  }
  for (const Entry& e : c.staging) {
    out.push_back({&GcReport::staging, e, BaseName(layout.LayerLockFile(*e.digest))});
  }
  for (const Entry& e : c.mounts) {
    if (!live.dirs.contains(e.name)) out.push_back({&GcReport::mounts, e, ""});
  }
  return out;
}

// Removes the candidate (dry_run: only checks its lock is free). False if its lock is held.
Result<bool> Reclaim(const content::Store& store, const Candidate& c, bool dry_run) {
  FileLock lock;
  if (!c.lock.empty()) {
    ASSIGN_OR_RETURN(UniqueFd locks, store.OpenDir(store.layout().LocksDir(), true));
    ASSIGN_OR_RETURN(lock, FileLock::TryAcquire(store.fs(), locks.get(), c.lock));
    if (!lock.held()) return false;  // a download or extraction in progress
  }
  if (dry_run) return true;
  ASSIGN_OR_RETURN(UniqueFd dir, store.OpenDir(c.entry.dir, false));
  RETURN_IF_ERROR(RemoveAllAt(store.fs(), dir.get(), c.entry.name)
                      .WithContext("remove " + c.entry.dir + "/" + c.entry.name));
  return true;
}

void Add(SpaceUsage* u, int64_t bytes) {
  ++u->count;
  u->bytes += bytes;
}

// Plans (and unless dry_run, carries out) a gc of the store as it is now.
Result<GcReport> CollectGarbage(const content::Store& store, const GcOptions& options, bool dry_run,
                                Contents* contents) {
  ASSIGN_OR_RETURN(std::vector<Descriptor> records, image::List(store));
  image::References refs = image::CollectReferences(store, records);
  if (!refs.unreadable.empty() && !dry_run) {
    const auto& [digest, status] = *refs.unreadable.begin();
    return DataLossError(status.message() +
                         " (nothing was removed: run hoist verify --repair, then pull again)");
  }
  ASSIGN_OR_RETURN(LiveMounts live, FindLiveMounts(store));
  ASSIGN_OR_RETURN(*contents, ListContents(store));
  GcReport report;
  for (const Candidate& c : Plan(store, *contents, refs, live, options)) {
    ASSIGN_OR_RETURN(bool reclaimed, Reclaim(store, c, dry_run));
    if (reclaimed) Add(&(report.*c.kind), c.entry.bytes);
  }
  return report;
}

}  // namespace

Result<std::string> Client::RemoveImage(std::string_view text) {
  const std::string context = "rmi " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  RETURN_IF_ERROR(image::Remove(*impl_->store, *ref).WithContext(context));
  return image::RecordName(*ref);
}

Result<GcReport> Client::GarbageCollect(const GcOptions& options) {
  const content::Store& store = *impl_->store;
  auto lock = store.LockForGc(options.lock_timeout_seconds);
  if (!lock.ok()) return lock.status().WithContext("gc");
  Contents contents;
  auto report = CollectGarbage(store, options, false, &contents);
  if (!report.ok()) return report.status().WithContext("gc");
  return report;
}

Result<StoreUsage> Client::Usage(const GcOptions& options) {
  Contents contents;
  auto reclaimable = CollectGarbage(*impl_->store, options, true, &contents);
  if (!reclaimable.ok()) return reclaimable.status().WithContext("df");
  StoreUsage usage;
  usage.reclaimable = *reclaimable;
  for (const Entry& e : contents.blobs) Add(&usage.blobs, e.bytes);
  for (const Entry& e : contents.layers) Add(&usage.layers, e.bytes);
  for (const Entry& e : contents.ingest) Add(&usage.ingest, e.bytes);
  return usage;
}

Result<VerifyReport> Client::Verify(const std::vector<std::string>& references,
                                    const VerifyOptions& options) {
  const content::Store& store = *impl_->store;
  const content::Layout& layout = store.layout();
  FileSystem* fs = store.fs();
  std::optional<content::Store::GcLock> lock;
  if (options.repair) {
    auto held = store.LockForGc(options.lock_timeout_seconds);
    if (!held.ok()) return held.status().WithContext("verify --repair");
    lock = std::move(*held);
  }
  std::vector<Descriptor> records;
  for (const std::string& text : references) {
    const std::string context = "verify " + text;
    auto ref = Reference::Parse(text);
    if (!ref.ok()) return ref.status().WithContext(context);
    auto record = image::Get(store, *ref);
    if (!record.ok()) return record.status().WithContext(context);
    if (!*record) return NotFoundError(context + ": no such image in the store");
    records.push_back(std::move(**record));
  }
  const bool everything = references.empty();
  if (everything) {
    auto all = image::List(store);
    if (!all.ok()) return all.status().WithContext("verify");
    records = std::move(*all);
  }
  const image::References refs = image::CollectReferences(store, records);
  auto live = FindLiveMounts(store);
  if (!live.ok()) return live.status().WithContext("verify");
  auto contents = ListContents(store);
  if (!contents.ok()) return contents.status().WithContext("verify");
  VerifyReport report;

  // Blobs: every one on disk (or those the named images reference), re-hashed.
  std::map<Digest, std::string> blobs;  // digest → the image that needs it ("" none)
  if (everything) {
    for (const Entry& e : contents->blobs) blobs.emplace(*e.digest, "");
  }
  for (const auto& [d, image] : refs.blobs) blobs[d] = image;
  for (const auto& [digest, image] : blobs) {
    VerifyProblem p{"blob", digest, "", false};
    if (!store.Has(digest)) {
      p.message = "missing (image " + image + " needs it; pull it again)";
      report.problems.push_back(std::move(p));
      continue;
    }
    ++report.blobs;
    auto got = HashFile(layout.BlobFile(digest), digest.algorithm());
    if (got.ok() && *got == digest) {
      if (auto it = refs.unreadable.find(digest); it != refs.unreadable.end()) {
        p.message = it->second.message();  // the registry's bytes, but not usable
        report.problems.push_back(std::move(p));
      }
      continue;
    }
    p.message = got.ok() ? "digest mismatch: got " + got->String() : got.status().message();
    if (options.repair) {
      auto dir = store.OpenDir(layout.BlobAlgorithmDir(digest.algorithm()), false);
      Status removed = dir.ok() ? fs->UnlinkAt(dir->get(), digest.hex(), 0) : dir.status();
      if (removed.ok()) {
        p.removed = true;
      } else {
        p.message += "; not removed: " + removed.message();
      }
    }
    report.problems.push_back(std::move(p));
  }

  // Layer directories: each one's record, and its tree against the blob it was extracted from
  // (unpack/verify_layer.h). Without a sound blob the layer cannot be checked: a problem too.
  std::map<Digest, std::string> layers;
  if (everything) {
    for (const Entry& e : contents->layers) layers.emplace(*e.digest, "");
  }
  for (const auto& [d, image] : refs.layers) layers[d] = image;
  unpack::VerifyLayerOptions check;
  check.max_uncompressed = impl_->options.max_layer_bytes;
  check.max_zstd_window = impl_->options.max_zstd_window_bytes;
  for (const auto& [diff_id, image] : layers) {
    VerifyProblem p{"layer", diff_id, "", false};
    struct stat st;
    if (::lstat(layout.LayerDir(diff_id).c_str(), &st) != 0) {
      p.message = "not extracted (image " + image + " needs it; pull it again)";
      report.problems.push_back(std::move(p));
      continue;
    }
    ++report.layers;
    auto record = unpack::ReadLayerRecord(store, diff_id);
    const bool blob_damaged =
        record.ok() &&
        std::any_of(report.problems.begin(), report.problems.end(), [&](const VerifyProblem& b) {
          return b.kind == "blob" && b.digest == record->blob;
        });
    if (!record.ok()) {
      p.message = record.status().message();
    } else if (blob_damaged) {
      p.message =
          "blob " + record->blob.String() + " failed its check: the layer cannot be checked";
    } else if (Status s = unpack::VerifyLayerDir(store, *record, check); !s.ok()) {
      p.message = s.message();
    }
    if (p.message.empty()) continue;
    if (options.repair && live->layers.contains(diff_id)) {
      p.message += "; not removed: a live mount uses it (hoist umount it first)";
    } else if (options.repair) {
      Status removed = [&]() -> Status {
        ASSIGN_OR_RETURN(UniqueFd locks, store.OpenDir(layout.LocksDir(), true));
        ASSIGN_OR_RETURN(
            FileLock layer_lock,
            FileLock::Acquire(fs, locks.get(), BaseName(layout.LayerLockFile(diff_id))));
        ASSIGN_OR_RETURN(UniqueFd dir,
                         store.OpenDir(layout.LayerAlgorithmDir(diff_id.algorithm()), false));
        return RemoveAllAt(fs, dir.get(), diff_id.hex());
      }();
      if (removed.ok()) {
        p.removed = true;
      } else {
        p.message += "; not removed: " + removed.message();
      }
    }
    report.problems.push_back(std::move(p));
  }
  return report;
}

}  // namespace hoist
