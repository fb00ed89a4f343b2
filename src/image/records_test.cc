#include "image/records.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "content/digester.h"
#include "content/index_file.h"
#include "image/store_fixture_test.h"
#include "manifest/config.h"
#include "manifest/convert.h"
#include "manifest/media_types.h"
#include "support/image_builder.h"
#include "support/process.h"

namespace hoist::image {
namespace {

using testing::BuildImage;
using testing::BuildIndex;
using testing::BuiltImage;
using testing::Format;
using ::testing::HasSubstr;

constexpr char kName[] = "127.0.0.1:5000/app";

Digest D(const std::string& s) { return *Digest::Parse(s); }
Reference Ref(const std::string& text) { return *Reference::Parse(text); }

class RecordsTest : public StoreTest {
 protected:
  // What a pull hands to Record for `img`: its manifest's descriptor (platform from the
  // config) and decoding.
  static Descriptor DescriptorOf(const BuiltImage& img) {
    return Descriptor{img.manifest_media_type,
                      D(img.manifest_digest),
                      static_cast<int64_t>(img.manifest.size()),
                      {},
                      {},
                      manifest::ParseConfig(img.config.data)->platform};
  }
  static manifest::Decoded Decode(const BuiltImage& img) {
    return *manifest::Decode(img.manifest_media_type, img.manifest);
  }
};

BuiltImage SmallImage(Format f, const std::string& content = "hello") {
  return BuildImage(f, {{{"etc/hello", content}}, {{"bin/x", content + "!"}}});
}

TEST(RecordName, TagOrDigest) {
  EXPECT_EQ(RecordName(Ref("alpine")), "docker.io/library/alpine:latest");
  EXPECT_EQ(RecordName(Ref("127.0.0.1:5000/app:1")), "127.0.0.1:5000/app:1");
  const std::string digest = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(RecordName(Ref("127.0.0.1:5000/app@" + digest)), "127.0.0.1:5000/app@" + digest);
  // The digest wins over the tag, as in what is pulled.
  EXPECT_EQ(RecordName(Ref("127.0.0.1:5000/app:1@" + digest)), "127.0.0.1:5000/app@" + digest);
}

TEST_F(RecordsTest, OciManifestIsRecordedAsIsAndLoadsBack) {
  const BuiltImage img = SmallImage(Format::kOci);
  PutImage(img);
  const Descriptor desc = DescriptorOf(img);
  auto recorded = Record(*store_, Ref(std::string(kName) + ":1"), desc.digest, desc, Decode(img));
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();

  auto record = store_->GetRef(std::string(kName) + ":1");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->digest, desc.digest);
  EXPECT_EQ((*record)->media_type, manifest::kOciManifest);
  EXPECT_EQ((*record)->annotations.size(), 1u);  // the ref name only
  EXPECT_EQ((*record)->platform, desc.platform);

  const Image& image = *recorded;
  EXPECT_EQ(image.reference, std::string(kName) + ":1");
  EXPECT_EQ(image.repo_digest, desc.digest);
  EXPECT_EQ(image.manifest.digest, desc.digest);
  EXPECT_EQ(image.manifest.media_type, manifest::kOciManifest);
  EXPECT_EQ(image.manifest.size, desc.size);
  EXPECT_EQ(image.manifest_json, img.manifest);
  EXPECT_EQ(image.config.digest, D(img.config.digest));
  EXPECT_EQ(image.config_json, img.config.data);
  ASSERT_EQ(image.layers.size(), 2u);
  EXPECT_EQ(image.layers[1].digest, D(img.layers[1].digest));
  EXPECT_EQ(image.platform.architecture, "amd64");
  EXPECT_FALSE(image.downloaded);
  // Find reads the same record back.
  auto found = Find(*store_, Ref(std::string(kName) + ":1"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->manifest.digest, recorded->manifest.digest);
  EXPECT_EQ(found->repo_digest, recorded->repo_digest);
  EXPECT_EQ(found->manifest.platform, desc.platform);
  EXPECT_EQ(found->manifest_json, recorded->manifest_json);
  EXPECT_EQ(found->created, recorded->created);
}

TEST_F(RecordsTest, DockerManifestIsRecordedAsItsOciRendition) {
  const BuiltImage img = SmallImage(Format::kDocker);
  PutImage(img);
  const Descriptor desc = DescriptorOf(img);
  ASSERT_EQ(desc.media_type, manifest::kDockerManifest);
  auto recorded = Record(*store_, Ref(std::string(kName) + ":1"), desc.digest, desc, Decode(img));
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();

  // The record: an OCI manifest with the same blobs, written to the store, naming the
  // registry's manifest.
  const std::string oci = *manifest::DockerToOciManifest(Decode(img));
  const Digest oci_digest = *content::DigestOf("sha256", oci);
  ASSERT_NE(oci_digest, desc.digest);
  auto record = store_->GetRef(std::string(kName) + ":1");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->digest, oci_digest);
  EXPECT_EQ((*record)->media_type, manifest::kOciManifest);
  EXPECT_EQ((*record)->size, static_cast<int64_t>(oci.size()));
  EXPECT_EQ((*record)->annotations.at(kManifestDigestAnnotation), desc.digest.String());
  EXPECT_FALSE((*record)->annotations.contains(kRepoDigestAnnotation));
  EXPECT_EQ(*store_->ReadBlob(oci_digest, 1 << 20), oci);

  // The image is still the registry's own Docker manifest.
  EXPECT_EQ(recorded->manifest.digest, desc.digest);
  EXPECT_EQ(recorded->manifest.media_type, manifest::kDockerManifest);
  EXPECT_EQ(recorded->repo_digest, desc.digest);
  EXPECT_EQ(recorded->manifest_json, img.manifest);
  EXPECT_EQ(recorded->config.digest, D(img.config.digest));
}

TEST_F(RecordsTest, IndexBecomesTheRepoDigest) {
  const BuiltImage amd64 = SmallImage(Format::kDocker);
  const BuiltImage arm64 =
      BuildImage(Format::kDocker, {{{"etc/hello", "arm"}}}, "linux", "arm64", "v8");
  const testing::BuiltIndex index = BuildIndex(Format::kDocker, {amd64, arm64});
  Put(index.digest, index.manifest);
  PutImage(amd64);
  const Descriptor desc = DescriptorOf(amd64);
  auto recorded =
      Record(*store_, Ref(std::string(kName) + ":multi"), D(index.digest), desc, Decode(amd64));
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(recorded->repo_digest, D(index.digest));
  EXPECT_EQ(recorded->manifest.digest, desc.digest);
  auto record = store_->GetRef(std::string(kName) + ":multi");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->annotations.at(kRepoDigestAnnotation), index.digest);
  EXPECT_EQ((*record)->annotations.at(kManifestDigestAnnotation), amd64.manifest_digest);
}

TEST_F(RecordsTest, ByDigestIsRecordedUnderTheDigest) {
  const BuiltImage img = SmallImage(Format::kOci);
  PutImage(img);
  const Descriptor desc = DescriptorOf(img);
  const Reference ref = Ref(std::string(kName) + "@" + img.manifest_digest);
  auto recorded = Record(*store_, ref, desc.digest, desc, Decode(img));
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(recorded->reference, std::string(kName) + "@" + img.manifest_digest);
  auto names = List(*store_);
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  EXPECT_EQ(NameOf((*names)[0]), std::string(kName) + "@" + img.manifest_digest);
}

TEST_F(RecordsTest, NothingIsRecordedForAManifestNotInTheStore) {
  const BuiltImage img = SmallImage(Format::kOci);
  Put(img.config.digest, img.config.data);  // the manifest itself is missing
  const Descriptor desc = DescriptorOf(img);
  auto recorded = Record(*store_, Ref(std::string(kName) + ":1"), desc.digest, desc, Decode(img));
  EXPECT_EQ(recorded.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(recorded.status().message(), HasSubstr("record"));
  EXPECT_TRUE(List(*store_)->empty());
}

TEST_F(RecordsTest, ARecordPointingAtAnIndexIsDataLoss) {
  // Another tool may record an index; hoist cannot load an image from it.
  const BuiltImage img = SmallImage(Format::kOci);
  const testing::BuiltIndex index = BuildIndex(Format::kOci, {img});
  PutImage(img);
  Put(index.digest, index.manifest);
  const Descriptor desc{
      index.media_type, D(index.digest), static_cast<int64_t>(index.manifest.size()), {}, {}, {}};
  ASSERT_TRUE(store_->PutRef(std::string(kName) + ":idx", desc).ok());
  auto found = Find(*store_, Ref(std::string(kName) + ":idx"));
  EXPECT_EQ(found.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(found.status().message(), HasSubstr("points to an index"));
}

TEST_F(RecordsTest, LoadReportsAMissingConfig) {
  const BuiltImage img = SmallImage(Format::kOci);
  Put(img.manifest_digest, img.manifest);
  const Descriptor desc = DescriptorOf(img);
  ASSERT_TRUE(store_->PutRef(std::string(kName) + ":1", desc).ok());
  auto found = Find(*store_, Ref(std::string(kName) + ":1"));
  EXPECT_EQ(found.status().code(), StatusCode::kNotFound);
}

TEST_F(RecordsTest, FindWithoutARecordIsNotFound) {
  auto found = Find(*store_, Ref(std::string(kName) + ":none"));
  EXPECT_EQ(found.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(found.status().message(), "no such image in the store (pull it first)");
  auto got = Get(*store_, Ref(std::string(kName) + ":none"));
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(RecordsTest, TagCopiesTheRecordWithItsAnnotations) {
  const BuiltImage img = SmallImage(Format::kDocker);
  PutImage(img);
  const Descriptor desc = DescriptorOf(img);
  ASSERT_TRUE(Record(*store_, Ref(std::string(kName) + ":1"), desc.digest, desc, Decode(img)).ok());
  ASSERT_TRUE(Tag(*store_, Ref(std::string(kName) + ":1"), Ref("other/x:2")).ok());
  auto copy = Get(*store_, Ref("other/x:2"));
  ASSERT_TRUE(copy.ok() && copy->has_value());
  EXPECT_EQ(NameOf(**copy), "docker.io/other/x:2");
  EXPECT_EQ((*copy)->annotations.at(kManifestDigestAnnotation), desc.digest.String());
  auto tagged = Find(*store_, Ref("other/x:2"));
  ASSERT_TRUE(tagged.ok()) << tagged.status().ToString();
  EXPECT_EQ(tagged->reference, "docker.io/other/x:2");
  EXPECT_EQ(tagged->manifest.digest, desc.digest);

  Status missing = Tag(*store_, Ref(std::string(kName) + ":none"), Ref("other/x:3"));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "no such image in the store (pull it first)");
  EXPECT_EQ(List(*store_)->size(), 2u);
}

TEST_F(RecordsTest, RemoveDropsOnlyTheRecord) {
  const BuiltImage img = SmallImage(Format::kOci);
  PutImage(img);
  const Descriptor desc = DescriptorOf(img);
  ASSERT_TRUE(Record(*store_, Ref(std::string(kName) + ":1"), desc.digest, desc, Decode(img)).ok());
  ASSERT_TRUE(Record(*store_, Ref(std::string(kName) + ":2"), desc.digest, desc, Decode(img)).ok());
  ASSERT_TRUE(Remove(*store_, Ref(std::string(kName) + ":1")).ok());
  EXPECT_EQ(Find(*store_, Ref(std::string(kName) + ":1")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Find(*store_, Ref(std::string(kName) + ":2")).ok());
  EXPECT_TRUE(store_->Has(desc.digest));  // blobs are gc's to reclaim
  EXPECT_EQ(Remove(*store_, Ref(std::string(kName) + ":1")).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace hoist::image
