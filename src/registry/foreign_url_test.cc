#include "registry/foreign_url.h"

#include <gtest/gtest.h>

#include <map>

namespace hoist::registry {
namespace {

TEST(IsPublicAddress, RefusesLoopbackPrivateLinkLocalAndEmbeddedForms) {
  for (std::string a : {"127.0.0.1",
                        "127.0.0.2",
                        "10.1.2.3",
                        "172.16.0.1",
                        "172.31.255.255",
                        "192.168.1.1",
                        "169.254.169.254",
                        "100.64.0.1",
                        "0.0.0.0",
                        "224.0.0.1",
                        "255.255.255.255",
                        "198.18.0.1",
                        "::",
                        "::1",
                        "fe80::1",
                        "fc00::1",
                        "fd12:3456::1",
                        "ff02::1",
                        "::ffff:127.0.0.1",
                        "::ffff:10.0.0.1",
                        "::127.0.0.1",
                        "64:ff9b::a9fe:a9fe",
                        "2002:7f00:1::1",
                        "not an ip",
                        "",
                        "localhost"}) {
    EXPECT_FALSE(IsPublicAddress(a)) << a;
  }
  for (std::string a : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1",
                        "2606:2800:220:1::248", "::ffff:8.8.8.8", "2002:808:808::1"}) {
    EXPECT_TRUE(IsPublicAddress(a)) << a;
  }
}

// A resolver that answers from a table, as a DNS server under someone else's control might.
Resolver FakeDns(std::map<std::string, std::vector<std::string>> table) {
  return [table](const std::string& host) -> Result<std::vector<std::string>> {
    auto it = table.find(host);
    if (it == table.end()) return UnavailableError("cannot resolve " + host);
    return it->second;
  };
}

TEST(CheckForeignUrl, PublicHostIsPinnedToTheCheckedAddresses) {
  auto dns = FakeDns({{"cdn.example", {"93.184.216.34", "2606:2800:220:1::248"}}});
  auto pin = CheckForeignUrl("https://cdn.example/layer", {}, dns);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  EXPECT_EQ(*pin, "cdn.example:443:93.184.216.34,[2606:2800:220:1::248]");
  pin = CheckForeignUrl("http://cdn.example:8080/layer", {}, dns);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  EXPECT_EQ(*pin, "cdn.example:8080:93.184.216.34,[2606:2800:220:1::248]");
  pin = CheckForeignUrl("http://93.184.216.34/layer", {}, dns);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  EXPECT_EQ(*pin, "") << "an address literal needs no pinning";
}

TEST(CheckForeignUrl, EveryAddressOfTheHostIsChecked) {
  // One public answer does not excuse a loopback one beside it, nor does a name hide that it
  // points at loopback or at the cloud metadata service.
  auto dns = FakeDns({{"mixed.example", {"93.184.216.34", "127.0.0.1"}},
                      {"rebind.example", {"169.254.169.254"}},
                      {"v6.example", {"::1"}}});
  for (std::string url : {"http://mixed.example/x", "http://rebind.example/x",
                          "http://v6.example/x", "http://127.0.0.2:8080/x", "http://[::1]/x",
                          "http://[::ffff:127.0.0.1]/x", "http://10.0.0.1/x"}) {
    auto r = CheckForeignUrl(url, {"93.184.216.34"}, dns);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().message();
  }
  // The real resolver: "localhost" and a decimal address are loopback too.
  for (std::string url : {"http://localhost:9/x", "http://2130706433/x"}) {
    auto r = CheckForeignUrl(url, {"93.184.216.34"});
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().message();
  }
}

TEST(CheckForeignUrl, PrivateAddressIsFineWhereTheRegistryLives) {
  auto dns = FakeDns({{"registry.lan", {"10.0.0.5"}}, {"other.lan", {"10.0.0.6"}}});
  EXPECT_TRUE(CheckForeignUrl("http://registry.lan:8080/x", {"10.0.0.5"}, dns).ok());
  EXPECT_TRUE(CheckForeignUrl("http://127.0.0.1:8080/x", {"127.0.0.1"}, dns).ok());
  EXPECT_FALSE(CheckForeignUrl("http://other.lan/x", {"10.0.0.5"}, dns).ok());
  EXPECT_FALSE(CheckForeignUrl("http://127.0.0.2:8080/x", {"127.0.0.1"}, dns).ok());
}

TEST(CheckForeignUrl, OnlyHttpWithoutCredentials) {
  auto dns = FakeDns({{"cdn.example", {"93.184.216.34"}}});
  for (std::string url :
       {"ftp://cdn.example/x", "file:///etc/passwd", "gopher://cdn.example/",
        "http://user:pw@cdn.example/x", "http://user@cdn.example/x", "not a url", "http://"}) {
    auto r = CheckForeignUrl(url, {}, dns);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << url << r.status().message();
  }
}

}  // namespace
}  // namespace hoist::registry
