// Builds fixture images in memory (tar layers, gzip, configs, manifests, indexes) and pushes
// them to a registry through its upload API, with no code shared with hoist. Test-only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hoist/status.h"

namespace hoist::testing {

// One tar entry. `type`: '0' file, '5' directory, '2' symlink, '1' hardlink (others are
// written as given, with size 0 unless '0' or '7'). Directories given the default mode 0644
// get 0755 so that they stay traversable.
// Every member has a default, so partial aggregates like {"a/b", "data"} or
// {"lnk", "", '2', "target"} are fine.
struct TarEntry {
  std::string path{};
  std::string content{};
  char type = '0';
  std::string linkname{};
  int mode = 0644;
  // Numeric owner (uname/gname are "root" for 0, empty otherwise).
  int uid = 0;
  int gid = 0;
  long long mtime = -1;                   // seconds; -1: the archive's fixed mtime (2024-01-01)
  unsigned dev_major = 0, dev_minor = 0;  // '3' and '4' entries
  // Extra PAX records written in an 'x' header before the entry, in this order: xattrs as
  // {"SCHILY.xattr.user.name", "value"}, or anything else a test wants the reader to see.
  std::vector<std::pair<std::string, std::string>> pax{};
};

// A ustar archive: 512-byte blocks, each entry's uid/gid/mtime (default 0/0 and a fixed
// mtime), and two zero blocks at the end. Names too long for ustar's name/prefix split get a
// PAX 'x' header (path=, linkpath=), which also carries the entry's extra `pax` records.
// Deterministic: the same entries give the same bytes.
std::string MakeTar(const std::vector<TarEntry>& entries);
// A sparse file `name` of `size` bytes in PAX 0.1 form (GNUSparseFile.0/<name>, GNU.sparse.*
// records): the data `segments` (offset, bytes) in order, holes everywhere else.
TarEntry SparseEntry(const std::string& name, uint64_t size,
                     const std::vector<std::pair<uint64_t, std::string>>& segments);
// gzip (RFC 1952) of `data`, deterministic (mtime 0).
std::string Gzip(std::string_view data);
// One zstd frame of `data` (level 3), deterministic; empty on failure.
std::string Zstd(std::string_view data);
// "sha256:<hex>" of `bytes`.
std::string Sha256Digest(std::string_view bytes);
// n bytes that do not compress, the same for the same seed: file contents of test layers.
std::string RandomBytes(size_t n, unsigned seed);

enum class Format { kOci, kDocker };

struct Blob {
  std::string media_type{};
  std::string digest{};
  std::string data{};
};

struct BuiltImage {
  std::string manifest;
  std::string manifest_media_type;
  std::string manifest_digest;
  Blob config;
  std::vector<Blob> layers;  // gzip layers, in order
  std::vector<std::string> diff_ids;
  std::string os, architecture, variant;  // the platform written into the config
};

// Each element of `layers` becomes one gzip layer. The config carries os/architecture
// [/variant], rootfs.diff_ids, a small `config` (Env, Cmd) and one history entry per layer.
BuiltImage BuildImage(Format f, const std::vector<std::vector<TarEntry>>& layers,
                      std::string os = "linux", std::string arch = "amd64",
                      std::string variant = "");

// What the image config's `config` object says (empty fields are left out, except Env and
// Cmd, which BuildImage always writes).
struct ImageConfigSpec {
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  std::vector<std::string> entrypoint{};
  std::vector<std::string> cmd = {"/bin/sh"};
  std::string working_dir{};
  std::string user{};
};

// An image from layer blobs made by the caller (any media type and bytes) and the diff_ids
// its config lists, which are taken as given (so a test can make them lie). The layers keep
// their media types; the manifest and config media types follow `f`.
BuiltImage BuildImageFromBlobs(Format f, std::vector<Blob> layers,
                               std::vector<std::string> diff_ids, const ImageConfigSpec& spec = {},
                               std::string os = "linux", std::string arch = "amd64",
                               std::string variant = "");
// The gzip layer blob of a tar for format `f` (OCI or Docker media type).
Blob GzipLayer(Format f, std::string_view tar);

struct BuiltIndex {
  std::string manifest;
  std::string media_type;
  std::string digest;
  std::vector<BuiltImage> images;
};

// An OCI index or Docker manifest list with one entry per image, platform from each image.
BuiltIndex BuildIndex(Format f, std::vector<BuiltImage> images);

// Pushes over plain http to `host` ("127.0.0.1:PORT"): each blob (HEAD first, skipped when
// present; else POST /v2/<repo>/blobs/uploads/ then a monolithic PUT <location>&digest=), then
// PUT /v2/<repo>/manifests/<ref> with the manifest's media type, checking the registry's
// Docker-Content-Digest. `basic_creds` is "user:pass" (htpasswd registries) or empty.
Status PushImage(const std::string& host, const std::string& repo, const std::string& ref,
                 const BuiltImage& img, const std::string& basic_creds = "");
// Pushes each child image by digest, then the index under `ref`.
Status PushIndex(const std::string& host, const std::string& repo, const std::string& ref,
                 const BuiltIndex& idx, const std::string& basic_creds = "");
// PUTs an arbitrary manifest body with `media_type` as Content-Type (for negative tests);
// the registry's refusal is returned as an error carrying its status and body.
Status PushManifest(const std::string& host, const std::string& repo, const std::string& ref,
                    const std::string& body, const std::string& media_type,
                    const std::string& basic_creds = "");
// Pushes one blob (skipped when already present).
Status PushBlob(const std::string& host, const std::string& repo, const Blob& blob,
                const std::string& basic_creds = "");

// Writes `img` as an OCI image layout in `dir` (created if missing): oci-layout, blobs and an
// index.json whose single entry is annotated org.opencontainers.image.ref.name=`tag`.
Status WriteOciLayout(const std::string& dir, const std::string& tag, const BuiltImage& img);

// True if skopeo is installed (for tests that copy with it).
bool SkopeoAvailable();

}  // namespace hoist::testing
