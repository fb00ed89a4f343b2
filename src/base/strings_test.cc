#include "base/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace hoist {
namespace {

// True when `s` holds no byte a terminal acts on: no C0, no DEL and no byte >= 0x80 that could
// start or be part of a C1 control. Output of the escapers keeps printable UTF-8, so this looks
// only at what these tests feed in (ASCII plus the escaped forms).
bool IsPlainAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

TEST(TerminalSafe, KeepsPrintableAsciiAndUtf8) {
  EXPECT_EQ(TerminalSafe("manifest unknown: a/b:1 ~!@#$%^&*()\"\\"),
            "manifest unknown: a/b:1 ~!@#$%^&*()\"\\");
  // 2-, 3- and 4-byte sequences: é, €, 漢, 😀.
  EXPECT_EQ(TerminalSafe("caf\xc3\xa9 \xe2\x82\xac \xe6\xbc\xa2 \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xe6\xbc\xa2 \xf0\x9f\x98\x80");
  EXPECT_EQ(TerminalSafe(""), "");
}

TEST(TerminalSafe, EscapesC0ControlsAndDel) {
  EXPECT_EQ(TerminalSafe("a\x1b[2Jb"), "a\\x1b[2Jb");                           // clear screen
  EXPECT_EQ(TerminalSafe("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");            // OSC window title
  EXPECT_EQ(TerminalSafe("ok\rhoist: forged\n"), "ok\\x0dhoist: forged\\x0a");  // forged line
  EXPECT_EQ(TerminalSafe("a\tb"), "a\\x09b");
  EXPECT_EQ(TerminalSafe(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(TerminalSafe("\x7f"), "\\x7f");
  EXPECT_EQ(TerminalSafe("\x08\x08\x08"), "\\x08\\x08\\x08");
}

TEST(TerminalSafe, EscapesC1Controls) {
  // U+009B (CSI) and U+009D (OSC) encoded as UTF-8, which a UTF-8 terminal may act on.
  EXPECT_EQ(TerminalSafe("\xc2\x9b"
                         "2J"),
            "\\u009b2J");
  EXPECT_EQ(TerminalSafe("\xc2\x9d"
                         "0;t\xc2\x9c"),
            "\\u009d0;t\\u009c");
  EXPECT_EQ(TerminalSafe("\xc2\x80\xc2\x9f\xc2\xa0"), "\\u0080\\u009f\xc2\xa0");  // NBSP is kept
}

TEST(TerminalSafe, EscapesLayoutChangingCodePoints) {
  EXPECT_EQ(TerminalSafe("a\xe2\x80\xa8"
                         "b"),
            "a\\u2028b");  // line separator
  EXPECT_EQ(TerminalSafe("\xe2\x80\xae"
                         "cba"),
            "\\u202ecba");  // right-to-left override
  EXPECT_EQ(TerminalSafe("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");  // isolates
  EXPECT_EQ(TerminalSafe("\xe2\x80\x8f"), "\\u200f");
}

TEST(TerminalSafe, EscapesInvalidUtf8Bytes) {
  EXPECT_EQ(TerminalSafe("\x9b"
                         "2J"),
            "\\x9b2J");                                                 // a lone 8-bit CSI byte
  EXPECT_EQ(TerminalSafe("\xc0\x9b"), "\\xc0\\x9b");                    // overlong form of ESC-ish
  EXPECT_EQ(TerminalSafe("\xe0\x80\x9b"), "\\xe0\\x80\\x9b");           // overlong
  EXPECT_EQ(TerminalSafe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(TerminalSafe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(TerminalSafe("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(TerminalSafe("ab\xe2\x82"), "ab\\xe2\\x82");  // cut at the end
  EXPECT_EQ(TerminalSafe("\xc3(a"), "\\xc3(a");           // bad continuation
}

TEST(TerminalSafe, IsIdempotent) {
  const std::string hostile = "x\x1b[2J\xc2\x9b\x9b\r\n\xe2\x80\xae\\x1b\"";
  const std::string once = TerminalSafe(hostile);
  EXPECT_TRUE(IsPlainAscii(once)) << once;
  EXPECT_EQ(TerminalSafe(once), once);
}

TEST(ParseDigits, TakesOnlyDecimalDigits) {
  EXPECT_EQ(ParseDigits("0"), 0u);
  EXPECT_EQ(ParseDigits("0042"), 42u);
  EXPECT_EQ(ParseDigits("9999999999999999999"), 9999999999999999999u);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "10000000000000000000"}) {
    EXPECT_EQ(ParseDigits(bad), std::nullopt) << bad;
  }
}

TEST(Quote, QuotesAndEscapesQuotesAndBackslashes) {
  EXPECT_EQ(Quote("usr/bin/x"), "\"usr/bin/x\"");
  EXPECT_EQ(Quote("a\"b\\c"), "\"a\\x22b\\x5cc\"");
  EXPECT_EQ(Quote("a\x1b[2Jb\n"), "\"a\\x1b[2Jb\\x0a\"");
  EXPECT_EQ(Quote("\xc2\x9b\x9b"), "\"\\u009b\\x9b\"");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(Quote, CutsLongText) {
  const std::string q = Quote(std::string(kMaxQuotedBytes + 50, 'a'));
  EXPECT_EQ(q, "\"" + std::string(kMaxQuotedBytes, 'a') + "...\"");
  EXPECT_EQ(Quote(std::string(kMaxQuotedBytes, 'a')),
            "\"" + std::string(kMaxQuotedBytes, 'a') + "\"");
}

TEST(TerminalSafeJson, EscapesAsJsonAndKeepsLayout) {
  // A dump keeps raw LF and tab only between tokens; everything else becomes \uNNNN.
  EXPECT_EQ(TerminalSafeJson("{\n\t\"a\": \"x\x7fy\xc2\x9b\xe2\x80\xae\"\n}"),
            "{\n\t\"a\": \"x\\u007fy\\u009b\\u202e\"\n}");
  EXPECT_EQ(TerminalSafeJson("\"\x1b\r\""), "\"\\u001b\\u000d\"");
  EXPECT_EQ(TerminalSafeJson("\"\x9b\""), "\"\\ufffd\"");
  EXPECT_EQ(TerminalSafeJson("\"caf\xc3\xa9 \\\\ \\\"\""), "\"caf\xc3\xa9 \\\\ \\\"\"");
}

}  // namespace
}  // namespace hoist
