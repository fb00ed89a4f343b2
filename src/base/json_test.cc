#include "base/json.h"

#include <gtest/gtest.h>

#include <string>

namespace hoist {
namespace {

std::string Nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(ParseJson, ParsesDocumentsUpToTheDepthLimit) {
  auto doc = ParseJson(Nested(kMaxJsonDepth), "doc");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_TRUE(doc->is_array());
  auto ordered = ParseJson<nlohmann::ordered_json>("{\"b\": 1, \"a\": [2]}", "doc");
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(ordered->dump(), "{\"b\":1,\"a\":[2]}");
}

TEST(ParseJson, RefusesDeepDocumentsBeforeParsing) {
  for (const std::string& text : {Nested(kMaxJsonDepth + 1), Nested(300000),
                                  Nested(300000, '{', '}'), "{\"a\":" + std::string(300000, '[')}) {
    auto doc = ParseJson(text, "index.json");
    ASSERT_FALSE(doc.ok());
    EXPECT_EQ(doc.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(doc.status().message(), "index.json: JSON nested deeper than 64 levels");
  }
}

TEST(ParseJson, BracketsInsideStringsDoNotCount) {
  const std::string deep_string = "\"" + std::string(1000, '[') + "\\\"" + "{" + "\"";
  auto doc = ParseJson("[" + deep_string + "]", "doc");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ((*doc)[0].get<std::string>(), std::string(1000, '[') + "\"{");
}

TEST(ParseJson, RefusesMalformedInput) {
  for (const char* text : {"", "{", "{\"a\":1} x", "[1,]", "]]]]"}) {
    auto doc = ParseJson(text, "token answer");
    ASSERT_FALSE(doc.ok()) << text;
    EXPECT_EQ(doc.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(doc.status().message(), "token answer is not valid JSON");
  }
}

}  // namespace
}  // namespace hoist
