// Unit tests of the Jinja engine (data/jinja.h), one table per construct group. Each expected string is what
// transformers' chat-template environment (jinja2 3.1 sandbox, trim_blocks, lstrip_blocks) renders for the same
// template and variables; the parity test (jinja_parity_test.sh) checks whole templates against it at test time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "data/jinja.h"

namespace aligntrain::data {
namespace {

struct Case {
  const char* name;
  const char* tmpl;
  const char* vars;
  const char* expected;
};

std::string render(const std::string& tmpl, const std::string& vars = "{}", const JinjaOptions& options = {}) {
  return JinjaTemplate(tmpl).render(nlohmann::ordered_json::parse(vars), options).text;
}

void check(const Case& c) {
  try {
    EXPECT_EQ(render(c.tmpl, c.vars), c.expected) << c.name << ": " << c.tmpl;
  } catch (const std::exception& e) {
    ADD_FAILURE() << c.name << ": " << c.tmpl << "\n  threw: " << e.what();
  }
}

const Case kWhitespace[] = {
    {"trim_blocks_drops_newline_after_tag", "{% if true %}\nA\n{% endif %}\nB",
     "{}",
     "A\nB"},
    {"lstrip_blocks_strips_indent_before_tag", "x\n    {% if true %}y{% endif %}\n  {# c #}\nz",
     "{}",
     "x\nyz"},
    {"lstrip_blocks_not_for_output_tags", "  {{ 'v' }}\n",
     "{}",
     "  v"},
    {"plus_keeps_indent_and_newline", "  {%+ if true %}a{% endif +%}\nb",
     "{}",
     "  a\nb"},
    {"minus_strips_all_whitespace", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}\n  c",
     "{}",
     "abc"},
    {"output_minus", "a \n {{- 'b' -}} \n c",
     "{}",
     "abc"},
    {"comment_minus", "a \n {#- note -#} \n b",
     "{}",
     "ab"},
    {"raw_block", "{% raw %}{{ not evaluated }}{% endraw %}",
     "{}",
     "{{ not evaluated }}"},
    {"one_trailing_newline_dropped", "a\n\n",
     "{}",
     "a\n"},
    {"crlf_normalised", "a\r\nb\rc",
     "{}",
     "a\nb\nc"},
    {"text_before_tag_mid_line_kept", "ab  {% if true %}c{% endif %}",
     "{}",
     "ab  c"},
};

TEST(Jinja, Whitespace) {
  for (const Case& c : kWhitespace) check(c);
}

const Case kExpressions[] = {
    {"literals", "{{ [1, 'a', none, true, 2.5, (1,), (1, 2), {'k': [1]}] }}",
     "{}",
     "[1, 'a', None, True, 2.5, (1,), (1, 2), {'k': [1]}]"},
    {"arithmetic", "{{ 7 + 2 }} {{ 7 - 2.5 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
     "{}",
     "9 4.5 21 3.5 3 -4 1 2 1024 0.5"},
    {"float_repr", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-7 }} {{ 3.0 }} {{ 1 / 3 }} {{ 100.0 }}",
     "{}",
     "0.30000000000000004 1e+16 1.5e-07 3.0 0.3333333333333333 100.0"},
    {"string_ops", "{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ 'x' ~ 1 ~ none ~ true ~ 2.0 }} {{ undefined_name ~ '!' }}",
     "{}",
     "ab ababab x1NoneTrue2.0 !"},
    {"comparisons", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }} {{ [1, 2] == [1, 2] }} {{ 'b' >= 'a' }}",
     "{}",
     "True False True True True True True"},
    {"membership", "{{ 'a' in ['a'] }} {{ 'bc' in 'abc' }} {{ 'k' in {'k': 1} }} {{ 3 not in [1, 2] }}",
     "{}",
     "True True True True"},
    {"logic_returns_operands", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not none }} {{ [] or {} or 'z' }}",
     "{}",
     "x y True z"},
    {"ternary", "{{ 'yes' if x else 'no' }} {{ 'yes' if not x else 'no' }} [{{ 'only' if false }}]",
     "{\"x\": 0}",
     "no yes []"},
    {"precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 'a' ~ 1 + 2 if false else 'p' }}",
     "{}",
     "7 9 4 64 p"},
    {"attribute_and_item", "{{ m.content }} {{ m['content'] }} {{ m.missing }}|{{ m['missing'] }}|{{ xs.0 }} {{ xs[-1] }} {{ xs[9] }}|",
     "{\"m\": {\"content\": \"hi\"}, \"xs\": [1, 2]}",
     "hi hi ||1 2 |"},
    {"dict_attribute_prefers_method", "{{ d['items'] }} {{ d.items() | list }} {{ d.get('x', 0) }} {{ d.get('items') }}",
     "{\"d\": {\"items\": 5}}",
     "5 [('items', 5)] 0 5"},
    {"slicing", "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[::2] }} {{ 'héllo'[1:3] }} {{ 'abc'[::-1] }} {{ xs[5:] }}",
     "{\"xs\": [1, 2, 3, 4]}",
     "[4, 3, 2, 1] [2, 3, 4] [1, 2, 3] [1, 3] él cba []"},
    {"call_global_functions", "{{ range(3) | list }} {{ range(1, 8, 3) | list }} {{ dict(a=1) }} {{ namespace(a=2).a }}",
     "{}",
     "[0, 1, 2] [1, 4, 7] {'a': 1} 2"},
};

TEST(Jinja, Expressions) {
  for (const Case& c : kExpressions) check(c);
}

const Case kStatements[] = {
    {"if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %} {% endfor %}",
     "{}",
     "one two many "},
    {"for_loop_variables", "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
     "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}",
     "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;"},
    {"for_previtem_nextitem_cycle", "{% for x in 'abc' %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | default('-') }}{{ loop.cycle('+', '*') }} {% endfor %}",
     "{}",
     "-ab+ abc* bc-+ "},
    {"for_filter_and_else", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }} {% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
     "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}",
     "1:user 2:assistant empty"},
    {"for_unpacking", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}",
     "{\"d\": {\"z\": 1, \"a\": 2}}",
     "z=1;a=2;37"},
    {"for_over_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'xyz' %}{{ c }}.{% endfor %}|{% for u in undefined_thing %}no{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "ba|x.y.z.|"},
    {"break_continue", "{% for i in range(10) %}{% if i % 2 %}{% continue %}{% endif %}{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "{}",
     "0246"},
    {"loop_scope_does_not_leak", "{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}{{ n }}{% endfor %}{{ n }}",
     "{}",
     "120"},
    {"namespace_carries_out_of_loops", "{% set ns = namespace(total=0, seen=[]) %}{% for x in [1, 2, 3] %}{% set ns.total = ns.total + x %}{% set ns.seen = ns.seen + [x] %}{% endfor %}{{ ns.total }} {{ ns.seen }}",
     "{}",
     "6 [1, 2, 3]"},
    {"set_in_if_is_visible", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}",
     "{}",
     "5"},
    {"set_tuple_and_block", "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t %}[{{ a }}]{% endset %}{{ t }} {% set u | upper | trim %} low {% endset %}{{ u }}",
     "{}",
     "12 [1] LOW"},
    {"macro_defaults_and_keywords", "{% macro tag(name, value='v', close=true) %}<{{ name }}={{ value }}{{ '/' if close }}>{% endmacro %}{{ tag('a') }}{{ tag('b', 2) }}{{ tag('c', close=false) }}",
     "{}",
     "<a=v/><b=2/><c=v>"},
    {"macro_sees_outer_variables", "{% set sep = '|' %}{% macro j(xs) %}{{ xs | join(sep) }}{% endmacro %}{{ j([1, 2]) }}",
     "{}",
     "1|2"},
    {"call_block_with_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller('x') }}</{{ tag }}>{% endmacro %}{% call(v) wrap('b') %}inner {{ v }}{% endcall %}",
     "{}",
     "<b>inner x</b>"},
    {"filter_block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}",
     "{}",
     "HELLO WORLD"},
    {"with_block_scope", "{% set a = 1 %}{% with a = a + 1, b = a %}{{ a }}{{ b }}{% set c = 3 %}{% endwith %}{{ a }}{{ c }}{% with x, y = [1, 2] %}{{ x }}{{ y }}{% endwith %}",
     "{}",
     "21112"},
};

TEST(Jinja, Statements) {
  for (const Case& c : kStatements) check(c);
}

const Case kFilters[] = {
    {"trim_upper_lower_title_capitalize", "{{ '  x y  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello big-world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'xxhixx' | trim('x') }}",
     "{}",
     "x y|AB|ab|Hello Big-World|Hello|hi"},
    {"tojson", "{{ d | tojson }} {{ 'é\"\\n' | tojson }} {{ none | tojson }} {{ d | tojson(separators=(',', ':')) }} {{ d | tojson(sort_keys=true) }}",
     "{\"d\": {\"b\": [1, 2.0, \"é\"], \"a\": null, \"c\": true}}",
     "{\"b\": [1, 2.0, \"é\"], \"a\": null, \"c\": true} \"é\\\"\\n\" null {\"b\":[1,2.0,\"é\"],\"a\":null,\"c\":true} {\"a\": null, \"b\": [1, 2.0, \"é\"], \"c\": true}"},
    {"tojson_indent", "{{ d | tojson(indent=2) }}\n{{ [] | tojson(indent=2) }}{{ {} | tojson(indent=2) }}",
     "{\"d\": {\"b\": [1, {\"x\": []}], \"a\": {}}}",
     "{\n  \"b\": [\n    1,\n    {\n      \"x\": []\n    }\n  ],\n  \"a\": {}\n}\n[]{}"},
    {"length_count_first_last", "{{ xs | length }} {{ 'héllo' | count }} {{ d | length }} {{ xs | first }} {{ xs | last }} {{ [] | first }}|",
     "{\"xs\": [3, 1, 2], \"d\": {\"a\": 1}}",
     "3 5 1 3 2 |"},
    {"join_replace", "{{ xs | join(', ') }} {{ xs | join }} {{ 'aXbXc' | replace('X', '-') }} {{ 'aXbXc' | replace('X', '-', 1) }}",
     "{\"xs\": [1, \"b\", null]}",
     "1, b, None 1bNone a-b-c a-bXc"},
    {"default", "{{ missing | default('d') }} {{ '' | default('e') }}|{{ '' | default('e', true) }} {{ 0 | d(5, boolean=true) }} {{ none | default('n') }}",
     "{}",
     "d |e 5 None"},
    {"items_list_string_int_float", "{{ d | items | list }} {{ 'ab' | list }} {{ 12 | string }}{{ '42' | int + 1 }} {{ '4.7' | int }} {{ 'x' | int }} {{ '1.5' | float }} {{ 3 | float }}",
     "{\"d\": {\"k\": \"v\"}}",
     "[('k', 'v')] ['a', 'b'] 1243 4 0 1.5 3.0"},
    {"selectattr_rejectattr_map", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }} {{ messages | selectattr('content') | list | length }}",
     "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}",
     "['u'] system,assistant 3"},
    {"select_reject_map_filter", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ ['a', 'b'] | map('upper') | list }}",
     "{}",
     "[1, 3] [1, 3] ['A', 'B']"},
    {"abs_round", "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 1.57 | round(1, 'floor') }} {{ 3 | round }}",
     "{}",
     "3 2.5 2.0 4.0 2.67 1.5 3"},
    {"indent", "{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent('> ', blank=true) }}",
     "{}",
     "a\n  b\n\n  c|  a\n  b|a\n> \n> b"},
    {"unique_dictsort_sort_min_max_sum_reverse", "{{ ['b', 'A', 'a', 'b'] | unique | list }} {{ {'b': 1, 'A': 2} | dictsort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'a'] | min }} {{ [1, 5, 3] | max }} {{ [1, 2] | sum }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }}",
     "{}",
     "['b', 'A'] [('A', 2), ('b', 1)] [3, 2, 1] a 5 3 [2, 1] cba"},
    {"safe_escape_format_wordcount", "{{ '<b>' | safe }} {{ '<a href=\"x\">' | e }} {{ '%s-%05.1f' | format('v', 2.25) }} {{ 'a b  c' | wordcount }}",
     "{}",
     "<b> &lt;a href=&#34;x&#34;&gt; v-002.2 3"},
};

TEST(Jinja, Filters) {
  for (const Case& c : kFilters) check(c);
}

const Case kTests[] = {
    {"type_tests", "{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ [] is sequence }}{{ true is boolean }}",
     "{}",
     "FalseTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrueTrue"},
    {"value_tests", "{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ 1 is eq 1 }}{{ 2 is equalto 3 }}{{ 'a' is in 'abc' }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'A' is upper }}{{ 2 is gt 1 }}{{ x is not defined }}",
     "{}",
     "TrueFalseTrueFalseTrueFalseTrueTrueTrueTrueTrueTrueTrue"},
    {"message_field_tests", "{% for m in messages %}{{ m.tool_calls is defined }}{{ m.content is string }}{{ m.content is none }};{% endfor %}",
     "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": []}, {\"role\": \"user\", \"content\": \"x\"}]}",
     "TrueFalseTrue;FalseTrueFalse;"},
};

TEST(Jinja, Tests) {
  for (const Case& c : kTests) check(c);
}

const Case kMethods[] = {
    {"strip_family", "[{{ '  a  '.strip() }}][{{ '  a  '.lstrip() }}][{{ '  a  '.rstrip() }}][{{ '\\n\\nx\\n'.strip('\\n') }}][{{ 'xxaxx'.rstrip('x') }}]",
     "{}",
     "[a][a  ][  a][x][xxa]"},
    {"startswith_endswith", "{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('x') }}",
     "{}",
     "TrueTrueTrueFalse"},
    {"split", "{{ 'a b  c'.split() }} {{ 'a,b,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ ' a b c '.split(None, 1) }} {{ 'x</think>y'.split('</think>')[-1] }} {{ 'a:b:c'.rsplit(':', 1) }}",
     "{}",
     "['a', 'b', 'c'] ['a', 'b', 'c'] ['a', 'b,c'] ['a', 'b c '] y ['a:b', 'c']"},
    {"case_replace_format", "{{ 'Ab'.upper() }}{{ 'Ab'.lower() }} {{ 'hello world'.title() }} {{ 'aaa'.replace('a', 'b', 2) }} {{ '{} and {name}'.format(1, name='n') }}",
     "{}",
     "ABab Hello World bba 1 and n"},
    {"dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 'dflt') }}",
     "{\"d\": {\"a\": 1, \"b\": 2}}",
     "['a', 'b'] [1, 2] [('a', 1), ('b', 2)] 1 None dflt"},
    {"list_methods", "{{ xs.index(2) }} {{ xs.count(1) }}",
     "{\"xs\": [1, 2, 1]}",
     "1 2"},
};

TEST(Jinja, Methods) {
  for (const Case& c : kMethods) check(c);
}

const Case kUnicode[] = {
    {"case_mapping", "{{ 'é' | upper }}{{ 'Straße ÿ' | upper }} {{ 'ÀÉÎ ĀĂ Ωμέγα ПРИВЕТ Ёж' | lower }} {{ 'àéî āă ωμέγα привет ёж' | upper }}",
     "{}",
     "ÉSTRASSE Ÿ àéî āă ωμέγα привет ёж ÀÉÎ ĀĂ ΩΜΈΓΑ ПРИВЕТ ЁЖ"},
    {"title_capitalize", "{{ 'élan vital ñandú' | title }}|{{ 'élan vital ñandú'.title() }}|{{ 'éLAN' | capitalize }}|{{ '中文abc def'.title() }}",
     "{}",
     "Élan Vital Ñandú|Élan Vital Ñandú|Élan|中文Abc Def"},
    {"lengths_and_slices_count_code_points", "{{ 'héllo 🌍' | length }} {{ 'héllo 🌍'[-1] }} {{ 'héllo 🌍'[1:4] }} {{ '🌍é'[::-1] }}",
     "{}",
     "7 🌍 éll é🌍"},
    {"case_tests", "{{ 'ÉA'.isupper() }}{{ 'éa'.islower() }}{{ 'Éa'.isupper() }}{{ '中文'.isupper() }}{{ 'É' is upper }}",
     "{}",
     "TrueTrueFalseFalseTrue"},
};

TEST(Jinja, Unicode) {
  for (const Case& c : kUnicode) check(c);
}

const Case kPythonQuirks[] = {
    {"dict_views_print_as_python_does", "{{ d.keys() }} {{ d.values() }} {{ d.items() }} {{ d.items() | list }}",
     "{\"d\": {\"a\": 1}}",
     "dict_keys(['a']) dict_values([1]) dict_items([('a', 1)]) [('a', 1)]"},
    {"odd_even_on_floats", "{{ 1.5 is even }}{{ 3.0 is odd }}{{ 4 is even }}",
     "{}",
     "FalseTrueTrue"},
    {"undefined_is_a_sequence_and_iterable", "{{ nope is sequence }}{{ nope is iterable }}{{ nope is mapping }}",
     "{}",
     "TrueTrueFalse"},
    {"wordcount_counts_word_characters", "{{ '[] a_b, c-d ü' | wordcount }} {{ xs | wordcount }}",
     "{\"xs\": [1, 2]}",
     "4 2"},
    {"generators_are_true_and_lazy", "{{ (xs | select('odd')) is defined }}{% if xs | selectattr('x') %}T{% endif %}{{ xs | map('string') | join('-') }}",
     "{\"xs\": [1, 2]}",
     "TrueT1-2"},
    {"none_and_bools_print_as_python", "{{ none }} {{ true }} {{ [none, false] }} {{ {'k': none} }} {{ none | string | length }}",
     "{}",
     "None True [None, False] {'k': None} 4"},
    {"python_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\t'] }}",
     "{}",
     "[\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\t']"},
    {"loop_over_items_filter", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}{% for k, v in d | dictsort(reverse=true) %}{{ k }}{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "b1a2ba"},
};

TEST(Jinja, PythonQuirks) {
  for (const Case& c : kPythonQuirks) check(c);
}


// ---- errors ----

TEST(JinjaErrors, SyntaxErrorsCarryLineAndColumn) {
  try {
    JinjaTemplate("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}");
    FAIL() << "no error";
  } catch (const JinjaError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.column(), 10);
    EXPECT_NE(std::string(e.what()).find("line 3, column 10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(JinjaTemplate("{% if x %}no end"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{% for x in xs %}{% endif %}"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{{ 'unterminated }}"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{# unterminated comment"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{% break %}"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{% include 'x' %}"), JinjaError);
  EXPECT_THROW(JinjaTemplate("{{ (1 }}"), JinjaError);
}

TEST(JinjaErrors, UnknownFilterOrTestIsACompileError) {
  try {
    JinjaTemplate("ok\n  {{ x | frobnicate }}");
    FAIL() << "no error";
  } catch (const JinjaError& e) {
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.column(), 10);
    EXPECT_EQ(e.detail(), "No filter named 'frobnicate'.");
  }
  EXPECT_THROW(JinjaTemplate("{{ x is frobnicated }}"), JinjaError);
  // Inside `if` statements and conditional expressions (Jinja2's soft frames) only evaluating it is an error...
  EXPECT_EQ(render("{% if false %}{{ x | frobnicate }}{% endif %}{{ 1 if true else x | nope }}"), "1");
  EXPECT_THROW(render("{% if true %}{{ x | frobnicate }}{% endif %}"), JinjaError);
  // ...but a loop or macro inside the `if` is a new frame again.
  EXPECT_THROW(JinjaTemplate("{% if false %}{% for x in y %}{{ x | nope }}{% endfor %}{% endif %}"), JinjaError);
  // An error is a UsageError (exit code 2) for the caller.
  EXPECT_THROW(JinjaTemplate("{{ x | nope }}"), UsageError);
}

TEST(JinjaErrors, RaiseExceptionCarriesTheMessage) {
  try {
    render("{% for m in messages %}{% if m.role == 'tool' %}\n{{ raise_exception('Bad role: ' ~ m.role) }}{% endif %}{% endfor %}",
           R"({"messages": [{"role": "user"}, {"role": "tool"}]})");
    FAIL() << "no error";
  } catch (const JinjaRaisedError& e) {
    EXPECT_STREQ(e.what(), "Bad role: tool");
    EXPECT_EQ(e.line(), 2);
  }
}

TEST(JinjaErrors, UndefinedBehavesLikeJinja2) {
  // Printing, iterating, testing and defaulting an undefined value are fine...
  EXPECT_EQ(render("[{{ nope }}][{% for x in nope %}x{% endfor %}][{{ nope is defined }}][{{ nope | default(1) }}]"),
            "[][][False][1]");
  EXPECT_EQ(render("{{ m.missing }}|{{ m.missing is defined }}", R"({"m": {}})"), "|False");
  // ...but attributes of it, arithmetic on it and calling it are errors.
  EXPECT_THROW(render("{{ nope.attr }}"), JinjaError);
  EXPECT_THROW(render("{{ m.missing.attr }}", R"({"m": {}})"), JinjaError);
  EXPECT_THROW(render("{{ nope + 1 }}"), JinjaError);
  EXPECT_THROW(render("{{ nope() }}"), JinjaError);
  EXPECT_THROW(render("{{ nope | tojson }}"), JinjaError);
  EXPECT_THROW(render("{{ nope | int }}"), JinjaError);  // int(Undefined) raises
  EXPECT_THROW(render("{{ d.items() | tojson }}", R"({"d": {}})"), JinjaError);  // dict views are not JSON
  EXPECT_THROW(render("{{ 5 | indent }}"), JinjaError);  // indent appends to the value itself
  try {
    render("{{ m.content.x }}", R"({"m": {}})");
    FAIL() << "no error";
  } catch (const JinjaError& e) {
    EXPECT_EQ(e.detail(), "'dict object' has no attribute 'content'");
  }
}

TEST(JinjaErrors, TypeErrorsAndSandbox) {
  EXPECT_THROW(render("{{ 1 + 'a' }}"), JinjaError);
  EXPECT_THROW(render("{{ 1 / 0 }}"), JinjaError);
  EXPECT_THROW(render("{{ 'a' < 1 }}"), JinjaError);
  EXPECT_THROW(render("{% for x in none %}{% endfor %}"), JinjaError);
  EXPECT_THROW(render("{{ [].append(1) }}"), JinjaError);       // the immutable sandbox
  EXPECT_THROW(render("{{ ''.__class__() }}"), JinjaError);     // underscore attributes are unsafe
  EXPECT_THROW(render("{% set x = 1 %}{% set x.a = 2 %}"), JinjaError);
  EXPECT_THROW(render("{% set ns = namespace() %}{% set ns._a = 2 %}"), JinjaError);
  EXPECT_THROW(render("{% for x in [1] %}{% set loop.x = 2 %}{% endfor %}"), JinjaError);  // loop is no namespace
  // A reference cycle through a namespace renders (and is broken when the render ends; the fuzz target checks leaks).
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{{ ns.me[0].me[0].a }}"), "1");
  EXPECT_THROW(render("{{ range(200000) | length }}"), JinjaError);  // MAX_RANGE
  EXPECT_THROW(render("{{ 9223372036854775807 + 1 }}"), JinjaError);
  EXPECT_THROW(render("{{ d[1:] }}", R"({"d": {"a": 1}})"), JinjaError);  // slices are Python's subscript
  EXPECT_THROW(render("{{ n[:1] }}", R"({"n": 5})"), JinjaError);
  // Filters that are Python generators fail only when their result is iterated.
  EXPECT_EQ(render("{{ (true | select) is defined }}{{ 1 | items is defined }}"), "TrueTrue");
  EXPECT_THROW(render("{{ true | select | list }}"), JinjaError);
  // `in` an undefined value is false (it iterates as empty).
  EXPECT_EQ(render("{{ 'a' in nope }}{{ 'a' is in nope }}"), "FalseFalse");
}

// ---- generation blocks ----

TEST(JinjaGeneration, ReportsByteRangesOfAssistantText) {
  JinjaTemplate t(
      "{% for m in messages %}{% if m.role == 'assistant' %}A: {% generation %}{{ m.content }}!{% endgeneration %}{{ '\\n' }}"
      "{% else %}U: {{ m.content }}\n{% endif %}{% endfor %}");
  auto vars = nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "user", "content": "hé"}, {"role": "assistant", "content": "ça"},
                       {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})");
  JinjaRender r = t.render(vars);
  EXPECT_EQ(r.text, "U: hé\nA: ça!\nU: x\nA: y!\n");
  ASSERT_EQ(r.generation_ranges.size(), 2u);
  EXPECT_EQ(r.text.substr(r.generation_ranges[0].first, r.generation_ranges[0].second - r.generation_ranges[0].first),
            "ça!");
  EXPECT_EQ(r.text.substr(r.generation_ranges[1].first, r.generation_ranges[1].second - r.generation_ranges[1].first),
            "y!");
  EXPECT_EQ(r.generation_ranges[0], (std::pair<size_t, size_t>(10, 14)));  // bytes: "U: hé\n" is 7, "A: " is 3
}

// ---- strftime_now and the limits ----

TEST(JinjaRuntime, StrftimeNowUsesTheInjectedTime) {
  setenv("TZ", "UTC", 1);
  tzset();
  JinjaOptions options;
  options.now = 1721995200;  // 2024-07-26 12:00:00 UTC
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y %H:%M') }}", "{}", options), "26 Jul 2024 12:00");
}

TEST(JinjaRuntime, LimitsStopRunawayTemplates) {
  JinjaOptions options;
  options.max_output_bytes = 1000;
  EXPECT_THROW(render("{% for i in range(100) %}{{ 'x' * 20 }}{% endfor %}", "{}", options), JinjaError);
  EXPECT_THROW(render("{{ 'x' * 5000 }}", "{}", options), JinjaError);
  EXPECT_EQ(render("[{{ '' * 177777777700 }}{{ [] * 177777777700 }}]"), "[[]]");  // found by the fuzzer: no spin
  // Printing or serialising many references to one long string is refused before it allocates gigabytes.
  EXPECT_THROW(render("{% set s = 'x' * 100000 %}{{ ([s] * 100000) | length }}{{ [s] * 100000 }}"), JinjaError);
  EXPECT_THROW(render("{% set s = 'x' * 100000 %}{{ ([1] * 100000) | tojson(indent=s) }}"), JinjaError);
  EXPECT_THROW(render("{{ 'a\nb' | indent(100000000000) }}"), JinjaError);
  EXPECT_THROW(render("{% set ns = namespace(s='ab') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                      "{}", options),
               JinjaError);
  JinjaOptions loops;
  loops.max_loop_iterations = 1000;
  EXPECT_THROW(render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "{}", loops),
               JinjaError);
  JinjaOptions work;
  work.max_work_bytes = 100000;
  EXPECT_THROW(render("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
                      "{}", work),
               JinjaError);
  EXPECT_THROW(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), JinjaError);
  std::string deep(300, '(');
  EXPECT_THROW(JinjaTemplate("{{ " + deep + "1" + std::string(300, ')') + " }}"), JinjaError);
}

}  // namespace
}  // namespace aligntrain::data
