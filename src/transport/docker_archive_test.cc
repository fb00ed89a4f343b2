#include "transport/docker_archive.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "base/status_macros.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "transport/collecting_destination_test.h"

namespace hoist::transport {
namespace {

using hoist::testing::BuildImageFromBlobs;
using hoist::testing::BuiltImage;
using hoist::testing::Format;
using hoist::testing::Gzip;
using hoist::testing::MakeTar;
using hoist::testing::Sha256Digest;
using hoist::testing::TarEntry;
using hoist::testing::TempDir;
using ::testing::HasSubstr;

std::string Hex(const std::string& digest) { return digest.substr(7); }

// An image of plain-tar layers (the way docker save stores them).
BuiltImage PlainImage(const std::vector<std::string>& contents) {
  std::vector<hoist::testing::Blob> layers;
  std::vector<std::string> diff_ids;
  for (size_t i = 0; i < contents.size(); ++i) {
    std::string tar = MakeTar({{.path = "f" + std::to_string(i), .content = contents[i]}});
    diff_ids.push_back(Sha256Digest(tar));
    layers.push_back({std::string(manifest::kOciLayerTar), Sha256Digest(tar), tar});
  }
  return BuildImageFromBlobs(Format::kDocker, layers, diff_ids);
}

std::string TagsJson(const std::vector<std::string>& tags) {
  std::string out = "[";
  for (size_t i = 0; i < tags.size(); ++i) out += (i ? ",\"" : "\"") + tags[i] + "\"";
  return out + "]";
}

// The entries of a docker (up to 24) archive of `img`: <id>/layer.tar, <config-hex>.json.
std::vector<TarEntry> LegacyEntries(const BuiltImage& img, std::string* layers_json) {
  std::vector<TarEntry> e;
  *layers_json = "[";
  for (size_t i = 0; i < img.layers.size(); ++i) {
    std::string id = Hex(Sha256Digest("v1 id " + std::to_string(i) + img.config.digest));
    e.push_back({.path = id + "/", .type = '5'});
    e.push_back({.path = id + "/VERSION", .content = "1.0"});
    e.push_back({.path = id + "/json", .content = "{}"});
    e.push_back({.path = id + "/layer.tar", .content = img.layers[i].data});
    *layers_json += (i ? ",\"" : "\"") + id + "/layer.tar\"";
  }
  *layers_json += "]";
  e.push_back({.path = Hex(img.config.digest) + ".json", .content = img.config.data});
  return e;
}

std::string LegacyArchive(const BuiltImage& img, const std::vector<std::string>& tags) {
  std::string layers;
  std::vector<TarEntry> e = LegacyEntries(img, &layers);
  e.push_back({.path = "manifest.json",
               .content = "[{\"Config\":\"" + Hex(img.config.digest) + ".json\",\"RepoTags\":" +
                          TagsJson(tags) + ",\"Layers\":" + layers + "}]"});
  e.push_back({.path = "repositories", .content = "{}"});
  return MakeTar(e);
}

// The manifest.json element of an image stored as blobs/sha256/<hex> (docker 25+).
std::string BlobsElement(const BuiltImage& img, const std::vector<std::string>& tags) {
  std::string layers = "[";
  for (size_t i = 0; i < img.layers.size(); ++i) {
    layers += (i ? ",\"" : "\"") + std::string("blobs/sha256/") + Hex(img.layers[i].digest) + "\"";
  }
  return "{\"Config\":\"blobs/sha256/" + Hex(img.config.digest) +
         "\",\"RepoTags\":" + TagsJson(tags) + ",\"Layers\":" + layers + "]}";
}

std::vector<TarEntry> BlobEntries(const BuiltImage& img) {
  std::vector<TarEntry> e = {{.path = "blobs/", .type = '5'},
                             {.path = "blobs/sha256/", .type = '5'}};
  e.push_back({.path = "blobs/sha256/" + Hex(img.config.digest), .content = img.config.data});
  for (const auto& l : img.layers)
    e.push_back({.path = "blobs/sha256/" + Hex(l.digest), .content = l.data});
  return e;
}

std::string BlobsArchive(const BuiltImage& img, const std::vector<std::string>& tags) {
  std::vector<TarEntry> e = BlobEntries(img);
  e.push_back({.path = "oci-layout", .content = "{\"imageLayoutVersion\":\"1.0.0\"}"});
  e.push_back({.path = "index.json", .content = "{\"schemaVersion\":2,\"manifests\":[]}"});
  e.push_back({.path = "manifest.json", .content = "[" + BlobsElement(img, tags) + "]"});
  return MakeTar(e);
}

class DockerArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("docker-archive-test-");
    ASSERT_TRUE(d.ok()) << d.status().message();
    dir_.emplace(std::move(*d));
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_->path() + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  Result<std::unique_ptr<ImageSource>> Open(const std::string& bytes, const std::string& ref = "") {
    return OpenDockerArchiveSource(Write("in.tar", bytes), ref, dir_->path());
  }
  std::optional<TempDir> dir_;
};

// Checks that `src` serves `img`: its config, its layers in order, each blob's bytes.
void ExpectServes(ImageSource& src, const BuiltImage& img) {
  auto top = src.TopManifest();
  ASSERT_TRUE(top.ok()) << top.status().message();
  auto d = manifest::Decode(top->media_type, top->bytes);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->manifest.config.digest.String(), img.config.digest);
  ASSERT_EQ(d->manifest.layers.size(), img.layers.size());
  for (size_t i = 0; i < img.layers.size(); ++i) {
    EXPECT_EQ(d->manifest.layers[i].digest.String(), img.layers[i].digest);
  }
  CollectingDestination dst;
  auto copied = Copy(src, dst, {}, CopyOptions{});
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(dst.blobs[img.config.digest], img.config.data);
  for (const auto& l : img.layers) EXPECT_EQ(dst.blobs[l.digest], l.data);
}

TEST_F(DockerArchiveTest, ReadsTheLegacyLayout) {
  BuiltImage img = PlainImage({"one", "two"});
  auto src = Open(LegacyArchive(img, {"app:1", "app:latest"}));
  ASSERT_TRUE(src.ok()) << src.status().message();
  ExpectServes(**src, img);
  EXPECT_EQ((*src)->Names(), (std::vector<std::string>{"app:1", "app:latest"}));
  auto top = (*src)->TopManifest();
  EXPECT_THAT(top->bytes, HasSubstr(manifest::kOciLayerTar));
}

TEST_F(DockerArchiveTest, ReadsTheBlobsLayoutGzippedAndFromStdin) {
  BuiltImage img = PlainImage({"one"});
  auto src = Open(Gzip(BlobsArchive(img, {"app:1"})));
  ASSERT_TRUE(src.ok()) << src.status().message();
  ExpectServes(**src, img);
  auto zstd = Open(hoist::testing::Zstd(BlobsArchive(img, {"app:1"})));
  ASSERT_TRUE(zstd.ok()) << zstd.status().message();
  ExpectServes(**zstd, img);

  // stdin: spooled the same way.
  std::string path = Write("stdin.tar", BlobsArchive(img, {"app:1"}));
  int saved = ::dup(0);
  ASSERT_EQ(::close(0), 0);
  ASSERT_EQ(::open(path.c_str(), O_RDONLY), 0);
  auto piped = OpenDockerArchiveSource("-", "", dir_->path());
  ::dup2(saved, 0);
  ::close(saved);
  ASSERT_TRUE(piped.ok()) << piped.status().message();
  ExpectServes(**piped, img);
}

TEST_F(DockerArchiveTest, ServesACompressedLayerAsStored) {
  std::string tar = MakeTar({{.path = "a", .content = "gz"}});
  std::string gz = Gzip(tar);
  BuiltImage img = BuildImageFromBlobs(
      Format::kDocker, {{std::string(manifest::kDockerLayer), Sha256Digest(gz), gz}},
      {Sha256Digest(tar)});
  auto src = Open(LegacyArchive(img, {"app:1"}));
  ASSERT_TRUE(src.ok()) << src.status().message();
  ExpectServes(**src, img);
  EXPECT_THAT((*src)->TopManifest()->bytes, HasSubstr(manifest::kOciLayerGzip));
}

TEST_F(DockerArchiveTest, PicksAnImageByRepoTagOrIndex) {
  BuiltImage a = PlainImage({"a"}), b = PlainImage({"b"});
  std::vector<TarEntry> e = BlobEntries(a);
  for (auto& x : BlobEntries(b)) {
    if (x.type == '0') e.push_back(x);
  }
  e.push_back({.path = "manifest.json",
               .content = "[" + BlobsElement(a, {"a:1"}) + "," + BlobsElement(b, {"b:1"}) + "]"});
  std::string archive = MakeTar(e);

  auto none = Open(archive);
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("\"b:1\""));
  auto by_tag = Open(archive, "docker.io/library/b:1");
  ASSERT_TRUE(by_tag.ok()) << by_tag.status().message();
  ExpectServes(**by_tag, b);
  auto by_index = Open(archive, "@0");
  ASSERT_TRUE(by_index.ok()) << by_index.status().message();
  ExpectServes(**by_index, a);
  EXPECT_EQ(Open(archive, "c:1").status().code(), StatusCode::kNotFound);
}

// Hostile archives: each refused before anything is read, with an error naming the file.
TEST_F(DockerArchiveTest, RefusesHostileArchives) {
  BuiltImage img = PlainImage({"one"});
  std::string layers;
  std::vector<TarEntry> base = LegacyEntries(img, &layers);
  const std::string config = "\"Config\":\"" + Hex(img.config.digest) + ".json\"";
  auto with = [&](std::vector<TarEntry> extra) {
    std::vector<TarEntry> e = base;
    e.insert(e.end(), extra.begin(), extra.end());
    return MakeTar(e);
  };
  struct Case {
    std::string name, archive;
    StatusCode code;
    std::string message;
  } cases[] = {
      {"traversal",
       with({{.path = "manifest.json",
              .content = "[{" + config + ",\"Layers\":[\"../../etc/passwd\"]}]"}}),
       StatusCode::kInvalidArgument, "layer 1: \"../../etc/passwd\" is not a relative name"},
      {"absolute",
       with({{.path = "manifest.json",
              .content = "[{" + config + ",\"Layers\":[\"/etc/passwd\"]}]"}}),
       StatusCode::kInvalidArgument, "layer 1: \"/etc/passwd\" is not a relative name"},
      {"symlinked manifest.json",
       with({{.path = "m", .content = "[]"},
             {.path = "manifest.json", .type = '2', .linkname = "m"}}),
       StatusCode::kDataLoss, "\"manifest.json\" is not a regular file"},
      {"hardlinked layer",
       with({{.path = "l.tar", .type = '1', .linkname = Hex(img.config.digest) + ".json"},
             {.path = "manifest.json", .content = "[{" + config + ",\"Layers\":[\"l.tar\"]}]"}}),
       StatusCode::kDataLoss, "layer 1: \"l.tar\" is not a regular file"},
      {"layer digest",
       with({{.path = "x/layer.tar", .content = MakeTar({{.path = "evil"}})},
             {.path = "manifest.json",
              .content = "[{" + config + ",\"Layers\":[\"x/layer.tar\"]}]"}}),
       StatusCode::kDataLoss, "layer 1 \"x/layer.tar\": digest mismatch"},
      {"config digest",
       with({{.path = std::string(64, 'a') + ".json", .content = img.config.data},
             {.path = "manifest.json",
              .content = "[{\"Config\":\"" + std::string(64, 'a') + ".json\",\"Layers\":" + layers +
                         "}]"}}),
       StatusCode::kDataLoss, "config \"aaaa"},
      {"missing blob",
       with({{.path = "manifest.json", .content = "[{" + config + ",\"Layers\":[\"gone.tar\"]}]"}}),
       StatusCode::kNotFound, "layer 1: \"gone.tar\" is not in the archive"},
      {"duplicate",
       with({{.path = "manifest.json", .content = "[{" + config + ",\"Layers\":" + layers + "}]"},
             {.path = "./manifest.json", .content = "[]"}}),
       StatusCode::kDataLoss, "\"manifest.json\" appears more than once"},
      {"huge manifest.json",
       with({{.path = "manifest.json",
              .content = std::string(manifest::kMaxManifestBytes + 1, ' ')}}),
       StatusCode::kResourceExhausted, "\"manifest.json\" of 4194305 bytes is over the cap"},
      {"no manifest.json", with({}), StatusCode::kNotFound, "\"manifest.json\" is not in"},
      {"diff_ids", with({{.path = "manifest.json", .content = "[{" + config + ",\"Layers\":[]}]"}}),
       StatusCode::kDataLoss, "lists 1 diff_ids for 0 layers"},
  };
  for (const auto& c : cases) {
    auto src = Open(c.archive);
    EXPECT_EQ(src.status().code(), c.code) << c.name << ": " << src.status().message();
    EXPECT_THAT(src.status().message(), HasSubstr(c.message)) << c.name;
    EXPECT_THAT(src.status().message(), HasSubstr("docker-archive \"")) << c.name;
  }
  // Nothing left behind: the spool files were unnamed.
  auto left = hoist::testing::RunCommand({"ls", "-A", dir_->path()}, 10);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, "in.tar\n");
}

TEST_F(DockerArchiveTest, RefusesTooManyMembers) {
  BuiltImage img = PlainImage({"one"});
  TarIndexLimits limits;
  limits.max_members = 3;
  auto src =
      OpenDockerArchiveSource(Write("in.tar", LegacyArchive(img, {})), "", dir_->path(), limits);
  EXPECT_EQ(src.status().code(), StatusCode::kResourceExhausted) << src.status().message();
}

// Lists the members of a tar: name → bytes.
std::map<std::string, std::string> Members(const std::string& path, const std::string& spool) {
  std::map<std::string, std::string> out;
  auto index = TarIndex::Open(path, spool);
  EXPECT_TRUE(index.ok()) << index.status().message();
  if (!index.ok()) return out;
  for (std::string name : {"manifest.json", "repositories"}) {
    auto m = (*index)->Find(name);
    if (m.ok()) out[name] = *(*index)->ReadAll(**m, 1 << 20);
  }
  return out;
}

TEST_F(DockerArchiveTest, WritesAnArchiveItReadsBackSharingBlobs) {
  BuiltImage a = PlainImage({"shared", "a"});
  BuiltImage b = PlainImage({"shared", "b"});
  auto sa = Open(LegacyArchive(a, {"a:1"}));
  ASSERT_TRUE(sa.ok()) << sa.status().message();
  auto sb = OpenDockerArchiveSource(Write("b.tar", LegacyArchive(b, {"b:1"})), "", dir_->path());
  ASSERT_TRUE(sb.ok()) << sb.status().message();

  const std::string out = dir_->path() + "/out.tar";
  auto dst = OpenDockerArchiveDestination(out, dir_->path());
  ASSERT_TRUE(dst.ok()) << dst.status().message();
  ASSERT_TRUE(Copy(**sa, **dst, {"127.0.0.1:5000/a:1", "a@" + a.config.digest}, {}).ok());
  ASSERT_TRUE(Copy(**sb, **dst, (*sb)->Names(), {}).ok());  // b:1
  struct stat st;
  EXPECT_NE(::stat(out.c_str(), &st), 0) << "visible before Close";
  ASSERT_TRUE((*dst)->Close().ok());
  dst->reset();
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  auto ra = OpenDockerArchiveSource(out, "127.0.0.1:5000/a:1", dir_->path());
  ASSERT_TRUE(ra.ok()) << ra.status().message();
  ExpectServes(**ra, a);
  auto rb = OpenDockerArchiveSource(out, "b:1", dir_->path());
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  ExpectServes(**rb, b);
  auto members = Members(out, dir_->path());
  EXPECT_EQ(members["repositories"], "{\"127.0.0.1:5000/a\":{\"1\":\"" + Hex(a.layers[1].digest) +
                                         "\"},\"b\":{\"1\":\"" + Hex(b.layers[1].digest) + "\"}}");
  // The shared layer once: two configs, three layers, manifest.json, repositories, no more.
  auto listing = hoist::testing::RunCommand({"tar", "tf", out}, 30);
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  EXPECT_EQ(std::count(listing->begin(), listing->end(), '\n'), 7) << *listing;
}

TEST_F(DockerArchiveTest, WritesToStdoutAtClose) {
  BuiltImage img = PlainImage({"one"});
  auto src = Open(Gzip(LegacyArchive(img, {"a:1"})));
  ASSERT_TRUE(src.ok()) << src.status().message();
  const std::string out = dir_->path() + "/stdout.tar";
  int saved = ::dup(1);
  ASSERT_EQ(::close(1), 0);
  ASSERT_EQ(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(auto dst, OpenDockerArchiveDestination("-", dir_->path()));
    RETURN_IF_ERROR(Copy(**src, *dst, (*src)->Names(), {}).status());
    struct stat st;
    if (::fstat(1, &st) != 0 || st.st_size != 0) return InternalError("written before Close");
    return dst->Close();
  }();
  ::dup2(saved, 1);
  ::close(saved);
  ASSERT_TRUE(s.ok()) << s.message();
  auto back = OpenDockerArchiveSource(out, "a:1", dir_->path());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectServes(**back, img);
}

// A source that serves the config of `real` as it is and each layer through `send`, given the
// layer's real bytes.
class LayerSendingSource : public ImageSource {
 public:
  using Send = std::function<Status(const std::string& real, const registry::BlobSink& sink)>;
  LayerSendingSource(ImageSource& real, Send send) : real_(real), send_(std::move(send)) {}
  Result<ManifestBytes> TopManifest() override { return real_.TopManifest(); }
  Result<ManifestBytes> Manifest(const Digest& d) override { return real_.Manifest(d); }
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    if (d.media_type == manifest::kOciConfig) return real_.Blob(d, sink);
    std::string bytes;
    RETURN_IF_ERROR(real_.Blob(d, registry::BlobSink{[&] { return OkStatus(); },
                                                     [&](const char* data, size_t n) {
                                                       bytes.append(data, n);
                                                       return OkStatus();
                                                     },
                                                     0}));
    return send_(bytes, sink);
  }

 private:
  ImageSource& real_;
  Send send_;
};

// The tar writer goes back to the start of a blob whose source starts again: the archive holds
// the blob once, whole.
TEST_F(DockerArchiveTest, ABlobStartedAgainIsWrittenOnce) {
  BuiltImage img = PlainImage({"one", "two"});
  auto src = Open(LegacyArchive(img, {"a:1"}));
  ASSERT_TRUE(src.ok()) << src.status().message();
  // Half of every layer, then again from the start, all of it.
  LayerSendingSource restarting(**src, [](const std::string& real, const registry::BlobSink& sink) {
    RETURN_IF_ERROR(sink.write(real.data(), real.size() / 2));
    RETURN_IF_ERROR(sink.restart());
    return sink.write(real.data(), real.size());
  });
  const std::string out = dir_->path() + "/out.tar";
  auto dst = OpenDockerArchiveDestination(out, dir_->path());
  ASSERT_TRUE(dst.ok()) << dst.status().message();
  ASSERT_TRUE(Copy(restarting, **dst, {"a:1"}, {}).ok());
  ASSERT_TRUE((*dst)->Close().ok());
  auto back = OpenDockerArchiveSource(out, "a:1", dir_->path());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectServes(**back, img);
}

// An archive indexed once (as load does to tell its kind) is read as a docker-archive without
// being read again: here from standard input, which can be read only once.
TEST_F(DockerArchiveTest, ReadsAnArchiveAlreadyIndexed) {
  BuiltImage img = PlainImage({"one"});
  const std::string path = Write("in.tar", LegacyArchive(img, {"a:1"}));
  int saved = ::dup(0);
  ASSERT_EQ(::close(0), 0);
  ASSERT_EQ(::open(path.c_str(), O_RDONLY), 0);
  auto index = TarIndex::Open("-", dir_->path());
  ::dup2(saved, 0);
  ::close(saved);
  ASSERT_TRUE(index.ok()) << index.status().message();
  EXPECT_TRUE((*index)->spooled());
  auto src = OpenDockerArchiveSource(std::move(index).value(), "a:1");
  ASSERT_TRUE(src.ok()) << src.status().message();
  EXPECT_EQ((*src)->Names(), std::vector<std::string>{"a:1"});
  ExpectServes(**src, img);
}

TEST_F(DockerArchiveTest, AFailedSaveLeavesNoFile) {
  BuiltImage img = PlainImage({"one"});
  auto src = Open(LegacyArchive(img, {"a:1"}));
  ASSERT_TRUE(src.ok()) << src.status().message();
  // Blob bytes that differ from what the manifest says.
  LayerSendingSource lying(**src, [](const std::string& real, const registry::BlobSink& sink) {
    std::string bytes(real.size(), 'x');
    return sink.write(bytes.data(), bytes.size());
  });
  const std::string out = dir_->path() + "/out.tar";
  {
    auto dst = OpenDockerArchiveDestination(out, dir_->path());
    ASSERT_TRUE(dst.ok()) << dst.status().message();
    auto copied = Copy(lying, **dst, {}, {});
    EXPECT_EQ(copied.status().code(), StatusCode::kDataLoss) << copied.status().message();
    EXPECT_THAT(copied.status().message(), HasSubstr("digest mismatch"));
    EXPECT_EQ((*dst)->Close().code(), StatusCode::kDataLoss);
  }
  auto left = hoist::testing::RunCommand({"ls", "-A", dir_->path()}, 10);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, "in.tar\n");
}

TEST_F(DockerArchiveTest, RefusesToCommitAnIndexOrMissingBlobs) {
  auto dst = OpenDockerArchiveDestination(dir_->path() + "/out.tar", dir_->path());
  ASSERT_TRUE(dst.ok()) << dst.status().message();
  auto index = MakeManifestBytes("{\"schemaVersion\":2,\"mediaType\":\"" +
                                     std::string(manifest::kOciIndex) + "\",\"manifests\":[]}",
                                 "");
  ASSERT_TRUE(index.ok()) << index.status().message();
  ASSERT_TRUE((*dst)->PutManifest(*index).ok());
  EXPECT_EQ((*dst)->Commit(*index, {"a:1"}).code(), StatusCode::kInvalidArgument);
  // An image manifest whose blobs were never put.
  BuiltImage img = PlainImage({"one"});
  auto image = MakeManifestBytes(img.manifest, img.manifest_media_type);
  ASSERT_TRUE(image.ok()) << image.status().message();
  ASSERT_TRUE((*dst)->PutManifest(*image).ok());
  EXPECT_EQ((*dst)->Commit(*image, {"a:1"}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*dst)->Close().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace hoist::transport
