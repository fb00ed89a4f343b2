#include "transport/oci_layout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "base/status_macros.h"
#include "content/index_file.h"
#include "image/records.h"
#include "manifest/platform.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "transport/store.h"
#include "unpack/layer.h"

namespace hoist::transport {
namespace {

using testing::BuildImage;
using testing::BuiltImage;
using testing::Format;
using testing::TempDir;

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string BlobPath(const std::string& dir, const std::string& digest) {
  return dir + "/" + LayoutBlobPath(*Digest::Parse(digest));
}

// Writes `img` as an OCI layout at `dir`, its index.json entry named `ref_name`.
void WriteLayout(const std::string& dir, const BuiltImage& img, const std::string& ref_name) {
  Status s = testing::WriteOciLayout(dir, ref_name, img);
  ASSERT_TRUE(s.ok()) << s.message();
}

BuiltImage TwoLayers() {
  return BuildImage(Format::kOci,
                    {{{.path = "etc/a", .content = "one"}}, {{.path = "usr/b", .content = "two"}}});
}

// Every blob of `img`, read through `src`, is as built.
void ExpectBlobs(ImageSource& src, const BuiltImage& img) {
  std::vector<testing::Blob> blobs = img.layers;
  blobs.push_back(img.config);
  for (const auto& b : blobs) {
    std::string got;
    Descriptor d{
        b.media_type, *Digest::Parse(b.digest), static_cast<int64_t>(b.data.size()), {}, {}, {}};
    Status s = src.Blob(d, registry::BlobSink{[&] {
                                                got.clear();
                                                return OkStatus();
                                              },
                                              [&](const char* p, size_t n) {
                                                got.append(p, n);
                                                return OkStatus();
                                              },
                                              0});
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(got, b.data) << b.digest;
  }
}

TEST(OciLayoutTest, DirectoryToDirectoryToArchiveAndBack) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  BuiltImage img = TwoLayers();
  const std::string first = tmp->path() + "/first", second = tmp->path() + "/second";
  const std::string archive = tmp->path() + "/image.tar";
  WriteLayout(first, img, "v1");

  auto src = OciLayoutSource::OpenDirectory(first);
  ASSERT_TRUE(src.ok()) << src.status().message();
  ASSERT_TRUE((*src)->Select("v1").ok());
  EXPECT_TRUE((*src)->Names().empty());  // a bare tag is not an image name
  auto dir_dst = OpenOciLayoutDestination(second);
  ASSERT_TRUE(dir_dst.ok()) << dir_dst.status().message();
  auto top = Copy(**src, **dir_dst, {"example.com/app:1"}, {});
  ASSERT_TRUE(top.ok()) << top.status().message();
  EXPECT_EQ(top->digest.String(), img.manifest_digest);
  ASSERT_TRUE((*dir_dst)->Close().ok());
  EXPECT_EQ(ReadFile(second + "/oci-layout"), content::kOciLayoutJson);

  auto again = OciLayoutSource::OpenDirectory(second);
  ASSERT_TRUE(again.ok()) << again.status().message();
  ASSERT_TRUE((*again)->Select("example.com/app:1").ok());
  EXPECT_EQ((*again)->Names(), std::vector<std::string>{"example.com/app:1"});
  auto tar_dst = OpenOciArchiveDestination(archive);
  ASSERT_TRUE(tar_dst.ok()) << tar_dst.status().message();
  ASSERT_TRUE(Copy(**again, **tar_dst, (*again)->Names(), {}).ok());
  ASSERT_TRUE((*tar_dst)->Close().ok());

  // The archive reads back the same, as it is and gzip-compressed (from a pipe, spooled).
  for (bool gzip : {false, true}) {
    std::string path = archive;
    if (gzip) {
      ASSERT_TRUE(
          testing::RunCommand({"sh", "-c", "gzip -c " + archive + " > " + archive + ".gz"}, 60)
              .ok());
      path = archive + ".gz";
    }
    auto reader = TarIndex::Open(path, tmp->path());
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    auto tar_src = OciLayoutSource::OpenArchive(std::move(reader).value());
    ASSERT_TRUE(tar_src.ok()) << tar_src.status().message();
    ASSERT_TRUE((*tar_src)->Select("").ok());
    EXPECT_EQ((*tar_src)->Names(), std::vector<std::string>{"example.com/app:1"});
    auto m = (*tar_src)->TopManifest();
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->bytes, img.manifest);
    ExpectBlobs(**tar_src, img);
  }
  // tar itself reads it.
  auto listing = testing::RunCommand({"tar", "-tf", archive}, 60);
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  EXPECT_NE(listing->find("index.json"), std::string::npos);
  EXPECT_NE(listing->find("blobs/sha256/" + img.layers[1].digest.substr(7)), std::string::npos);
}

// A copy into the store: every layer extracted, the record written last under the name given.
TEST(StoreDestinationTest, LayoutIntoTheStoreAndOutAgain) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  BuiltImage img = TwoLayers();
  WriteLayout(tmp->path() + "/layout", img, "v1");
  auto store = content::Store::Open(tmp->path() + "/store");
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto src = OciLayoutSource::OpenDirectory(tmp->path() + "/layout");
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Select("").ok());
  StoreDestination dst(**store, {}, nullptr);
  auto top = Copy(**src, dst, {"example.com/app:1"}, {});
  ASSERT_TRUE(top.ok()) << top.status().message();
  ASSERT_EQ(dst.committed().size(), 1u);
  for (const auto& id : img.diff_ids) EXPECT_TRUE(unpack::LayerExists(**store, *Digest::Parse(id)));

  auto out = StoreSource::Open(**store, "example.com/app:1");
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ((*out)->Names(), std::vector<std::string>{"example.com/app:1"});
  EXPECT_EQ((*out)->TopManifest()->digest.String(), img.manifest_digest);
  ExpectBlobs(**out, img);
  // A second copy reuses everything.
  StoreDestination again(**store, {}, nullptr);
  const testing::Blob& l = img.layers[0];
  BlobInfo layer{
      Descriptor{
          l.media_type, *Digest::Parse(l.digest), static_cast<int64_t>(l.data.size()), {}, {}, {}},
      *Digest::Parse(img.diff_ids[0])};
  EXPECT_TRUE(again.Reuse(layer).value());
}

// A multi-platform index copied whole into the store: recorded by the host's manifest, with the
// index as what the name resolved to.
TEST(StoreDestinationTest, AnIndexIsRecordedByTheHostsManifest) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  const Platform host = manifest::HostPlatform();
  const std::string other = host.architecture == "arm64" ? "amd64" : "arm64";
  BuiltImage mine = BuildImage(Format::kOci, {{{.path = "a", .content = "mine"}}}, "linux",
                               host.architecture, host.variant);
  BuiltImage theirs =
      BuildImage(Format::kOci, {{{.path = "a", .content = "theirs"}}}, "linux", other);
  testing::BuiltIndex index = testing::BuildIndex(Format::kOci, {mine, theirs});
  const std::string dir = tmp->path() + "/layout";
  WriteLayout(dir, theirs, "v1");
  WriteLayout(dir, mine, "v1");  // the last one written names the index.json entry
  WriteFile(BlobPath(dir, index.digest), index.manifest);
  Descriptor entry{index.media_type,
                   *Digest::Parse(index.digest),
                   static_cast<int64_t>(index.manifest.size()),
                   {},
                   {},
                   {}};
  entry.annotations[content::kRefNameAnnotation] = "v1";
  WriteFile(dir + "/index.json", LayoutIndexJson({entry}));

  auto store = content::Store::Open(tmp->path() + "/store");
  ASSERT_TRUE(store.ok());
  auto src = OciLayoutSource::OpenDirectory(dir);
  ASSERT_TRUE(src.ok()) << src.status().message();
  ASSERT_TRUE((*src)->Select("v1").ok());
  StoreDestination dst(**store, {}, nullptr);
  CopyOptions all;
  all.all_platforms = true;
  auto top = Copy(**src, dst, {"example.com/multi:1"}, all);
  ASSERT_TRUE(top.ok()) << top.status().message();
  EXPECT_EQ(top->digest.String(), index.digest);
  auto image = image::Find(**store, *Reference::Parse("example.com/multi:1"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(image->manifest.digest.String(), mine.manifest_digest);
  EXPECT_EQ(image->repo_digest.String(), index.digest);
  EXPECT_TRUE((**store).Has(*Digest::Parse(theirs.layers[0].digest)));
}

// A hostile layout: each fails with one clear error and nothing is recorded in the store.
TEST(OciLayoutTest, HostileLayoutsAreRefusedAndNothingIsRecorded) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  BuiltImage img = TwoLayers();
  struct Case {
    std::string name;
    std::function<void(const std::string& dir)> spoil;
    StatusCode code;
    std::string says;
  } cases[] = {
      {"symlinked blob",
       [&](const std::string& dir) {
         const std::string blob = BlobPath(dir, img.layers[1].digest);
         ASSERT_EQ(::rename(blob.c_str(), (dir + "/elsewhere").c_str()), 0);
         ASSERT_EQ(::symlink("../../elsewhere", blob.c_str()), 0);
       },
       StatusCode::kFailedPrecondition, "symlink"},
      {"blob that is not its digest",
       [&](const std::string& dir) {
         std::string data = img.layers[1].data;
         data[data.size() / 2] ^= 1;
         WriteFile(BlobPath(dir, img.layers[1].digest), data);
       },
       StatusCode::kDataLoss, "digest mismatch"},
      {"missing blob",
       [&](const std::string& dir) {
         ASSERT_EQ(::unlink(BlobPath(dir, img.layers[0].digest).c_str()), 0);
       },
       StatusCode::kNotFound, "layout has no blobs/sha256/"},
      {"huge index.json",
       [&](const std::string& dir) { WriteFile(dir + "/index.json", std::string(5 << 20, ' ')); },
       StatusCode::kResourceExhausted, "index.json is over the cap"},
      {"symlinked index.json",
       [&](const std::string& dir) {
         ASSERT_EQ(::rename((dir + "/index.json").c_str(), (dir + "/real.json").c_str()), 0);
         ASSERT_EQ(::symlink("real.json", (dir + "/index.json").c_str()), 0);
       },
       StatusCode::kFailedPrecondition, "symlink"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dir = tmp->path() + "/layout" + std::to_string(n++);
    WriteLayout(dir, img, "v1");
    c.spoil(dir);
    auto store = content::Store::Open(dir + "-store");
    ASSERT_TRUE(store.ok());
    Status s = [&]() -> Status {
      ASSIGN_OR_RETURN(auto src, OciLayoutSource::OpenDirectory(dir));
      RETURN_IF_ERROR(src->Select("v1"));
      StoreDestination dst(**store, {}, nullptr);
      return Copy(*src, dst, {"example.com/app:1"}, {}).status();
    }();
    EXPECT_EQ(s.code(), c.code) << s.message();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
    EXPECT_TRUE(image::List(**store)->empty());
  }
}

TEST(OciArchiveTest, LinksAndDuplicatesAreRefused) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  const std::string dir = tmp->path() + "/layout";
  BuiltImage img = TwoLayers();
  WriteLayout(dir, img, "v1");
  ASSERT_EQ(::rename((dir + "/index.json").c_str(), (dir + "/real.json").c_str()), 0);
  ASSERT_EQ(::symlink("real.json", (dir + "/index.json").c_str()), 0);
  ASSERT_TRUE(testing::RunCommand({"tar", "-C", dir, "-cf", tmp->path() + "/a.tar", "."}, 60).ok());
  auto reader = TarIndex::Open(tmp->path() + "/a.tar", tmp->path());
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  auto src = OciLayoutSource::OpenArchive(std::move(reader).value());
  EXPECT_EQ(src.status().code(), StatusCode::kFailedPrecondition) << src.status().message();
  EXPECT_NE(src.status().message().find("index.json"), std::string::npos);

  // The same name twice.
  ASSERT_TRUE(
      testing::RunCommand({"tar", "-C", dir, "-rf", tmp->path() + "/a.tar", "oci-layout"}, 60)
          .ok());
  auto twice = TarIndex::Open(tmp->path() + "/a.tar", tmp->path());
  EXPECT_EQ(twice.status().code(), StatusCode::kDataLoss) << twice.status().message();
}

// Input that is not a regular file (a pipe, as standard input often is) is spooled first.
TEST(OciArchiveTest, APipeIsSpooledAndRead) {
  auto tmp = TempDir::Create();
  ASSERT_TRUE(tmp.ok());
  BuiltImage img = TwoLayers();
  WriteLayout(tmp->path() + "/layout", img, "example.com/app:1");
  auto tar = testing::RunCommand({"tar", "-C", tmp->path() + "/layout", "-cf", "-", "."}, 60);
  ASSERT_TRUE(tar.ok()) << tar.status().message();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]);
  std::thread writer([&, fd = UniqueFd(fds[1])] {
    EXPECT_TRUE(WriteAll(fd.get(), tar->data(), tar->size()).ok());
  });
  auto reader = TarIndex::Open("/dev/fd/" + std::to_string(read_end.get()), tmp->path());
  writer.join();
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  auto src = OciLayoutSource::OpenArchive(std::move(reader).value());
  ASSERT_TRUE(src.ok()) << src.status().message();
  ASSERT_TRUE((*src)->Select("example.com/app:1").ok());
  ExpectBlobs(**src, img);
}

}  // namespace
}  // namespace hoist::transport
