// Python str semantics on UTF-8 std::strings: codepoint indexing, case mapping, whitespace,
// strip/split/splitlines, repr() quoting, float repr, and the `%` and str.format() mini-languages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::text::jinja {

class Value;
struct Args;

namespace py {

std::u32string decode(std::string_view utf8);
std::string encode(std::u32string_view text);
void append_utf8(std::string& out, char32_t c);
bool is_ascii(std::string_view s);
int64_t codepoint_length(std::string_view s);

bool is_space(char32_t c);  // str.isspace() for one character
bool is_cased(char32_t c);
bool is_upper_char(char32_t c);
bool is_lower_char(char32_t c);
bool is_alpha_char(char32_t c);
bool is_digit_char(char32_t c);
bool is_decimal_char(char32_t c);
bool is_numeric_char(char32_t c);
bool is_alnum_char(char32_t c);
bool is_word_char(char32_t c);  // regex \w
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
char32_t to_title(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);

enum class StripSide { both, left, right };
// chars == nullopt strips whitespace.
std::string strip(std::string_view s, StripSide side, const std::optional<std::string>& chars);
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old, std::string_view replacement,
                    int64_t count);
int64_t count(std::string_view s, std::string_view sub);  // non-overlapping, byte-based is exact
// str.find / rfind over the codepoint range [start, end) (Python slice semantics, nullopt = open).
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> end, bool reverse);
std::string pad(std::string_view s, int64_t width, char32_t fill, char align);  // '<' '>' '^'

// Codepoint-indexed slicing with Python semantics (negative indices, steps).
std::string slice(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step);
std::optional<std::string> char_at(std::string_view s, int64_t index);

std::string repr_string(std::string_view s);
std::string float_repr(double d);

// PySlice_AdjustIndices: normalized start/stop for a sequence of `length` items and the number of
// items the slice visits.
struct SliceBounds {
  int64_t start, stop, step, count;
};
SliceBounds adjust_slice(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                         std::optional<int64_t> step);

// Normalizes Python slice bounds for a sequence of `length` items (PySlice_AdjustIndices); returns
// the indices the slice visits.
std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step);

// `fmt % args` (printf style; args is a tuple, a single value or a mapping).
std::string percent_format(std::string_view fmt, const Value& args);
// fmt.format(*args, **kwargs).
std::string str_format(std::string_view fmt, const Args& args);

}  // namespace py
}  // namespace hearth::text::jinja
