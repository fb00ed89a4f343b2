#include "manifest/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

using ::testing::HasSubstr;

constexpr char kConfigDigest[] =
    "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910";
constexpr char kLayer1[] =
    "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2";
constexpr char kLayer2[] =
    "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06";
constexpr char kAmd64[] = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51";
constexpr char kArm64[] = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265";

constexpr char kOciManifestDoc[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910",
    "size": 1469
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2",
      "size": 3370706
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06",
      "size": 9007199254740992,
      "urls": ["https://mirror.example/blob"],
      "annotations": {"org.opencontainers.image.title": "app.tar.zst"}
    }
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}
})";

constexpr char kOciIndexDoc[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51",
      "size": 1024,
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265",
      "size": 1025,
      "platform": {"architecture": "arm64", "os": "linux", "variant": "v8",
                   "os.version": "6.1", "os.features": ["sse4"]}
    }
  ]
})";

constexpr char kDockerManifestDoc[] = R"({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 7023,
      "digest": "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 32654,
         "digest": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 16724,
         "digest": "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06",
         "urls": ["https://foreign.example/layer"]
      }
   ]
})";

constexpr char kDockerListDoc[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "size": 7143,
      "digest": "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51",
      "platform": {"architecture": "ppc64le", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "size": 7682,
      "digest": "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265",
      "platform": {"architecture": "amd64", "os": "linux", "features": ["sse4"]}
    }
  ]
})";

// A small image manifest with `extra` spliced in as further top-level members and the given
// layer media type.
std::string ManifestWith(std::string extra, std::string layer_type = std::string(kOciLayerGzip)) {
  return R"({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
               "digest": ")" +
         std::string(kConfigDigest) + R"("},
    "layers": [{"mediaType": ")" +
         layer_type + R"(", "size": 3,
                "digest": ")" +
         std::string(kLayer1) + R"("}])" + extra + "}";
}

// A manifest whose single layer descriptor has `field` (a JSON member or members) in place
// of its size.
std::string LayerWith(std::string fields) {
  return R"({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
               "digest": ")" +
         std::string(kConfigDigest) + R"("},
    "layers": [{)" +
         fields + "}]}";
}

// An index with one entry made of `fields`.
std::string IndexEntryWith(std::string fields) {
  return R"({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{)" +
         fields + "}]}";
}

std::string LayerDigest() { return R"("digest": ")" + std::string(kLayer1) + R"(")"; }
std::string GzipType() { return R"("mediaType": ")" + std::string(kOciLayerGzip) + R"(")"; }

TEST(MediaTypes, AcceptHeaderListsTheSixManifestTypes) {
  EXPECT_EQ(AcceptHeader(),
            "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.oci.image.index.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.docker.distribution.manifest.list.v2+json, "
            "application/vnd.docker.distribution.manifest.v1+prettyjws, "
            "application/vnd.docker.distribution.manifest.v1+json");
}

TEST(MediaTypes, Predicates) {
  EXPECT_TRUE(IsLayerType(kOciLayerNondistributableZstd));
  EXPECT_TRUE(IsLayerType(kDockerForeignLayer));
  for (auto t : {kOciLayerNondistributableTar, kOciLayerNondistributableGzip,
                 kOciLayerNondistributableZstd, kDockerForeignLayer}) {
    EXPECT_TRUE(IsForeignLayerType(t)) << t;
  }
  for (auto t : {kOciLayerTar, kOciLayerGzip, kOciLayerZstd, kDockerLayer, kOciConfig}) {
    EXPECT_FALSE(IsForeignLayerType(t)) << t;
  }
  EXPECT_FALSE(IsLayerType("application/vnd.cncf.helm.chart.content.v1.tar+gzip"));
  EXPECT_TRUE(IsIndexType(kDockerManifestList));
  EXPECT_FALSE(IsIndexType(kOciManifest));
  EXPECT_TRUE(IsManifestType(kDockerSchema1Signed));
  EXPECT_TRUE(IsConfigType(kDockerConfig));
}

TEST(Decode, OciManifest) {
  Result<Decoded> d = Decode(kOciManifest, kOciManifestDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kImageManifest);
  EXPECT_EQ(d->media_type, kOciManifest);
  EXPECT_EQ(d->manifest.media_type, kOciManifest);
  EXPECT_EQ(d->manifest.config.media_type, kOciConfig);
  EXPECT_EQ(d->manifest.config.digest.String(), kConfigDigest);
  EXPECT_EQ(d->manifest.config.size, 1469);
  ASSERT_EQ(d->manifest.layers.size(), 2u);
  EXPECT_EQ(d->manifest.layers[0].digest.String(), kLayer1);
  EXPECT_EQ(d->manifest.layers[0].size, 3370706);
  EXPECT_EQ(d->manifest.layers[1].media_type, kOciLayerZstd);
  EXPECT_EQ(d->manifest.layers[1].size, int64_t{1} << 53);
  EXPECT_EQ(d->manifest.layers[1].urls, std::vector<std::string>{"https://mirror.example/blob"});
  EXPECT_EQ(d->manifest.layers[1].annotations.at("org.opencontainers.image.title"), "app.tar.zst");
  EXPECT_EQ(d->manifest.annotations.at("org.opencontainers.image.created"), "2024-01-02T03:04:05Z");

  std::vector<Descriptor> children = Children(*d);
  ASSERT_EQ(children.size(), 3u);
  EXPECT_EQ(children[0].digest.String(), kConfigDigest);
  EXPECT_EQ(children[1].digest.String(), kLayer1);
  EXPECT_EQ(children[2].digest.String(), kLayer2);

  Result<std::string> canonical = CanonicalBytes(*d, kOciManifestDoc);
  ASSERT_TRUE(canonical.ok());
  EXPECT_EQ(*canonical, kOciManifestDoc);
}

TEST(Decode, OciIndex) {
  Result<Decoded> d = Decode("application/vnd.oci.image.index.v1+json", kOciIndexDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kIndex);
  EXPECT_EQ(d->index.media_type, kOciIndex);
  ASSERT_EQ(d->index.manifests.size(), 2u);
  EXPECT_EQ(d->index.manifests[0].digest.String(), kAmd64);
  ASSERT_TRUE(d->index.manifests[1].platform.has_value());
  const Platform& p = *d->index.manifests[1].platform;
  EXPECT_EQ(p.String(), "linux/arm64/v8");
  EXPECT_EQ(p.os_version, "6.1");
  EXPECT_EQ(p.os_features, std::vector<std::string>{"sse4"});
  std::vector<Descriptor> children = Children(*d);
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[1].digest.String(), kArm64);
}

TEST(Decode, DockerManifest) {
  Result<Decoded> d = Decode(kDockerManifest, kDockerManifestDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kImageManifest);
  EXPECT_EQ(d->media_type, kDockerManifest);
  EXPECT_EQ(d->manifest.config.media_type, kDockerConfig);
  ASSERT_EQ(d->manifest.layers.size(), 2u);
  EXPECT_EQ(d->manifest.layers[1].media_type, kDockerForeignLayer);
  EXPECT_EQ(d->manifest.layers[1].urls.size(), 1u);
}

TEST(Decode, DockerManifestList) {
  Result<Decoded> d = Decode(kDockerManifestList, kDockerListDoc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kIndex);
  EXPECT_EQ(d->media_type, kDockerManifestList);
  ASSERT_EQ(d->index.manifests.size(), 2u);
  EXPECT_EQ(d->index.manifests[0].platform->architecture, "ppc64le");
  EXPECT_EQ(d->index.manifests[1].media_type, kDockerManifest);
}

TEST(Decode, ContentTypeParametersAndGenericTypesAreIgnored) {
  for (const char* ct : {"", "application/json", "text/plain; charset=utf-8",
                         "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
                         " Application/VND.OCI.image.manifest.v1+json "}) {
    Result<Decoded> d = Decode(ct, kOciManifestDoc);
    ASSERT_TRUE(d.ok()) << ct << ": " << d.status().message();
    EXPECT_EQ(d->media_type, kOciManifest) << ct;
  }
}

TEST(Decode, MediaTypeFromContentTypeWhenTheDocumentHasNone) {
  std::string doc = kDockerManifestDoc;
  doc.replace(doc.find(R"("mediaType": "application/vnd.docker.distribution.manifest.v2+json",)"),
              sizeof(R"("mediaType": "application/vnd.docker.distribution.manifest.v2+json",)") - 1,
              "");
  Result<Decoded> d = Decode(kDockerManifest, doc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->media_type, kDockerManifest);
  // Without a content type the shape decides: an OCI manifest.
  d = Decode("application/json", doc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->media_type, kOciManifest);
}

TEST(Decode, MediaTypeFromShape) {
  std::string index = IndexEntryWith(R"("mediaType": ")" + std::string(kOciManifest) +
                                     R"(", "size": 1, "digest": ")" + kAmd64 + R"(")");
  index.erase(index.find(R"("mediaType": "application/vnd.oci.image.index.v1+json",)"),
              sizeof(R"("mediaType": "application/vnd.oci.image.index.v1+json",)") - 1);
  Result<Decoded> d = Decode("", index);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, Kind::kIndex);
  EXPECT_EQ(d->media_type, kOciIndex);
}

TEST(Decode, EmptyLayersAndEmptyIndexAreAccepted) {
  std::string no_layers = R"({"schemaVersion": 2, "config": {"mediaType": ")" +
                          std::string(kOciConfig) + R"(", "size": 2, "digest": ")" + kConfigDigest +
                          R"("}, "layers": []})";
  Result<Decoded> d = Decode(kOciManifest, no_layers);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d->manifest.layers.empty());
  EXPECT_EQ(Children(*d).size(), 1u);
  d = Decode(kOciIndex, R"({"schemaVersion": 2, "manifests": []})");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d->index.manifests.empty());
}

TEST(Decode, RefusesOversizedDocument) {
  std::string big =
      ManifestWith(R"(, "annotations": {"pad": ")" + std::string(kMaxManifestBytes, 'x') + R"("})");
  Result<Decoded> d = Decode(kOciManifest, big);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted);
}

TEST(Decode, RefusesDeepNesting) {
  std::string deep =
      ManifestWith(R"(, "annotations": )" + std::string(100, '[') + std::string(100, ']'));
  Result<Decoded> d = Decode(kOciManifest, deep);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(d.status().message(), HasSubstr("nested"));
}

struct Refusal {
  const char* name;
  std::string content_type;
  std::string doc;
  const char* message;  // a substring of the expected DataLoss message
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << r.name; }

class DecodeRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(DecodeRefuses, WithDataLoss) {
  const Refusal& r = GetParam();
  Result<Decoded> d = Decode(r.content_type, r.doc);
  ASSERT_FALSE(d.ok()) << r.name;
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status().message();
  EXPECT_THAT(d.status().message(), HasSubstr(r.message));
}

const std::string kOci(kOciManifest);
const std::string kSize = R"("size": 3)";

INSTANTIATE_TEST_SUITE_P(
    All, DecodeRefuses,
    ::testing::Values(
        Refusal{"NotJson", "", "{\"schemaVersion\": 2,", "not valid JSON"},
        Refusal{"Empty", "", "", "not valid JSON"},
        Refusal{"Array", "", "[1, 2]", "not a JSON object"},
        Refusal{"String", "", "\"manifest\"", "not a JSON object"},
        Refusal{"TrailingGarbage", "", ManifestWith("") + "x", "not valid JSON"},
        Refusal{"ContentTypeConflict", std::string(kDockerManifest), kOciManifestDoc,
                "conflicts with the manifest's mediaType"},
        Refusal{"ListVsIndex", std::string(kDockerManifestList), kOciIndexDoc, "conflicts"},
        Refusal{"UnknownMediaType", "",
                R"({"schemaVersion": 2, "mediaType": "application/vnd.example+json"})",
                "unsupported manifest media type application/vnd.example+json"},
        Refusal{"UnknownContentType", "application/vnd.example+json", R"({"schemaVersion": 2})",
                "unsupported manifest media type"},
        Refusal{"NoShape", "", R"({"schemaVersion": 2})", "cannot tell its type"},
        Refusal{"MediaTypeNotString", "", R"({"schemaVersion": 2, "mediaType": 7})",
                "mediaType must be a string"},
        Refusal{"SchemaVersion1ForOci", kOci,
                [] {
                  std::string m = ManifestWith("");
                  m.replace(m.find("\"schemaVersion\": 2"), 18, "\"schemaVersion\": 1");
                  return m;
                }(),
                "schemaVersion 2, got 1"},
        Refusal{"SchemaVersionMissing", kOci,
                R"({"config": {}, "layers": [], "mediaType": ")" + kOci + R"("})",
                "no schemaVersion"},
        Refusal{"SchemaVersionString", kOci, R"({"schemaVersion": "2", "layers": []})",
                "schemaVersion must be an integer"},
        Refusal{"SchemaVersionFloat", kOci, R"({"schemaVersion": 2.0, "layers": []})",
                "schemaVersion must be an integer"},
        Refusal{"Schema2ForSchema1Type", std::string(kDockerSchema1), ManifestWith(""),
                "conflicts"},
        Refusal{"IndexWithLayers", "",
                R"({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [], "layers": []})",
                "carries \"layers\""},
        Refusal{"ListWithConfig", "",
                R"({"schemaVersion": 2, "manifests": [], "config": {},
                    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"})",
                "carries \"config\""},
        Refusal{"IndexTypedByHeaderWithLayers", std::string(kOciIndex),
                R"({"schemaVersion": 2, "manifests": [], "layers": []})", "carries \"layers\""},
        Refusal{"ManifestWithManifests", "", ManifestWith(R"(, "manifests": [])"),
                "carries \"manifests\""},
        Refusal{"ManifestTypedByHeaderIsIndex", kOci, R"({"schemaVersion": 2, "manifests": []})",
                "carries \"manifests\""},
        Refusal{"NoConfig", kOci, R"({"schemaVersion": 2, "layers": []})", "has no config"},
        Refusal{"NoLayers", kOci,
                R"({"schemaVersion": 2, "config": {"mediaType": ")" + std::string(kOciConfig) +
                    R"(", "size": 2, "digest": ")" + kConfigDigest + R"("}})",
                "layers must be an array"},
        Refusal{"LayersNotArray", kOci,
                R"({"schemaVersion": 2, "layers": {}, "config": {"mediaType": ")" +
                    std::string(kOciConfig) + R"(", "size": 2, "digest": ")" + kConfigDigest +
                    R"("}})",
                "layers must be an array"},
        Refusal{"ConfigNotObject", kOci, R"({"schemaVersion": 2, "config": "x", "layers": []})",
                "config must be an object"},
        Refusal{"UnsupportedConfigType", kOci,
                R"({"schemaVersion": 2, "layers": [], "config": {"mediaType": "text/x",
                    "size": 2, "digest": ")" +
                    std::string(kConfigDigest) + R"("}})",
                "unsupported config media type text/x"},
        Refusal{"UnsupportedLayerType", kOci,
                ManifestWith("", "application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
                "unsupported layer media type application/vnd.cncf.helm.chart.content.v1.tar+gzip"},
        Refusal{"LayerWithoutMediaType", kOci, LayerWith(LayerDigest() + ", " + kSize),
                "layers[0].mediaType is missing"},
        Refusal{"LayerMediaTypeNotString", kOci,
                LayerWith(R"("mediaType": 1, )" + LayerDigest() + ", " + kSize),
                "layers[0].mediaType must be a string"},
        Refusal{"LayerWithoutDigest", kOci, LayerWith(GzipType() + ", " + kSize),
                "layers[0].digest is missing"},
        Refusal{"LayerBadDigest", kOci,
                LayerWith(GzipType() + R"(, "digest": "sha256:ABC", )" + kSize),
                "layers[0].digest"},
        Refusal{"LayerMd5Digest", kOci,
                LayerWith(GzipType() + R"(, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", )" +
                          kSize),
                "layers[0].digest"},
        Refusal{"LayerWithoutSize", kOci, LayerWith(GzipType() + ", " + LayerDigest()),
                "layers[0].size is missing"},
        Refusal{"NegativeSize", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": -1)"),
                "layers[0].size must be an integer"},
        Refusal{"FloatSize", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": 3.5)"),
                "layers[0].size must be an integer"},
        Refusal{"ExponentSize", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": 1e3)"),
                "layers[0].size must be an integer"},
        Refusal{"StringSize", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": "3")"),
                "layers[0].size must be an integer"},
        Refusal{"SizeOver2To53", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": 9007199254740993)"),
                "layers[0].size must be an integer"},
        Refusal{
            "HugeSize", kOci,
            LayerWith(GzipType() + ", " + LayerDigest() + R"(, "size": 100000000000000000000000)"),
            "layers[0].size must be an integer"},
        Refusal{"UrlsNotArray", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + ", " + kSize + R"(, "urls": "x")"),
                "layers[0].urls must be an array of strings"},
        Refusal{"UrlNotString", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + ", " + kSize + R"(, "urls": [1])"),
                "layers[0].urls must be an array of strings"},
        Refusal{"AnnotationsNotObject", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + ", " + kSize +
                          R"(, "annotations": ["a"])"),
                "layers[0].annotations must be an object of strings"},
        Refusal{"AnnotationValueNotString", kOci,
                LayerWith(GzipType() + ", " + LayerDigest() + ", " + kSize +
                          R"(, "annotations": {"a": 1})"),
                "layers[0].annotations[\"a\"] must be a string"},
        Refusal{"TopLevelAnnotationNotString", kOci, ManifestWith(R"(, "annotations": {"a": {}})"),
                "annotations[\"a\"] must be a string"},
        Refusal{"IndexEntryWithoutMediaType", std::string(kOciIndex),
                IndexEntryWith(R"("size": 1, "digest": ")" + std::string(kAmd64) + R"(")"),
                "manifests[0].mediaType is missing"},
        Refusal{"IndexManifestsNotArray", std::string(kOciIndex),
                R"({"schemaVersion": 2, "manifests": {}})", "manifests must be an array"},
        Refusal{"IndexEntryNotObject", std::string(kOciIndex),
                R"({"schemaVersion": 2, "manifests": [1]})", "manifests[0] must be an object"},
        Refusal{"PlatformNotObject", std::string(kOciIndex),
                IndexEntryWith(R"("mediaType": ")" + kOci + R"(", "size": 1, "digest": ")" +
                               kAmd64 + R"(", "platform": "linux/amd64")"),
                "manifests[0].platform must be an object"},
        Refusal{"PlatformWithoutOs", std::string(kOciIndex),
                IndexEntryWith(R"("mediaType": ")" + kOci + R"(", "size": 1, "digest": ")" +
                               kAmd64 + R"(", "platform": {"architecture": "amd64"})"),
                "manifests[0].platform.os is missing"},
        Refusal{"PlatformWithoutArchitecture", std::string(kOciIndex),
                IndexEntryWith(R"("mediaType": ")" + kOci + R"(", "size": 1, "digest": ")" +
                               kAmd64 + R"(", "platform": {"os": "linux"})"),
                "manifests[0].platform.architecture is missing"},
        Refusal{
            "PlatformVariantNotString", std::string(kOciIndex),
            IndexEntryWith(R"("mediaType": ")" + kOci + R"(", "size": 1, "digest": ")" + kAmd64 +
                           R"(", "platform": {"os": "linux", "architecture": "arm",
                                                  "variant": 7})"),
            "manifests[0].platform.variant must be a string"},
        Refusal{
            "PlatformFeaturesNotStrings", std::string(kOciIndex),
            IndexEntryWith(R"("mediaType": ")" + kOci + R"(", "size": 1, "digest": ")" + kAmd64 +
                           R"(", "platform": {"os": "linux", "architecture": "amd64",
                                                  "os.features": [true]})"),
            "manifests[0].platform.os.features must be an array of strings"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.name); });

// Manifests and indexes nested 300 000 deep are refused before parsing.
TEST(Decode, DeeplyNestedDocumentsAreDataLoss) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  for (const std::string& doc : {R"({"schemaVersion":2,"annotations":)" + deep + "}", deep,
                                 std::string(300000, '{')}) {
    Result<Decoded> d = Decode(kOciManifest, doc);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(d.status().message().find("JSON nested deeper than 64 levels"), std::string::npos)
        << d.status().message();
  }
}

}  // namespace
}  // namespace hoist::manifest
