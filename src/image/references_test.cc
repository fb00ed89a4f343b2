#include "image/references.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "content/digester.h"
#include "image/records.h"
#include "image/store_fixture_test.h"
#include "manifest/config.h"
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

Digest D(const std::string& s) { return *Digest::Parse(s); }

class ReferencesTest : public StoreTest {
 protected:
  // Every blob of `img` is in `refs`, and every layer directory.
  static void ExpectKept(const References& refs, const BuiltImage& img) {
    EXPECT_TRUE(refs.blobs.contains(D(img.manifest_digest)));
    EXPECT_TRUE(refs.blobs.contains(D(img.config.digest)));
    for (const auto& l : img.layers) EXPECT_TRUE(refs.blobs.contains(D(l.digest)));
    for (const auto& d : img.diff_ids) EXPECT_TRUE(refs.layers.contains(D(d)));
  }
  static void ExpectNotKept(const References& refs, const BuiltImage& img) {
    EXPECT_FALSE(refs.blobs.contains(D(img.manifest_digest)));
    EXPECT_FALSE(refs.blobs.contains(D(img.config.digest)));
    for (const auto& l : img.layers) EXPECT_FALSE(refs.blobs.contains(D(l.digest)));
    for (const auto& d : img.diff_ids) EXPECT_FALSE(refs.layers.contains(D(d)));
  }
};

TEST_F(ReferencesTest, ADockerRecordKeepsItsImageAndIndexButNotOtherPlatforms) {
  const BuiltImage amd64 = BuildImage(Format::kDocker, {{{"a", "amd64"}}, {{"b", "more"}}});
  const BuiltImage arm64 = BuildImage(Format::kDocker, {{{"a", "arm64"}}}, "linux", "arm64");
  const testing::BuiltIndex index = BuildIndex(Format::kDocker, {amd64, arm64});
  Put(index.digest, index.manifest);
  PutImage(amd64);
  PutImage(arm64);  // here, e.g. from another pull whose record was removed
  const Descriptor desc{amd64.manifest_media_type,
                        D(amd64.manifest_digest),
                        static_cast<int64_t>(amd64.manifest.size()),
                        {},
                        {},
                        {}};
  auto decoded = manifest::Decode(amd64.manifest_media_type, amd64.manifest);
  ASSERT_TRUE(decoded.ok());
  auto ref = Reference::Parse("127.0.0.1:5000/app:1");
  ASSERT_TRUE(ref.ok());
  ASSERT_TRUE(Record(*store_, *ref, D(index.digest), desc, *decoded).ok());
  auto records = List(*store_);
  ASSERT_TRUE(records.ok());

  const References refs = CollectReferences(*store_, *records);
  EXPECT_TRUE(refs.unreadable.empty());
  EXPECT_TRUE(refs.blobs.contains((*records)[0].digest));  // the OCI rendition
  EXPECT_EQ(refs.blobs.at(D(index.digest)), "127.0.0.1:5000/app:1");
  ExpectKept(refs, amd64);
  ExpectNotKept(refs, arm64);
  EXPECT_EQ(refs.blobs.size(), 2u + 2u + amd64.layers.size());  // rendition, index, manifest,
                                                                // config, layers
  EXPECT_EQ(refs.layers.size(), amd64.diff_ids.size());
}

TEST_F(ReferencesTest, ARecordOfAnIndexKeepsTheChildrenThatAreHere) {
  const BuiltImage amd64 = BuildImage(Format::kOci, {{{"a", "amd64"}}});
  const BuiltImage arm64 = BuildImage(Format::kOci, {{{"a", "arm64"}}}, "linux", "arm64");
  const testing::BuiltIndex index = BuildIndex(Format::kOci, {amd64, arm64});
  Put(index.digest, index.manifest);
  PutImage(amd64);  // arm64 was never pulled
  ASSERT_TRUE(store_
                  ->PutRef("other/tool:1", Descriptor{index.media_type,
                                                      D(index.digest),
                                                      static_cast<int64_t>(index.manifest.size()),
                                                      {},
                                                      {},
                                                      {}})
                  .ok());
  const References refs = CollectReferences(*store_, *List(*store_));
  EXPECT_TRUE(refs.unreadable.empty());
  EXPECT_TRUE(refs.blobs.contains(D(index.digest)));
  ExpectKept(refs, amd64);
  EXPECT_FALSE(refs.blobs.contains(D(arm64.manifest_digest)));
}

TEST_F(ReferencesTest, WhatCannotBeReadIsReportedWithTheImage) {
  // A manifest blob that is not a manifest, and a record whose annotation is not a digest.
  const std::string junk = "{\"schemaVersion\":2}";
  const Digest junk_digest = *content::DigestOf("sha256", junk);
  ASSERT_TRUE(store_->WriteBlob(junk_digest, junk).ok());
  Descriptor record{std::string(manifest::kOciManifest),
                    junk_digest,
                    static_cast<int64_t>(junk.size()),
                    {},
                    {},
                    {}};
  record.annotations[kManifestDigestAnnotation] = "not-a-digest";
  ASSERT_TRUE(store_->PutRef("127.0.0.1:5000/bad:1", record).ok());

  const References refs = CollectReferences(*store_, *List(*store_));
  ASSERT_EQ(refs.unreadable.size(), 1u);  // both under the record's digest; the first kept
  const Status& why = refs.unreadable.at(junk_digest);
  EXPECT_THAT(why.message(), HasSubstr("image 127.0.0.1:5000/bad:1"));
  EXPECT_THAT(why.message(), HasSubstr("annotation io.hoist.manifest.digest"));
  EXPECT_TRUE(refs.blobs.contains(junk_digest));
  EXPECT_TRUE(refs.layers.empty());
}

}  // namespace
}  // namespace hoist::image
