#include "transport/transport.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "base/status_macros.h"
#include "support/image_builder.h"

namespace hoist::transport {
namespace {

using testing::BuildImage;
using testing::BuiltImage;
using testing::Format;

// A source holding documents and blobs in memory.
class MemorySource : public ImageSource {
 public:
  void Add(const std::string& digest, std::string bytes) { data_[digest] = std::move(bytes); }
  void AddImage(const BuiltImage& img) {
    Add(img.manifest_digest, img.manifest);
    Add(img.config.digest, img.config.data);
    for (const auto& l : img.layers) Add(l.digest, l.data);
  }
  std::string top, top_type;

  Result<ManifestBytes> TopManifest() override { return MakeManifestBytes(top, top_type); }
  Result<ManifestBytes> Manifest(const Digest& d) override {
    auto it = data_.find(d.String());
    if (it == data_.end()) return NotFoundError("no manifest " + d.String());
    return ManifestBytes{"", it->second, d};
  }
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    auto it = data_.find(d.digest.String());
    if (it == data_.end()) return NotFoundError("no blob " + d.digest.String());
    return sink.write(it->second.data() + sink.held, it->second.size() - sink.held);
  }

 private:
  std::map<std::string, std::string> data_;
};

// A destination that records what it is asked, in order.
class RecordingDestination : public ImageDestination {
 public:
  std::set<std::string> have;  // blobs it reuses
  std::vector<std::string> calls;
  std::map<std::string, std::optional<Digest>> diff_ids;

  Result<bool> Reuse(const BlobInfo& b) override {
    Log("reuse " + b.blob.digest.String());
    return have.count(b.blob.digest.String()) > 0;
  }
  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    std::string got;
    RETURN_IF_ERROR(src.Blob(b.blob, registry::BlobSink{[&] { return OkStatus(); },
                                                        [&](const char* d, size_t n) {
                                                          got.append(d, n);
                                                          return OkStatus();
                                                        },
                                                        0}));
    std::lock_guard<std::mutex> lock(mu_);
    diff_ids[b.blob.digest.String()] = b.diff_id;
    calls.push_back("put " + b.blob.digest.String());
    return OkStatus();
  }
  Status PutManifest(const ManifestBytes& m) override {
    Log("manifest " + m.digest.String());
    return OkStatus();
  }
  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override {
    Log("commit " + top.digest.String() + (names.empty() ? "" : " " + names[0]));
    return OkStatus();
  }
  size_t Index(const std::string& call) const {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i] == call) return i;
    }
    return calls.size();
  }

 private:
  void Log(std::string call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls.push_back(std::move(call));
  }
  std::mutex mu_;
};

CopyOptions Options(std::string platform, bool all = false) {
  CopyOptions o;
  o.platform = std::move(platform);
  o.all_platforms = all;
  return o;
}

BuiltImage TwoLayers(const std::string& arch = "amd64") {
  return BuildImage(Format::kOci,
                    {{{.path = "a", .content = "one " + arch}}, {{.path = "b", .content = "two"}}},
                    "linux", arch);
}

TEST(ParseLocation, Transports) {
  struct Case {
    std::string text;
    Location::Kind kind;
    std::string path, ref;
  } cases[] = {
      {"docker://127.0.0.1:5000/app:1", Location::Kind::kRegistry, "", "127.0.0.1:5000/app:1"},
      {"oci:/tmp/layout:v1", Location::Kind::kOciDir, "/tmp/layout", "v1"},
      {"oci:/tmp/layout", Location::Kind::kOciDir, "/tmp/layout", ""},
      {"oci-archive:img.tar:app:1", Location::Kind::kOciArchive, "img.tar", "app:1"},
      {"docker-archive:-", Location::Kind::kDockerArchive, "-", ""},
      {"hoist:alpine:3.20", Location::Kind::kStore, "", "alpine:3.20"},
      {"alpine:3.20", Location::Kind::kStore, "", "alpine:3.20"},
  };
  for (const auto& c : cases) {
    auto l = ParseLocation(c.text);
    ASSERT_TRUE(l.ok()) << c.text << ": " << l.status().message();
    EXPECT_EQ(l->kind, c.kind) << c.text;
    EXPECT_EQ(l->path, c.path) << c.text;
    EXPECT_EQ(l->ref, c.ref) << c.text;
    EXPECT_EQ(ToString(*l), c.text == "alpine:3.20" ? "hoist:alpine:3.20" : c.text);
  }
  for (const char* bad : {"docker://", "oci:", "docker://Not A Ref", "oci-archive::tag"}) {
    EXPECT_EQ(ParseLocation(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(CopyTest, ConfigAndLayersBeforeTheManifestAndTheCommitLast) {
  BuiltImage img = TwoLayers();
  MemorySource src;
  src.AddImage(img);
  src.top = img.manifest;
  src.top_type = img.manifest_media_type;
  RecordingDestination dst;
  dst.have.insert(img.layers[0].digest);
  auto top = Copy(src, dst, {"app:1"}, {});
  ASSERT_TRUE(top.ok()) << top.status().message();
  EXPECT_EQ(top->digest.String(), img.manifest_digest);
  const size_t manifest = dst.Index("manifest " + img.manifest_digest);
  EXPECT_EQ(dst.Index("commit " + img.manifest_digest + " app:1"), dst.calls.size() - 1);
  EXPECT_LT(dst.Index("put " + img.config.digest), manifest);
  EXPECT_LT(dst.Index("put " + img.layers[1].digest), manifest);
  EXPECT_EQ(dst.Index("put " + img.layers[0].digest), dst.calls.size());  // reused, not put
  EXPECT_EQ(dst.diff_ids[img.layers[1].digest]->String(), img.diff_ids[1]);
  EXPECT_FALSE(dst.diff_ids[img.config.digest].has_value());
}

TEST(CopyTest, IndexGivesOnePlatformOrAll) {
  BuiltImage amd = TwoLayers("amd64"), arm = TwoLayers("arm64");
  testing::BuiltIndex index = testing::BuildIndex(Format::kOci, {amd, arm});
  MemorySource src;
  src.AddImage(amd);
  src.AddImage(arm);
  src.top = index.manifest;
  src.top_type = index.media_type;
  {
    RecordingDestination dst;
    auto top = Copy(src, dst, {}, Options("linux/arm64"));
    ASSERT_TRUE(top.ok()) << top.status().message();
    EXPECT_EQ(top->digest.String(), arm.manifest_digest);
    EXPECT_EQ(dst.Index("manifest " + amd.manifest_digest), dst.calls.size());
    EXPECT_LT(dst.Index("manifest " + arm.manifest_digest), dst.calls.size());
    EXPECT_EQ(dst.Index("manifest " + index.digest), dst.calls.size());
  }
  {
    RecordingDestination dst;
    auto top = Copy(src, dst, {}, Options("", true));
    ASSERT_TRUE(top.ok()) << top.status().message();
    EXPECT_EQ(top->digest.String(), index.digest);
    EXPECT_LT(dst.Index("manifest " + amd.manifest_digest), dst.Index("manifest " + index.digest));
    EXPECT_LT(dst.Index("manifest " + arm.manifest_digest), dst.Index("manifest " + index.digest));
    EXPECT_EQ(dst.Index("commit " + index.digest), dst.calls.size() - 1);
  }
}

TEST(CopyTest, WhatDoesNotMatchItsDigestIsRefused) {
  BuiltImage amd = TwoLayers("amd64");
  testing::BuiltIndex index = testing::BuildIndex(Format::kOci, {amd});
  {
    MemorySource src;
    src.AddImage(amd);
    src.Add(amd.manifest_digest, amd.manifest + " ");  // not the manifest the index names
    src.top = index.manifest;
    src.top_type = index.media_type;
    RecordingDestination dst;
    auto top = Copy(src, dst, {}, {});
    EXPECT_EQ(top.status().code(), StatusCode::kDataLoss) << top.status().message();
    EXPECT_TRUE(dst.calls.empty());
  }
  {
    MemorySource src;
    src.AddImage(amd);
    std::string config = amd.config.data;
    config[config.size() - 2] ^= 1;
    src.Add(amd.config.digest, config);
    src.top = amd.manifest;
    src.top_type = amd.manifest_media_type;
    RecordingDestination dst;
    auto top = Copy(src, dst, {}, {});
    EXPECT_EQ(top.status().code(), StatusCode::kDataLoss) << top.status().message();
    EXPECT_NE(top.status().message().find("config " + amd.config.digest), std::string::npos)
        << top.status().message();
    EXPECT_TRUE(dst.calls.empty());
  }
}

}  // namespace
}  // namespace hoist::transport
