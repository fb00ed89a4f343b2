// hoist's library entry point: pull images into a local store, read it back, and move images
// between the store, registries, archives and OCI layouts.
//
//   hoist::ClientOptions options;
//   options.store_dir = "/var/lib/hoist";
//   auto client = hoist::Client::Open(options);
//   if (!client.ok()) { ... client.status().message() ... }
//   hoist::Result<hoist::Image> image = (*client)->Pull("alpine:3.20");
//
// A Client is thread-safe: several pulls may run at once, from several threads, and several
// processes may share one store. No exception escapes the API.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/digest.h"
#include "hoist/image.h"
#include "hoist/progress.h"
#include "hoist/status.h"

namespace hoist {

struct ClientOptions {
  std::string store_dir;  // required; created if missing
  // Registries (host[:port]) reached without TLS verification, and over plain http when https
  // fails. Loopback registries (localhost, 127.0.0.0/8, ::1) always are, as in docker.
  std::vector<std::string> insecure_registries;
  // "user:password" for the reference's own registry (basic auth or its token server's realm),
  // instead of the user's own credentials for it. That is the registry the reference is pulled
  // from after a registries.conf location rewrite; registries.conf mirrors never get these,
  // only what the files below hold for the mirror's own host. Empty: docker's config.json
  // ($DOCKER_CONFIG, else ~/.docker) with its credential helpers, and podman's auth.json
  // ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json), looked up for the host each
  // request goes to.
  std::string credentials;
  // TLS verification for every registry, as skopeo's --tls-verify: kDefault follows each
  // registry's settings (loopback and insecure registries: unverified HTTPS, then plain HTTP;
  // others: verified HTTPS only); kAlways verifies HTTPS everywhere, loopback included, never
  // plain HTTP; kNever skips verification and allows plain HTTP everywhere.
  enum class TlsVerify { kDefault, kAlways, kNever };
  TlsVerify tls_verify = TlsVerify::kDefault;
  // A directory of *.crt CAs and *.cert/*.key client pairs used for every registry instead of
  // /etc/docker/certs.d/<host:port> and /etc/containers/certs.d/<host:port> (skopeo's --cert-dir).
  std::string cert_dir;
  // The certs.d base directories searched for <host:port>/ (empty: the system's).
  std::vector<std::string> certs_dirs;
  // A containers-registries.conf(5) file to read instead of the usual lookup
  // ($HOIST_REGISTRIES_CONF, ${XDG_CONFIG_HOME:-~/.config}/containers/registries.conf,
  // /etc/containers/registries.conf).
  std::string registries_conf;
  // The containers-policy.json(5) a pull must satisfy, instead of the usual lookup
  // ($HOME/.config/containers/policy.json, else /etc/containers/policy.json; with neither,
  // every image is accepted). See README "Signatures".
  std::string signature_policy;
  // The containers-registries.d(5) directory that says where signatures are published, instead
  // of ~/.config/containers/registries.d or /etc/containers/registries.d (skopeo's
  // --registries.d).
  std::string registries_d;
  // Foreign (non-distributable) layers are fetched from their `urls` first (other layers'
  // `urls` are ignored): http(s) only, never with credentials, and never from a loopback,
  // private or link-local address unless the registry lives at that address too. A URL that
  // is refused, fails or sends other bytes than the blob is passed over for the registry.
  // false: their urls are never used; such a layer must come from the registry itself, and a
  // pull whose registry does not serve it is refused (PermissionDenied).
  bool allow_foreign_urls = true;
  // A layer that inflates to more than this many bytes of tar is refused (ResourceExhausted).
  uint64_t max_layer_bytes = 64ULL << 30;
  // A zstd layer whose frames ask for a larger window than this is refused
  // (ResourceExhausted). Inflating a zstd stream holds its whole window in memory, per layer in
  // flight: zstd levels up to 19 and the Go encoder (containers/image, buildkit, containerd) at
  // its default level use at most 8 MiB, its better and best levels 16 and 32 MiB; `zstd
  // --long` and the --ultra levels above 20 ask for up to 128 MiB (what containerd and docker
  // accept). Two 32 MiB windows in flight put a pull near 100 MiB; 8 MiB keeps it under 64.
  uint64_t max_zstd_window_bytes = uint64_t{32} << 20;
  // An image whose layers together hold more than this many bytes of file data (logical
  // sizes: the holes of sparse files count) is refused (ResourceExhausted), by a pull as it
  // extracts and by unpack. A pull counts the layers it extracts; layers already in the store
  // were counted when they were extracted. The default, twice the layer cap, leaves room for
  // the largest images in common use (CUDA and ML images of tens of GiB) and still stops an
  // image of many layers just under the layer cap from filling the disk.
  uint64_t max_image_bytes = 128ULL << 30;
  // A transfer from a registry, token server or foreign URL that moves fewer than
  // low_speed_bytes_per_second bytes per second, averaged over low_speed_seconds, is ended
  // (Unavailable "HOST: timed out: ..."; a mirror is then passed over). 0 in either: no limit.
  int64_t low_speed_bytes_per_second = 1024;
  int64_t low_speed_seconds = 30;
  // A request with a small answer (manifest, token, HEAD) must be complete within this many
  // seconds (0: no limit). Blob downloads get no total limit: their size is known from the
  // manifest, so the low-speed limit bounds their time, and a total limit would end a large
  // layer on a slow but working link.
  int64_t request_timeout_seconds = 120;
  // A request that fails for a reason worth trying again (connection errors, resets, timeouts,
  // stalls, short bodies, HTTP 408, 429, 5xx; never 400, 401 after authentication, 403, 404, a
  // digest or size mismatch, or a local error) is retried up to `retries` more times, and not
  // after retry_max_seconds from its first attempt. The waits grow exponentially from
  // retry_base_delay_ms (with jitter), or follow the server's Retry-After, capped at 60 s. An
  // interrupted blob continues where it stopped (HTTP Range). 0 retries: every failure is final.
  // A registries.conf mirror gets one retry at most before it is passed over for the next
  // source; the last source gets them all.
  int retries = 5;
  int64_t retry_max_seconds = 600;
  int64_t retry_base_delay_ms = 1000;
};

struct UnpackOptions {
  // Write an OCI runtime bundle (DEST/rootfs and DEST/config.json generated from the image
  // config, as `umoci unpack` does) instead of a bare root filesystem.
  bool bundle = false;
  // Apply every layer blob again (inflate, check the diff_id, extract) instead of merging the
  // store's extracted layer directories. Both make the same tree; the blobs are the slower
  // way, which unpack takes anyway where the layer directories cannot serve (see
  // src/unpack/merge.h).
  bool from_blobs = false;
};

struct MountOptions {
  // An overlay upper and work dir under the store make the mount writable; `Unmount` removes
  // them (the changes are scratch, like a container run with --rm).
  bool writable = false;
};

struct PullOptions {
  std::string platform;  // "os/arch[/variant]"; empty: the host's
  int jobs = 4;          // blobs transferred at once
  ProgressCallback progress;
  const std::atomic<bool>* cancel = nullptr;  // set to true to stop the pull (Cancelled)
  // One line for things the user should know that are not errors, e.g.
  // "mirror 10.0.0.1:5000 failed (HTTP 503); trying registry-1.docker.io".
  std::function<void(const std::string&)> notice;
};

// How images are moved between transports (Copy, Push, Save, Load).
struct CopyOptions {
  // A multi-platform image: every platform (and the index) with all_platforms, else only the
  // manifest for `platform` ("os/arch[/variant]"; empty: the host's).
  bool all_platforms = false;
  std::string platform;
  int jobs = 4;  // blobs copied at once
  // Layers put into the store are reported as a pull's are.
  ProgressCallback progress;
  const std::atomic<bool>* cancel = nullptr;  // set to true to stop (Cancelled)
  std::function<void(const std::string&)> notice;
};

struct LoadOptions : CopyOptions {
  // "DIR[:TAG]": load from this OCI image layout directory instead of an archive.
  std::string layout;
  // The name to record the image under, instead of the names the archive gives it (docker's
  // RepoTags, OCI's org.opencontainers.image.ref.name when it is a full reference). Needed for an
  // archive that names its image with a bare tag or not at all.
  std::string tag;
};

// What Client::Save writes.
enum class ArchiveFormat { kDockerArchive, kOciArchive };

// A number of things in the store and the bytes they take: blobs and ingest data by their
// size; a layer or mount directory by the sizes of the regular files under it (each inode once).
struct SpaceUsage {
  int64_t count = 0;
  int64_t bytes = 0;
};

struct GcOptions {
  // Partial downloads (ingest/) not written to for this long, and not locked by a download in
  // progress, are removed; younger ones are kept for a pull to resume.
  int64_t ingest_max_age_seconds = 3600;
  // How long gc waits for pulls in progress to finish (each holds gc off until its record is
  // written); then it gives up with an error (Unavailable).
  int64_t lock_timeout_seconds = 600;
};

// What gc removed (GarbageCollect) or would remove (StoreUsage::reclaimable).
struct GcReport {
  SpaceUsage blobs;    // blobs no image record references
  SpaceUsage layers;   // layer directories neither a record nor a live mount uses
  SpaceUsage ingest;   // stale partial downloads
  SpaceUsage staging;  // extractions a dead process left in layers/staging/
  SpaceUsage mounts;   // mounts/<id>/ directories of mounts that are gone
  int64_t bytes() const {
    return blobs.bytes + layers.bytes + ingest.bytes + staging.bytes + mounts.bytes;
  }
};

// `hoist df`: what the store holds, and what gc would reclaim now.
struct StoreUsage {
  SpaceUsage blobs;
  SpaceUsage layers;
  SpaceUsage ingest;
  GcReport reclaimable;
};

struct VerifyOptions {
  // Remove each corrupt blob and layer directory, so that the next pull fetches or extracts it
  // again. Waits for pulls in progress like gc (GcOptions::lock_timeout_seconds).
  bool repair = false;
  int64_t lock_timeout_seconds = 600;
};

struct VerifyProblem {
  std::string kind;  // "blob" or "layer"
  Digest digest;     // the blob's digest, or the layer's diff_id
  std::string message;
  bool removed = false;  // by repair
};

struct VerifyReport {
  int64_t blobs = 0;   // blobs re-hashed
  int64_t layers = 0;  // layer directories checked
  std::vector<VerifyProblem> problems;
};

// The store used when none is given: $HOIST_STORE, else /var/lib/hoist for root, else
// ${XDG_DATA_HOME:-~/.local/share}/hoist.
std::string DefaultStoreDir();

class Client {
 public:
  static Result<std::unique_ptr<Client>> Open(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Resolves the reference, fetches and verifies every blob of the image for the platform
  // into the store, extracts each layer (in the same pass as its download) into the store's
  // per-layer directories, then records the reference. Errors name the reference, the step and the
  // cause: "pull 127.0.0.1:5000/app:1: blob sha256:…: digest mismatch: got sha256:…".
  Result<Image> Pull(std::string_view reference, const PullOptions& options = {});

  // Images recorded in the store, in the order they were first recorded.
  Result<std::vector<ImageSummary>> Images();

  // An image recorded in the store (no network).
  Result<Image> Inspect(std::string_view reference);

  // `docker tag`: records `target` (normalized as Pull does; a name with a tag, never a digest:
  // InvalidArgument) for the same manifest as the image recorded as `source`, replacing any
  // record `target` had. No blob is copied and nothing is fetched. NotFound if `source` is not
  // recorded. Holds gc off while it runs, so the blobs stay.
  Status Tag(std::string_view source, std::string_view target);

  // Writes the root filesystem of an image of the store into `dest`, which must not exist or
  // be an empty directory: the layers applied in order, whiteouts applied, hardlinks across
  // layers resolved. Built in a staging directory beside `dest` and renamed into place, so
  // `dest` appears complete or not at all. Owners are kept when running as root.
  Status Unpack(std::string_view reference, const std::string& dest,
                const UnpackOptions& options = {});

  // Mounts the image's layer directories as an overlay at `target` (an existing directory):
  // read-only, or writable with MountOptions::writable. Root only (FailedPrecondition
  // otherwise); the layers must have been extracted by a pull run as root.
  Status Mount(std::string_view reference, const std::string& target,
               const MountOptions& options = {});
  // Unmounts what Mount mounted at `target` and removes its upper and work dirs.
  Status Unmount(const std::string& target);

  // `docker rmi`: removes the image record `reference` (normalized as Pull does) and returns
  // the name it was recorded under. Blobs and layers stay until GarbageCollect, which keeps
  // whatever another record still references. NotFound if there is no such record.
  Result<std::string> RemoveImage(std::string_view reference);

  // Removes what no image record references: blobs (a record's manifest, the registry's own
  // manifest and index it keeps by annotation, config and layers), layer directories (unless a
  // live `hoist mount` uses them), directories of mounts that are gone, extractions a dead
  // process left, and stale partial downloads (see GcOptions). Safe while other processes
  // pull: it waits for pulls in progress, which hold it off until their records are written,
  // and pulls that start meanwhile wait for it. A record whose manifest or config is missing
  // protects what it still names; one that cannot be read (damaged) stops gc (DataLoss: run
  // Verify). A mount is live if this process's /proc/self/mountinfo shows the mount hoist
  // recorded (so run gc in the mount namespace of the mounts). Every removal is relative to
  // store directory fds.
  Result<GcReport> GarbageCollect(const GcOptions& options = {});

  // What the store holds and what GarbageCollect with these options would reclaim now (a pull
  // in progress counts as reclaimable until its record is written). Takes no lock.
  Result<StoreUsage> Usage(const GcOptions& options = {});

  // Re-hashes every blob and checks every layer directory against its record (layer.json: the
  // diff_id, the rootfs/ committed) and, entry by entry and back, against the blob it was
  // extracted from (a layer whose blob is missing or failed its check is a problem), of the images
  // named (each blob and layer they reference, a missing one being a problem too) or, with none
  // named, of the whole store. A named image that is not recorded is NotFound. Problems are
  // reported in the result, not as an error.
  Result<VerifyReport> Verify(const std::vector<std::string>& references,
                              const VerifyOptions& options = {});

  // The transports, spelled as skopeo spells them (see README "Transports"):
  //   docker://REF  oci:DIR[:TAG]  oci-archive:FILE[:TAG]  docker-archive:FILE[:REF]
  //   hoist:REF (or a bare REF): the local store.
  // Every blob and manifest is verified on the way (size and digest; a layer's diff_id when it
  // goes into the store, where it is extracted in the same pass as a pull does); what goes into
  // the store is recorded last, under gc's lock, so a failure leaves no record.
  //
  // `docker load`: loads the images of `input` (an archive file, "-" for standard input; or the
  // layout directory options.layout when input is empty) into the store and returns them as
  // recorded. The kind of archive is told by its members: a docker-archive has manifest.json, an
  // oci-archive index.json; gzip or zstd compression by its magic bytes. Standard input and a
  // compressed archive are first spooled, inflated, into an unnamed file under the store's
  // ingest/ directory (so the store's file system needs room for it). Every image of an
  // oci-archive is loaded unless the layout's TAG names one.
  Result<std::vector<Image>> Load(const std::string& input, const LoadOptions& options = {});
  // `docker save`: writes the images `references` of the store into one archive at `output`
  // ("-": standard output), in `format`; blobs the images share are written once. A file is
  // written under a temporary name and renamed when complete.
  Status Save(const std::vector<std::string>& references, const std::string& output,
              ArchiveFormat format, const CopyOptions& options = {});
  // `skopeo copy`: copies the image `source` names to `destination` (both transport texts) and
  // returns the digest of the top document copied (the index with all_platforms, else the
  // platform's manifest). The destination's name is its own reference, else the source's.
  Result<Digest> Copy(std::string_view source, std::string_view destination,
                      const CopyOptions& options = {});
  // `docker push`: Copy(hoist:LOCAL, docker://DEST), DEST defaulting to LOCAL.
  Result<Digest> Push(std::string_view local, std::string_view destination = "",
                      const CopyOptions& options = {});
  // `docker login`: checks user and password against the registry's /v2/ (basic auth or a
  // token from its realm) and stores them in docker's config.json (or its credential
  // helper). registry: "docker.io", "ghcr.io", "127.0.0.1:5000".
  Status Login(const std::string& registry, const std::string& user, const std::string& password);
  // `docker logout`: removes the stored credentials. NotFound when there were none.
  Status Logout(const std::string& registry);
  // The effective settings for a reference, one per line: endpoints in order (mirrors, then the
  // registry), TLS, where credentials come from (never the secret), and the files read.
  Result<std::string> DescribeConfig(std::string_view reference);
  // `hoist trust show`: the signature policy file in force for a reference, the scope that
  // matched it and why, its requirements and their keys, and where signatures would be read
  // from (registries.d lookaside, sigstore attachments). Makes no request.
  Result<std::string> DescribeTrust(std::string_view reference);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoist
