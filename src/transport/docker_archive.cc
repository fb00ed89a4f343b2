#include "transport/docker_archive.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "base/fs.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "hoist/reference.h"
#include "manifest/config.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "transport/oci_layout.h"  // CopyVerified
#include "transport/tar_writer.h"

namespace hoist::transport {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr size_t kMaxImages = 10'000;

// One element of manifest.json.
struct ArchiveImage {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

Result<std::vector<ArchiveImage>> ParseManifestJson(std::string_view bytes) {
  ASSIGN_OR_RETURN(Json doc, ParseJson(bytes, "manifest.json"));
  if (!doc.is_array()) return DataLossError("manifest.json is not a JSON array");
  if (doc.empty()) return DataLossError("manifest.json lists no image");
  if (doc.size() > kMaxImages) return ResourceExhaustedError("manifest.json lists too many images");
  std::vector<ArchiveImage> images;
  for (size_t i = 0; i < doc.size(); ++i) {
    const Json& e = doc[i];
    const std::string where = "manifest.json[" + std::to_string(i) + "]";
    ArchiveImage img;
    auto config = e.is_object() ? e.find("Config") : e.end();
    auto layers = e.is_object() ? e.find("Layers") : e.end();
    if (config == e.end() || !config->is_string()) {
      return DataLossError(where + ": Config must be a string");
    }
    img.config = config->get<std::string>();
    if (layers == e.end() || !layers->is_array()) {
      return DataLossError(where + ": Layers must be an array");
    }
    for (const Json& l : *layers) {
      if (!l.is_string()) return DataLossError(where + ": Layers must hold strings");
      img.layers.push_back(l.get<std::string>());
    }
    if (auto tags = e.find("RepoTags"); tags != e.end() && !tags->is_null()) {
      if (!tags->is_array()) return DataLossError(where + ": RepoTags must be an array");
      for (const Json& t : *tags) {
        if (!t.is_string()) return DataLossError(where + ": RepoTags must hold strings");
        img.repo_tags.push_back(t.get<std::string>());
      }
    }
    images.push_back(std::move(img));
  }
  return images;
}

// True when `tag` (a RepoTags entry) names what `ref` does.
bool SameReference(const std::string& tag, const std::string& ref) {
  if (tag == ref) return true;
  auto a = Reference::Parse(tag);
  auto b = Reference::Parse(ref);
  return a.ok() && b.ok() && *a == *b;
}

Result<size_t> SelectImage(const std::vector<ArchiveImage>& images, const std::string& ref) {
  if (ref.empty() && images.size() == 1) return size_t{0};
  if (!ref.empty() && ref[0] == '@') {
    size_t n = 0;
    for (char c : ref.substr(1)) {
      if (c < '0' || c > '9' || n > kMaxImages)
        return InvalidArgumentError("bad image index " + Quote(ref));
      n = n * 10 + static_cast<size_t>(c - '0');
    }
    if (ref.size() == 1 || n >= images.size()) {
      return NotFoundError("no image " + Quote(ref) + " in an archive of " +
                           std::to_string(images.size()));
    }
    return n;
  }
  std::string listed;
  for (size_t i = 0; i < images.size(); ++i) {
    for (const std::string& t : images[i].repo_tags) {
      if (!ref.empty() && SameReference(t, ref)) return i;
    }
    listed += (i ? "; " : "") + std::string("@") + std::to_string(i);
    for (const std::string& t : images[i].repo_tags) listed += " " + Quote(t);
  }
  if (ref.empty()) {
    return InvalidArgumentError("the archive holds " + std::to_string(images.size()) +
                                " images, name one: " + listed);
  }
  return NotFoundError("no image " + Quote(ref) + " in the archive, which holds: " + listed);
}

// The digest a member's name claims: "blobs/sha256/<hex>" (docker 25+, OCI layout), and for a
// config "<hex>.json" (the image ID docker and skopeo name it by).
std::optional<Digest> DigestInName(std::string_view name, bool config) {
  std::string n = NormalizeMemberName(name);
  std::string_view hex = n;
  if (hex.starts_with("blobs/sha256/")) {
    hex.remove_prefix(13);
  } else if (config && hex.ends_with(".json")) {
    hex.remove_suffix(5);
  } else {
    return std::nullopt;
  }
  auto d = Digest::Parse("sha256:" + std::string(hex));
  if (!d.ok()) return std::nullopt;
  return *d;
}

std::string_view OciLayerType(unpack::Compression c) {
  switch (c) {
    case unpack::Compression::kGzip:
      return manifest::kOciLayerGzip;
    case unpack::Compression::kZstd:
      return manifest::kOciLayerZstd;
    case unpack::Compression::kNone:
      break;
  }
  return manifest::kOciLayerTar;
}

OrderedJson DescriptorJson(std::string_view media_type, const TarMember& m) {
  OrderedJson d;
  d["mediaType"] = media_type;
  d["digest"] = m.digest.String();
  d["size"] = m.size;
  return d;
}

class DockerArchiveSource : public ImageSource {
 public:
  DockerArchiveSource(std::unique_ptr<TarIndex> archive, ManifestBytes top,
                      std::vector<std::string> names, std::map<Digest, const TarMember*> blobs)
      : archive_(std::move(archive)),
        top_(std::move(top)),
        names_(std::move(names)),
        blobs_(std::move(blobs)) {}

  Result<ManifestBytes> TopManifest() override { return top_; }
  Result<ManifestBytes> Manifest(const Digest& digest) override {
    if (digest == top_.digest) return top_;
    return NotFoundError("no manifest " + digest.String() + " in the docker-archive");
  }
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    auto it = blobs_.find(d.digest);
    if (it == blobs_.end())
      return NotFoundError("no blob " + d.digest.String() + " in the archive");
    uint64_t from = static_cast<uint64_t>(std::max<int64_t>(sink.held, 0));
    if (from > it->second->size) {
      RETURN_IF_ERROR(sink.restart());
      from = 0;
    }
    return archive_->Read(*it->second, from, sink.write);
  }
  std::vector<std::string> Names() override { return names_; }

 private:
  std::unique_ptr<TarIndex> archive_;
  ManifestBytes top_;
  std::vector<std::string> names_;
  std::map<Digest, const TarMember*> blobs_;  // into archive_
};

// Finds the file `path` of manifest.json; `what` names it in errors.
Result<const TarMember*> FindFile(const TarIndex& archive, const std::string& path,
                                  const std::string& what, bool config) {
  auto m = archive.Find(path);
  if (!m.ok()) return m.status().WithContext(what);
  if (auto named = DigestInName(path, config); named && *named != (*m)->digest) {
    return DataLossError(what + " " + Quote(path) + ": digest mismatch: the file's bytes are " +
                         (*m)->digest.String());
  }
  return *m;
}

// Checks image `img` of `archive` and makes its manifest.
Result<std::unique_ptr<ImageSource>> MakeSource(std::unique_ptr<TarIndex> archive,
                                                const ArchiveImage& img) {
  ASSIGN_OR_RETURN(const TarMember* config, FindFile(*archive, img.config, "config", true));
  ASSIGN_OR_RETURN(std::string config_bytes,
                   archive->ReadAll(*config, manifest::kMaxManifestBytes));
  auto cfg = manifest::ParseConfig(config_bytes);
  if (!cfg.ok()) return cfg.status().WithContext("config " + Quote(img.config));
  if (cfg->diff_ids.size() != img.layers.size()) {
    return DataLossError("config " + Quote(img.config) + " lists " +
                         std::to_string(cfg->diff_ids.size()) + " diff_ids for " +
                         std::to_string(img.layers.size()) + " layers");
  }
  std::map<Digest, const TarMember*> blobs{{config->digest, config}};
  OrderedJson m;
  m["schemaVersion"] = 2;
  m["mediaType"] = manifest::kOciManifest;
  m["config"] = DescriptorJson(manifest::kOciConfig, *config);
  m["layers"] = OrderedJson::array();
  for (size_t i = 0; i < img.layers.size(); ++i) {
    const std::string what = "layer " + std::to_string(i + 1);
    ASSIGN_OR_RETURN(const TarMember* layer, FindFile(*archive, img.layers[i], what, false));
    if (layer->compression == unpack::Compression::kNone && layer->digest != cfg->diff_ids[i]) {
      return DataLossError(what + " " + Quote(img.layers[i]) + ": digest mismatch: its bytes are " +
                           layer->digest.String() + ", the config's diff_id is " +
                           cfg->diff_ids[i].String());
    }
    blobs.emplace(layer->digest, layer);
    m["layers"].push_back(DescriptorJson(OciLayerType(layer->compression), *layer));
  }
  ASSIGN_OR_RETURN(ManifestBytes top, MakeManifestBytes(m.dump(), manifest::kOciManifest));
  return std::unique_ptr<ImageSource>(
      new DockerArchiveSource(std::move(archive), std::move(top), img.repo_tags, std::move(blobs)));
}

// ---- writing ----

class DockerArchiveDestination : public ImageDestination {
 public:
  DockerArchiveDestination(std::string path, std::string tmp_path, UniqueFd fd)
      : path_(std::move(path)),
        tmp_path_(std::move(tmp_path)),
        fd_(std::move(fd)),
        tar_(fd_.get()) {}
  ~DockerArchiveDestination() override {
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
  }

  Result<bool> Reuse(const BlobInfo& b) override {
    std::lock_guard<std::mutex> lock(mu_);
    return written_.count(b.blob.digest) > 0;
  }

  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(failed_);
    if (written_.count(b.blob.digest)) return OkStatus();
    if (b.blob.digest.algorithm() != "sha256") {
      return InvalidArgumentError("a docker-archive holds sha256 blobs only");
    }
    const bool layer = b.diff_id.has_value() || manifest::IsLayerType(b.blob.media_type);
    const std::string name = b.blob.digest.hex() + (layer ? ".tar" : ".json");
    Status s = WriteBlob(b.blob, name, src);
    if (!s.ok()) {
      failed_ = s;
      return s;
    }
    written_[b.blob.digest] = name;
    return OkStatus();
  }

  Status PutManifest(const ManifestBytes& m) override {
    ASSIGN_OR_RETURN(manifest::Decoded d, manifest::Decode(m.media_type, m.bytes));
    if (d.kind != manifest::Kind::kImageManifest) return OkStatus();  // Commit refuses it
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Digest> layers;
    for (const Descriptor& l : d.manifest.layers) layers.push_back(l.digest);
    manifests_[m.digest] = {d.manifest.config.digest, std::move(layers)};
    return OkStatus();
  }

  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(failed_);
    auto it = manifests_.find(top.digest);
    if (it == manifests_.end()) {
      return InvalidArgumentError("a docker-archive holds one platform's image, not " +
                                  top.media_type + " " + top.digest.String());
    }
    auto member = [&](const Digest& d) -> Result<std::string> {
      auto w = written_.find(d);
      if (w == written_.end())
        return FailedPreconditionError("blob " + d.String() + " not written");
      return w->second;
    };
    OrderedJson entry;
    ASSIGN_OR_RETURN(entry["Config"], member(it->second.first));
    entry["RepoTags"] = OrderedJson::array();
    for (const std::string& n : names) {
      auto ref = Reference::Parse(n);
      if (!ref.ok() || ref->tag().empty()) continue;  // a digest alone is no RepoTag
      ASSIGN_OR_RETURN(Reference tagged, Reference::Parse(ref->Name() + ":" + ref->tag()));
      entry["RepoTags"].push_back(tagged.Familiar());
      if (!it->second.second.empty()) {
        repositories_[tagged.Familiar().substr(0, tagged.Familiar().rfind(':'))][ref->tag()] =
            it->second.second.back().hex();
      }
    }
    entry["Layers"] = OrderedJson::array();
    for (const Digest& l : it->second.second) {
      ASSIGN_OR_RETURN(std::string name, member(l));
      entry["Layers"].push_back(std::move(name));
    }
    images_.push_back(std::move(entry));
    return OkStatus();
  }

  Status Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(failed_);
    if (images_.empty()) return FailedPreconditionError("no image to write to the docker-archive");
    RETURN_IF_ERROR(tar_.AddFile("manifest.json", images_.dump()));
    RETURN_IF_ERROR(tar_.AddFile("repositories", repositories_.dump()));
    RETURN_IF_ERROR(tar_.Finish());
    FileSystem* fs = FileSystem::Default();
    if (path_ == "-") return CopyToStdout();
    RETURN_IF_ERROR(fs->Fsync(fd_.get()));
    RETURN_IF_ERROR(fs->RenameAt(AT_FDCWD, tmp_path_, AT_FDCWD, path_));
    tmp_path_.clear();
    return FsyncDir(fs, DirName(path_));
  }

 private:
  // Writes blob `d` as the member `name`, checking its size and digest. On failure the archive
  // is cut back to where the blob began.
  Status WriteBlob(const Descriptor& d, const std::string& name, ImageSource& src) {
    if (d.size < 0) return DataLossError("negative size");
    Status s = tar_.BeginFile(name, static_cast<uint64_t>(d.size));
    if (s.ok()) {
      s = CopyVerified(
          src, d, [&] { return tar_.RestartFile(); },
          [&](const char* data, size_t n) { return tar_.Write(data, n); });
    }
    if (s.ok()) s = tar_.EndFile();
    if (!s.ok()) {
      Status cut = tar_.DiscardFile();
      if (!cut.ok()) failed_ = cut;  // the archive is broken: the save fails
    }
    return s;
  }

  Status CopyToStdout() {
    std::vector<char> buf(1 << 20);
    for (uint64_t pos = 0; pos < tar_.size();) {
      ssize_t n = ::pread(fd_.get(), buf.data(), std::min<uint64_t>(buf.size(), tar_.size() - pos),
                          static_cast<off_t>(pos));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError(n < 0 ? errno : EIO, "read the spooled archive");
      RETURN_IF_ERROR(WriteAll(STDOUT_FILENO, buf.data(), static_cast<size_t>(n)));
      pos += static_cast<uint64_t>(n);
    }
    return OkStatus();
  }

  const std::string path_;
  std::string tmp_path_;  // removed by the destructor unless renamed; empty for "-"
  UniqueFd fd_;

  std::mutex mu_;                          // guards everything below
  TarWriter tar_;                          // writes fd_
  Status failed_;                          // the first failed PutBlob: the save fails
  std::map<Digest, std::string> written_;  // blob → its member name
  // Image manifest digest → (config, layers), from PutManifest.
  std::map<Digest, std::pair<Digest, std::vector<Digest>>> manifests_;
  OrderedJson images_ = OrderedJson::array();         // manifest.json
  OrderedJson repositories_ = OrderedJson::object();  // repositories
};

}  // namespace

Result<std::unique_ptr<ImageSource>> OpenDockerArchiveSource(std::unique_ptr<TarIndex> archive,
                                                             const std::string& ref) {
  auto mj = archive->Find("manifest.json");
  if (!mj.ok()) return mj.status();
  ASSIGN_OR_RETURN(std::string bytes, archive->ReadAll(**mj, manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(std::vector<ArchiveImage> images, ParseManifestJson(bytes));
  ASSIGN_OR_RETURN(size_t i, SelectImage(images, ref));
  return MakeSource(std::move(archive), images[i]);
}

Result<std::unique_ptr<ImageSource>> OpenDockerArchiveSource(const std::string& path,
                                                             const std::string& ref,
                                                             const std::string& spool_dir,
                                                             const TarIndexLimits& limits) {
  const std::string what = "docker-archive " + Quote(path);
  auto archive = TarIndex::Open(path, spool_dir, limits);
  if (!archive.ok()) return archive.status().WithContext(what);
  auto src = OpenDockerArchiveSource(std::move(archive).value(), ref);
  if (!src.ok()) return src.status().WithContext(what);
  return src;
}

Result<std::unique_ptr<ImageDestination>> OpenDockerArchiveDestination(
    const std::string& path, const std::string& spool_dir) {
  if (path == "-") {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenSpoolFile(spool_dir));
    return std::unique_ptr<ImageDestination>(new DockerArchiveDestination(path, "", std::move(fd)));
  }
  std::string tmp = DirName(path) + "/." + BaseName(path) + ".hoist-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "create a file beside " + Quote(path));
  return std::unique_ptr<ImageDestination>(new DockerArchiveDestination(path, tmp, UniqueFd(fd)));
}

}  // namespace hoist::transport
