#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/strings.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

using ::testing::HasSubstr;

constexpr char kBlobA[] = "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2";
constexpr char kBlobB[] = "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06";
constexpr char kBlobC[] = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51";
constexpr char kId1[] = "f3436f50b2f7f1613ad142dbce1d24801d9daaabc45ecb2db909251a214c9840";
constexpr char kId2[] = "b459afddb3a09621ee29b78b3968e566d7fb0001d96395d54030eb703b0337a9";
constexpr char kId3[] = "04bb13c1ea3ff61f28bc82b921b9e307ae13040acc7d9ab769f881ee57bd10a9";

// The payload a registry signs: two layers, top (kBlobB, id2) first.
constexpr char kPayload[] = R"json({
   "schemaVersion": 1,
   "name": "library/hello",
   "tag": "1.0",
   "architecture": "amd64",
   "fsLayers": [
      {
         "blobSum": "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06"
      },
      {
         "blobSum": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2"
      }
   ],
   "history": [
      {
         "v1Compatibility": "{\"id\":\"b459afddb3a09621ee29b78b3968e566d7fb0001d96395d54030eb703b0337a9\",\"parent\":\"f3436f50b2f7f1613ad142dbce1d24801d9daaabc45ecb2db909251a214c9840\",\"created\":\"2016-01-02T03:04:05Z\"}"
      },
      {
         "v1Compatibility": "{\"id\":\"f3436f50b2f7f1613ad142dbce1d24801d9daaabc45ecb2db909251a214c9840\",\"created\":\"2016-01-01T03:04:05Z\"}"
      }
   ]
})json";

// kPayload as served with a libtrust pretty signature: the protected header says
// {"formatLength":765,"formatTail":"Cn0",...}, "Cn0" being base64url of "\n}".
constexpr char kSignedDoc[] = R"json({
   "schemaVersion": 1,
   "name": "library/hello",
   "tag": "1.0",
   "architecture": "amd64",
   "fsLayers": [
      {
         "blobSum": "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06"
      },
      {
         "blobSum": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2"
      }
   ],
   "history": [
      {
         "v1Compatibility": "{\"id\":\"b459afddb3a09621ee29b78b3968e566d7fb0001d96395d54030eb703b0337a9\",\"parent\":\"f3436f50b2f7f1613ad142dbce1d24801d9daaabc45ecb2db909251a214c9840\",\"created\":\"2016-01-02T03:04:05Z\"}"
      },
      {
         "v1Compatibility": "{\"id\":\"f3436f50b2f7f1613ad142dbce1d24801d9daaabc45ecb2db909251a214c9840\",\"created\":\"2016-01-01T03:04:05Z\"}"
      }
   ],
   "signatures": [
      {
         "header": {
            "jwk": {
               "crv": "P-256",
               "kid": "XL2N:MZQN:4ZLB:7YHA:KAWA:2DSQ:4ZWY:QG44:6UKM:O5JH:BZRT:KXGO",
               "kty": "EC",
               "x": "sJD2Aj6qgx6NzKHE3Ztak1wJ0Jw9Kq8mYn9b4dzJc7s",
               "y": "S8n6Zf0rQmN3Z1W4mM7d9Q2sY5kq8cGvQ6e3H2wL1Ao"
            },
            "alg": "ES256"
         },
         "signature": "b3V0IG9mIHNjb3BlOiBub3QgYSByZWFsIHNpZ25hdHVyZSwgbmV2ZXIgY2hlY2tlZA",
         "protected": "eyJmb3JtYXRMZW5ndGgiOjc2NSwiZm9ybWF0VGFpbCI6IkNuMCIsInRpbWUiOiIyMDE2LTAxLTAyVDAzOjA0OjA1WiJ9"
      }
   ]
})json";

// `payload` (which must end in "\n}") wrapped in a signature envelope whose protected header
// carries `format_length` and `tail`.
std::string Sign(const std::string& payload, size_t format_length, const std::string& tail) {
  std::string header = R"({"formatLength":)" + std::to_string(format_length) +
                       R"(,"formatTail":")" + Base64UrlEncode(tail) + R"("})";
  return payload.substr(0, payload.size() - 2) +
         ",\n   \"signatures\": [{\"header\": {\"alg\": \"ES256\"}, \"signature\": \"AA\", "
         "\"protected\": \"" + Base64UrlEncode(header) + "\"}]\n}";
}

std::string Sign(const std::string& payload) {
  return Sign(payload, payload.size() - 2, "\n}");
}

// A v1Compatibility object as it appears inside the manifest: JSON, escaped as a string.
std::string V1(const std::string& id, const std::string& parent = "") {
  std::string v1 = "{\\\"id\\\":\\\"" + id + "\\\"";
  if (!parent.empty()) v1 += ",\\\"parent\\\":\\\"" + parent + "\\\"";
  return v1 + ",\\\"created\\\":\\\"2016-01-01T00:00:00Z\\\"}";
}

struct Layer {
  std::string blob_sum;
  std::string v1_compatibility;  // already escaped, see V1()
};

// A schema1 document listing `layers` top first, as registries do.
std::string Schema1Doc(const std::vector<Layer>& layers) {
  std::string fs = "   \"fsLayers\": [";
  std::string history = "   \"history\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string sep = i == 0 ? "" : ",";
    fs += sep + "\n      {\"blobSum\": \"" + layers[i].blob_sum + "\"}";
    history += sep + "\n      {\"v1Compatibility\": \"" + layers[i].v1_compatibility + "\"}";
  }
  return "{\n   \"schemaVersion\": 1,\n   \"name\": \"app\",\n   \"tag\": \"1\",\n" + fs +
         "\n   ],\n" + history + "\n   ]\n}";
}

Result<Decoded> DecodeSchema1(const std::string& doc) { return Decode(kDockerSchema1, doc); }

std::vector<std::string> Strings(const std::vector<Digest>& digests) {
  std::vector<std::string> out;
  for (const Digest& d : digests) out.push_back(d.String());
  return out;
}

TEST(Schema1, SignedDecodesAndCanonicalBytesAreThePayload) {
  Result<Decoded> d = Decode("application/vnd.docker.distribution.manifest.v1+prettyjws",
                             kSignedDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kSchema1);
  EXPECT_EQ(d->media_type, kDockerSchema1Signed);
  EXPECT_TRUE(d->schema1.signed_);
  EXPECT_EQ(d->schema1.name, "library/hello");
  EXPECT_EQ(d->schema1.tag, "1.0");
  EXPECT_EQ(d->schema1.architecture, "amd64");
  EXPECT_EQ(Strings(d->schema1.layers), (std::vector<std::string>{kBlobA, kBlobB}));
  ASSERT_EQ(d->schema1.v1_compatibility.size(), 2u);
  EXPECT_THAT(d->schema1.v1_compatibility[0], HasSubstr(std::string("\"id\":\"") + kId1));
  EXPECT_THAT(d->schema1.v1_compatibility[1], HasSubstr(std::string("\"id\":\"") + kId2));

  Result<std::string> canonical = CanonicalBytes(*d, kSignedDoc);
  ASSERT_TRUE(canonical.ok()) << canonical.status().message();
  EXPECT_EQ(*canonical, kPayload);
  EXPECT_NE(*canonical, kSignedDoc);

  std::vector<Descriptor> children = Children(*d);
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[0].digest.String(), kBlobA);
  EXPECT_EQ(children[0].media_type, kDockerLayer);
  EXPECT_EQ(children[0].size, -1);
}

TEST(Schema1, SignedRecognizedByShapeAlone) {
  Result<Decoded> d = Decode("application/json", kSignedDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->media_type, kDockerSchema1Signed);
  EXPECT_TRUE(d->schema1.signed_);
}

TEST(Schema1, UnsignedCanonicalBytesAreTheBytes) {
  Result<Decoded> d = Decode("", kPayload);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->media_type, kDockerSchema1);
  EXPECT_FALSE(d->schema1.signed_);
  Result<std::string> canonical = CanonicalBytes(*d, kPayload);
  ASSERT_TRUE(canonical.ok());
  EXPECT_EQ(*canonical, kPayload);
}

TEST(Schema1, ValidChainIsReturnedBaseFirst) {
  Result<Decoded> d = DecodeSchema1(
      Schema1Doc({{kBlobC, V1(kId3, kId2)}, {kBlobB, V1(kId2, kId1)}, {kBlobA, V1(kId1)}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(Strings(d->schema1.layers), (std::vector<std::string>{kBlobA, kBlobB, kBlobC}));
  ASSERT_EQ(d->schema1.v1_compatibility.size(), 3u);
  EXPECT_THAT(d->schema1.v1_compatibility[2], HasSubstr(kId3));
}

TEST(Schema1, SingleLayer) {
  Result<Decoded> d = DecodeSchema1(Schema1Doc({{kBlobA, V1(kId1)}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(Strings(d->schema1.layers), std::vector<std::string>{kBlobA});
}

TEST(Schema1, AdjacentRepeatIsCollapsed) {
  Result<Decoded> d = DecodeSchema1(Schema1Doc(
      {{kBlobB, V1(kId2, kId1)}, {kBlobB, V1(kId2, kId1)}, {kBlobA, V1(kId1)}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(Strings(d->schema1.layers), (std::vector<std::string>{kBlobA, kBlobB}));
  EXPECT_EQ(d->schema1.v1_compatibility.size(), 2u);
}

TEST(Schema1, RepeatedBaseIsCollapsed) {
  Result<Decoded> d = DecodeSchema1(
      Schema1Doc({{kBlobB, V1(kId2, kId1)}, {kBlobA, V1(kId1)}, {kBlobA, V1(kId1)}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(Strings(d->schema1.layers), (std::vector<std::string>{kBlobA, kBlobB}));
}

struct Schema1Refusal {
  const char* name;
  std::string content_type;
  std::string doc;
  const char* message;
};

void PrintTo(const Schema1Refusal& r, std::ostream* os) { *os << r.name; }

class Schema1Refuses : public ::testing::TestWithParam<Schema1Refusal> {};

TEST_P(Schema1Refuses, WithDataLoss) {
  const Schema1Refusal& r = GetParam();
  Result<Decoded> d = Decode(r.content_type, r.doc);
  ASSERT_FALSE(d.ok()) << r.name;
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status().message();
  EXPECT_THAT(d.status().message(), HasSubstr(r.message));
}

const std::string kV1(kDockerSchema1);
const std::string kSigned(kDockerSchema1Signed);

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    All, Schema1Refuses,
    ::testing::Values(
        Schema1Refusal{"NonAdjacentRepeat", kV1,
                       Schema1Doc({{kBlobA, V1(kId1, kId2)},
                                   {kBlobB, V1(kId2, kId1)},
                                   {kBlobA, V1(kId1)}}),
                       "invalid parent ID"},
        Schema1Refusal{"AdjacentRepeatWithOtherBlob", kV1,
                       Schema1Doc({{kBlobC, V1(kId2, kId1)},
                                   {kBlobB, V1(kId2, kId1)},
                                   {kBlobA, V1(kId1)}}),
                       "different blobSums"},
        Schema1Refusal{"BrokenParentChain", kV1,
                       Schema1Doc({{kBlobC, V1(kId3, kId1)},
                                   {kBlobB, V1(kId2, kId1)},
                                   {kBlobA, V1(kId1)}}),
                       "invalid parent ID in history[0]"},
        Schema1Refusal{"MissingParent", kV1,
                       Schema1Doc({{kBlobB, V1(kId2)}, {kBlobA, V1(kId1)}}),
                       "invalid parent ID in history[0]"},
        Schema1Refusal{"BaseHasParent", kV1,
                       Schema1Doc({{kBlobB, V1(kId2, kId1)}, {kBlobA, V1(kId1, kId3)}}),
                       "invalid parent ID in the base layer"},
        Schema1Refusal{"MismatchedLengths", kV1,
                       Replace(Schema1Doc({{kBlobB, V1(kId2, kId1)}, {kBlobA, V1(kId1)}}),
                               "\"fsLayers\": [", "\"fsLayers\": [{\"blobSum\": \"" +
                                                      std::string(kBlobC) + "\"},"),
                       "differ in length (3 vs 2)"},
        Schema1Refusal{"Empty", kV1, Schema1Doc({}), "has no fsLayers"},
        Schema1Refusal{"NoFsLayers", kV1, R"({"schemaVersion": 1, "history": []})",
                       "fsLayers must be an array"},
        Schema1Refusal{"NoHistory", kV1, R"({"schemaVersion": 1, "fsLayers": []})",
                       "history must be an array"},
        Schema1Refusal{"UppercaseId", kV1,
                       Schema1Doc({{kBlobA, V1(std::string(64, 'A'))}}), "invalid image id"},
        Schema1Refusal{"ShortId", kV1, Schema1Doc({{kBlobA, V1("abc123")}}), "invalid image id"},
        Schema1Refusal{"PathId", kV1,
                       Schema1Doc({{kBlobA, V1("../" + std::string(61, 'a'))}}),
                       "invalid image id"},
        Schema1Refusal{"MissingId", kV1, Schema1Doc({{kBlobA, "{}"}}),
                       "history[0].v1Compatibility.id is missing"},
        Schema1Refusal{"V1CompatibilityNotJson", kV1, Schema1Doc({{kBlobA, "{not json"}}),
                       "history[0].v1Compatibility is not valid JSON"},
        Schema1Refusal{"V1CompatibilityNotString", kV1,
                       R"({"schemaVersion": 1, "fsLayers": [{"blobSum": ")" +
                           std::string(kBlobA) + R"("}], "history": [{"v1Compatibility": {}}]})",
                       "history[0].v1Compatibility must be a string"},
        Schema1Refusal{"BadBlobSum", kV1, Schema1Doc({{"sha256:abc", V1(kId1)}}),
                       "fsLayers[0].blobSum"},
        Schema1Refusal{"SchemaVersion2", kV1,
                       Replace(Schema1Doc({{kBlobA, V1(kId1)}}), "\"schemaVersion\": 1",
                               "\"schemaVersion\": 2"),
                       "schemaVersion 1, got 2"},
        Schema1Refusal{"SignedTypeWithoutSignatures", kSigned, kPayload, "no signatures"},
        Schema1Refusal{"EmptySignatures", kV1,
                       Replace(kPayload, "\n}", ",\n   \"signatures\": []\n}"),
                       "signatures must be a non-empty array"},
        Schema1Refusal{"FormatLengthBeyondDocument", kSigned, Sign(kPayload, 1 << 20, "\n}"),
                       "exceeds the document size"},
        Schema1Refusal{"TailChangesPayload", kSigned,
                       Sign(kPayload, std::string(kPayload).size() - 2,
                            ",\n   \"tag\": \"other\"\n}"),
                       "payload differs from the document"},
        Schema1Refusal{"PayloadNotJson", kSigned,
                       Sign(kPayload, std::string(kPayload).size() - 2, ""),
                       "signed schema1 payload is not valid JSON"},
        Schema1Refusal{"ProtectedNotBase64", kSigned,
                       Replace(kSignedDoc, "\"protected\": \"eyJ", "\"protected\": \"*eyJ"),
                       "signatures[0].protected is not base64url"},
        Schema1Refusal{"ProtectedWithoutFormatLength", kSigned,
                       Replace(kSignedDoc,
                               "eyJmb3JtYXRMZW5ndGgiOjc2NSwiZm9ybWF0VGFpbCI6IkNuMCIsInRpbWUiOiIy"
                               "MDE2LTAxLTAyVDAzOjA0OjA1WiJ9",
                               Base64UrlEncode(R"({"formatTail":"Cn0"})")),
                       "formatLength is missing"},
        Schema1Refusal{"SignaturesDisagree", kSigned,
                       Replace(Sign(kPayload), "}]\n}",
                               "}, {\"protected\": \"" +
                                   Base64UrlEncode(R"({"formatLength":10,"formatTail":"Cn0"})") +
                                   "\"}]\n}"),
                       "signatures disagree"}),
    [](const ::testing::TestParamInfo<Schema1Refusal>& info) {
      return std::string(info.param.name);
    });

TEST(Schema1, SignGeneratesWhatRegistriesServe) {
  // The helper used above must produce a valid envelope, or the refusals prove nothing.
  std::string signed_doc = Sign(kPayload);
  Result<Decoded> d = Decode(kDockerSchema1Signed, signed_doc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  Result<std::string> canonical = CanonicalBytes(*d, signed_doc);
  ASSERT_TRUE(canonical.ok());
  EXPECT_EQ(*canonical, kPayload);
}

}  // namespace
}  // namespace hoist::manifest
