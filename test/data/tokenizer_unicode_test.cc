// Unit tests for the tokenizers' text machinery: UTF-8 repair, NFC / NFD / NFKC / NFKD, the byte-level alphabet, and
// the Oniguruma-compatible regex splitting (expected pieces taken from Hugging Face tokenizers' Split pre-tokenizer).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/tokenizer_byte_level.h"
#include "data/tokenizer_nfc.h"
#include "data/tokenizer_regex.h"
#include "data/tokenizer_unicode.h"
#include "test/data/error_matchers.h"

namespace aligntrain::data {
namespace {

using testing::contains;
using testing::error_of;

const std::string kReplacement = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextIsKept) {
  for (const std::string text : {"", "abc", "é", "日本", "😀", "\x7F"}) {
    EXPECT_TRUE(is_valid_utf8(text)) << text;
    EXPECT_EQ(to_valid_utf8(text), text);
  }
}

TEST(Utf8, EachMaximalIllFormedSubpartBecomesOneReplacementCharacter) {
  // The same results as Python's bytes.decode("utf-8", "replace").
  EXPECT_EQ(to_valid_utf8("\xFF"), kReplacement);
  EXPECT_EQ(to_valid_utf8("a\x80" "b"), "a" + kReplacement + "b");
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98"), kReplacement);                              // truncated emoji
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98" "a"), kReplacement + "a");
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), kReplacement + kReplacement);                   // overlong
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), kReplacement + kReplacement + kReplacement);  // surrogate
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), kReplacement + kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(to_valid_utf8("\xE2\x82"), kReplacement);
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
}

TEST(Utf8, CodePointsRoundTrip) {
  for (char32_t cp : {0x24, 0xA2, 0x939, 0x20AC, 0xD55C, 0x10348, 0x10FFFF}) {
    std::string text;
    append_utf8(text, cp);
    std::size_t pos = 0;
    EXPECT_EQ(next_code_point(text, pos), cp);
    EXPECT_EQ(pos, text.size());
  }
}

TEST(Nfc, ComposesReordersAndDecomposesSingletons) {
  EXPECT_EQ(nfc("cafe\u0301"), "caf\u00e9");
  EXPECT_EQ(nfc("a\u0301\u0323"), "\u1ea1\u0301");  // marks reordered (230 after 220), then ạ + ́
  EXPECT_EQ(nfc("\u212b"), "\u00c5");               // ANGSTROM SIGN -> Å
  EXPECT_EQ(nfc("\u1100\u1161\u11a8"), "\uac01");   // Hangul jamo L V T -> syllable
  EXPECT_EQ(nfc("\uac00\u11a8"), "\uac01");         // LV syllable + T
  EXPECT_EQ(nfc("e\u0304\u0301"), "\u1e17");        // ē + ́ -> ḗ
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc("\ufb01"), "\ufb01");  // compatibility ligature: NFC leaves it
}

// Expected forms as Python's unicodedata.normalize and the tokenizers library's normalizers give them.
std::string nfkc(std::string_view text) { return unicode_normalize(text, UnicodeForm::kNfkc); }
std::string nfkd(std::string_view text) { return unicode_normalize(text, UnicodeForm::kNfkd); }
std::string nfd(std::string_view text) { return unicode_normalize(text, UnicodeForm::kNfd); }

TEST(Nfkc, FoldsCompatibilityCharacters) {
  EXPECT_EQ(nfkc("ﬁnance"), "finance");                  // ﬁ ligature
  EXPECT_EQ(nfkc("Ａｂｃ１２"), "Abc12");  // full-width Latin and digits
  EXPECT_EQ(nfkc("①⑳"), "120");                     // ① ⑳
  EXPECT_EQ(nfkc("x² + y⁵"), "x2 + y5");            // superscripts
  EXPECT_EQ(nfkc("½"), "1⁄2");                      // ½ -> 1⁄2 (FRACTION SLASH)
  EXPECT_EQ(nfkc("ℌ"), "H");                             // ℌ
  EXPECT_EQ(nfkc("㎒"), "MHz");                           // ㎒
  EXPECT_EQ(nfkc(" "), " ");                             // NO-BREAK SPACE
  EXPECT_EQ(nfkc("ﷺ"), "صلى الله عليه وسلم");
  EXPECT_EQ(nfkc("ﻷ"), "لأ");                  // Arabic ligature: lam + alef with hamza (composed)
  EXPECT_EQ(nfkc("ｶﾞ"), "ガ");                  // half-width ｶﾞ -> ガ (composed with the voiced mark)
  EXPECT_EQ(nfkc("ẛ̣"), "ṩ");                  // ẛ̣: long s folds to s, then ṩ composes
  EXPECT_EQ(nfkc("㈀"), "(ᄀ)");                      // ㈀ parenthesized Hangul kiyeok
  EXPECT_EQ(nfkc("각"), "각");            // Hangul jamo still compose
  EXPECT_EQ(nfkc("café"), "café");
  EXPECT_EQ(nfkc("plain ascii"), "plain ascii");
}

TEST(Nfkc, CharactersNewerThanTheLibrarysTablesAreKept) {
  // U+32FF SQUARE ERA NAME REIWA (Unicode 12.1) has <square> 4EE4 548C in Python's tables, but the tokenizers
  // library's Unicode tables predate it and leave it unchanged.
  EXPECT_EQ(nfkc("㋿"), "㋿");
  EXPECT_EQ(nfkc("🯱"), "🯱");  // SEGMENTED DIGIT ONE (Unicode 13.0)
}

TEST(Nfd, DecomposesWithoutComposing) {
  EXPECT_EQ(nfd("café"), "café");
  EXPECT_EQ(nfd("À"), "À");  // a Latin-1 letter: below U+0300, still decomposed
  EXPECT_EQ(nfd("각"), "각");
  EXPECT_EQ(nfd("ạ́"), "ạ́");  // canonical order
  EXPECT_EQ(nfd("ﬁ"), "ﬁ");                 // no compatibility folding
  EXPECT_EQ(nfkd("ﬁé"), "fié");
  EXPECT_EQ(nfkd("ª"), "a");  // FEMININE ORDINAL INDICATOR, below U+00C0
  EXPECT_EQ(nfkd("ẛ̣"), "ṩ");
}

TEST(ByteLevel, EveryByteRoundTrips) {
  EXPECT_EQ(byte_level_char(' '), "\u0120");  // Ġ
  EXPECT_EQ(byte_level_char('\n'), "\u010a");  // Ċ
  EXPECT_EQ(byte_level_char('A'), "A");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
  EXPECT_EQ(from_byte_level("a b"), std::nullopt);  // a plain space is not in the alphabet
}

std::vector<std::string> split(const std::string& pattern, const std::string& text) {
  std::vector<std::string_view> pieces;
  Regex(pattern).split_isolated(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

TEST(Regex, IsolatedSplitKeepsMatchesAndGaps) {
  EXPECT_EQ(split(R"(\s+)", "How are  you"), (Pieces{"How", " ", "are", "  ", "you"}));
  EXPECT_EQ(split(R"(\p{N}{1,3})", "a12345"), (Pieces{"a", "123", "45"}));
  EXPECT_EQ(split(R"((?i:'s|'t))", "IT'S it's"), (Pieces{"IT", "'S", " it", "'s"}));
  EXPECT_EQ(split("x", ""), Pieces{});
}

TEST(Regex, EmptyMatchesSplitLikeOniguruma) {
  EXPECT_EQ(split("x*", "axb"), (Pieces{"a", "x", "b"}));
  EXPECT_EQ(split("", "ab"), (Pieces{"a", "b"}));
  EXPECT_EQ(split("(?=b)", "abab"), (Pieces{"a", "ba", "b"}));
}

TEST(Regex, AnchorsAreLineAnchorsAsInOniguruma) {
  EXPECT_EQ(split("^a", "b\na"), (Pieces{"b\n", "a"}));
  EXPECT_EQ(split("a$", "a\nb"), (Pieces{"a", "\nb"}));
}

TEST(Regex, WhitespaceIsOnigurumasWhichExcludesMongolianVowelSeparator) {
  EXPECT_EQ(split(R"(\s+)", "a\u180eb"), (Pieces{"a\u180eb"}));
  EXPECT_EQ(split(R"([^\s\p{L}]+)", "a\u180e b"), (Pieces{"a", "\u180e", " b"}));
  EXPECT_EQ(split(R"(\s+(?!\S))", "a  \u0085b"), (Pieces{"a", "  ", "\u0085b"}));
}

TEST(Regex, ConstructsTheEnginesReadDifferentlyAreRefused) {
  for (const char* pattern : {R"(\w+)", R"(\bx)", R"([^\S])", "[[:alpha:]]", "[a-z&&[^b]]", R"(\h)"}) {
    EXPECT_TRUE(contains(error_of([&] { Regex r(pattern); }), "Oniguruma and PCRE2")) << pattern;
  }
  EXPECT_TRUE(contains(error_of([] { Regex r("(unclosed"); }), "invalid regular expression"));
  EXPECT_NO_THROW(Regex(R"(\w)", Regex::Syntax::kLiteral));
}

TEST(Regex, LiteralPatternsMatchThemselves) {
  std::vector<std::string_view> pieces;
  Regex("a.b", Regex::Syntax::kLiteral).split_isolated("xa.bxaxb", pieces);
  EXPECT_EQ(Pieces(pieces.begin(), pieces.end()), (Pieces{"x", "a.b", "xaxb"}));
}

TEST(Regex, LongRunsDoNotExhaustTheMatcher) {
  const std::string text = std::string(1 << 20, ' ') + "x";
  const Regex gpt2(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  std::vector<std::string_view> pieces;
  gpt2.split_isolated(text, pieces);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[1], " x");
}

}  // namespace
}  // namespace aligntrain::data
