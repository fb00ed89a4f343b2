#include "unpack/mount.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace hoist::unpack {
namespace {

TEST(MountedLowerdirs, FindsTheMountByIdAndDevice) {
  const std::string info =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "97 22 0:52 / /mnt/x rw,relatime shared:50 - overlay overlay "
      "rw,lowerdir=/s/layers/sha256/aa/rootfs:/s/my\\040dir/rootfs,upperdir=/s/mounts/m/upper,"
      "workdir=/s/mounts/m/work\n"
      "98 22 0:53 / /mnt/y ro - tmpfs tmpfs rw\n";
  auto dirs = MountedLowerdirs(info, MountIdentity{97, makedev(0, 52)});
  ASSERT_TRUE(dirs.has_value());
  EXPECT_EQ(*dirs, (std::vector<std::string>{"/s/layers/sha256/aa/rootfs", "/s/my dir/rootfs"}));
  // Another device under the same id, or an id that is not listed: the mount is gone.
  EXPECT_FALSE(MountedLowerdirs(info, MountIdentity{97, makedev(0, 53)}).has_value());
  EXPECT_FALSE(MountedLowerdirs(info, MountIdentity{99, makedev(0, 52)}).has_value());
  // Live, but not an overlay.
  auto tmpfs = MountedLowerdirs(info, MountIdentity{98, makedev(0, 53)});
  ASSERT_TRUE(tmpfs.has_value());
  EXPECT_TRUE(tmpfs->empty());
}

TEST(MountRecord, RoundTripsAndRefusesOtherFiles) {
  char tmpl[] = "/tmp/hoist-mount-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/mount.json") << MountRecordJson("/mnt/x", MountIdentity{7, 42});
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto got = ReadMountRecord(fd.get(), dir + "/mount.json");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (MountIdentity{7, 42}));
  std::ofstream(dir + "/mount.json") << "{\"target\":\"/mnt/x\"}";
  EXPECT_EQ(ReadMountRecord(fd.get(), dir + "/mount.json").status().code(), StatusCode::kDataLoss);
  std::remove((dir + "/mount.json").c_str());
  EXPECT_EQ(ReadMountRecord(fd.get(), dir + "/mount.json").status().code(), StatusCode::kNotFound);
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace hoist::unpack
