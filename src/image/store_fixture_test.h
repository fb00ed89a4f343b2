// The fixture of the image tests: a real store in a fresh temporary directory.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "content/store.h"
#include "support/image_builder.h"
#include "support/process.h"

namespace hoist::image {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-image-test-");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_ = std::make_unique<testing::TempDir>(std::move(*dir));
    auto store = content::Store::Open(dir_->path() + "/store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }

  void Put(const std::string& digest, const std::string& bytes) {
    ASSERT_TRUE(store_->WriteBlob(*Digest::Parse(digest), bytes).ok());
  }
  // Every blob of `img`, its manifest included, in the store.
  void PutImage(const testing::BuiltImage& img) {
    Put(img.manifest_digest, img.manifest);
    Put(img.config.digest, img.config.data);
    for (const auto& l : img.layers) Put(l.digest, l.data);
  }

  std::unique_ptr<testing::TempDir> dir_;
  std::unique_ptr<content::Store> store_;
};

}  // namespace hoist::image
