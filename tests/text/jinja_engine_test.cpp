// The Jinja engine construct by construct, each case compared byte for byte with Python Jinja2
// configured as transformers configures it (tests/text/render_reference.py).
#include <gtest/gtest.h>

#include "text/jinja_test_util.h"

namespace hearth::test {
namespace {

struct Cases {
  Json list = Json::array();
  Cases& add(const std::string& tmpl, Json context = Json::object()) {
    list.push_back(Json{{"template", tmpl}, {"context", std::move(context)}});
    return *this;
  }
};

const Json kMessages = Json::parse(R"([
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hi\nthere ", "name": "bob"},
  {"role": "assistant", "content": "Hello! é 日本 🙂", "tool_calls": [
     {"type": "function", "function": {"name": "f", "arguments": {"b": 2, "a": [1, 2.5, null, true]}}}]}
])");

TEST(JinjaEngine, Whitespace) {
  Cases c;
  c.add("a\n  {% if true %}\n  x\n  {% endif %}\n  b\n");
  c.add("  {%- if true %}x{% endif %}");
  c.add("  {%+ if true %}x{% endif %}\n");
  c.add("{% if true +%}\nx{% endif %}");
  c.add("a {# c #}\nb\n  {# c2 #}  \nd");
  c.add("{{ 'x' -}}   \n  y");
  c.add("x  {{- 1 }} {{ 2 -}} \n\n y");
  c.add("{% raw %}\n{{ x }}{% endraw %}\nz");
  c.add("a\n  {%- raw -%}  {% if %} \n {%- endraw %}\nb");
  c.add("{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n");
  c.add("{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}");
  c.add("line1\r\nline2\r{% if true %}\r\nx{% endif %}\n\n");
  c.add("\t{% set x = 1 %}\t\n{{ x }}");
  c.add("{{ 1 }}  {% if true %}x{% endif %}");
  c.add("{#- comment -#}  \n  a  {#+ c +#}\nb");
  c.add("{% if true %}{% endif %}\n\n{% if true %}\n{% endif %}  \nend");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Literals) {
  Cases c;
  c.add(
      "{{ 1.0 }}|{{ 1e16 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}|{{ 1.5e300 * 1e10 }}|{{ -0.0 }}|{{ 2.5E3 "
      "}}");
  c.add("{{ 123 }}|{{ 1_000 }}|{{ 0x1F }}|{{ 0o17 }}|{{ 0b101 }}|{{ -7 }}");
  c.add(R"({{ "a\tb\\c\x41\u00e9\U0001F600\'q\"" }}|{{ 'it''s' }}|{{ "a" "b" 'c' }})");
  c.add(R"({{ "\d\q" }}|{{ '\101' }})");
  c.add("{{ [1, 'a', none, true, false, 1.5, [2], {'k': 'v'}] }}");
  c.add("{{ (1,) }}{{ () }}{{ (1, 2) }}{{ {} }}{{ [] }}{{ {1: 2, 'a': none, (1, 2): 3} }}");
  c.add("{{ none }}|{{ None }}|{{ true }}|{{ True }}|{{ False }}|{{ undefined_thing }}|");
  c.add("{{ ['it\\'s', 'a\"b', 'x\\'y\"z', '\\n\\t\\x00\\x7f', 'é', '\u00a0', '\u2028'] }}");
  c.add("{{ {'a': 1, 'b': {'c': [1, {'d': none}]}} }}");
  c.add("{{ x }}",
        Json{{"x", Json::parse(R"({"z": 1, "a": [1.0, 2.50, -3e-7, 12345678901234567890.0]})")}});
  c.add("{{ 1, 2 }}|{{ (1, 2)|length }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Operators) {
  Cases c;
  c.add(
      "{{ 3/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ 7.5//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 % "
      "2 }}");
  c.add("{{ 2**-1 }} {{ 2**10 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2.0 ** 0.5 }}");
  c.add(
      "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ 3 * [1] }} {{ [1] + [2] }} {{ 'a' + "
      "'b' }}");
  c.add("{{ 1 ~ 2 ~ 'x' ~ none ~ undefined_var }} {{ 2 * 3 ~ 4 }}");
  c.add(
      "{{ true + 1 }} {{ true * 3 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1] == "
      "[1.0] }}");
  c.add(
      "{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 1 <= 1 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 2 != 2 }}");
  c.add(
      "{{ 1 in [1] }}{{ 1 not in [1] }}{{ not 1 in [1] }}{{ 'a' in 'abc' }}{{ 'k' in {'k': 1} }}{{ "
      "3 in {} }}");
  c.add("{{ none and 1 }}|{{ 0 or 'x' }}|{{ 1 and 2 }}|{{ '' or [] }}|{{ not none }}|{{ not [] }}");
  c.add(
      "{{ 1 if true else 2 }}{{ 1 if false else 2 }}|{{ 1 if false }}|{{ (1 if false) is defined "
      "}}");
  c.add("{{ 'a' if x is defined and x else 'b' if y is defined else 'c' }}", Json{{"y", 1}});
  c.add("{{ -x }}{{ +x }}{{ - -x }}{{ -1.5 }}", Json{{"x", 3}});
  c.add("{{ 'a' + 1 }}");
  c.add("{{ 1 / 0 }}");
  c.add("{{ 1 < 'a' }}");
  c.add("{{ x + 1 }}");
  c.add("{{ 'x' in 1 }}");
  c.add(
      "{{ '%s-%d' % ('a', 3) }}|{{ '%05.2f|%x|%r' % (3.14159, 255, 'q') }}|{{ '%(a)s' % {'a': 1} "
      "}}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, AttributesAndSubscripts) {
  Cases c;
  Json ctx{{"messages", kMessages},
           {"d", Json::parse(R"({"items": 1, "keys": [1], "x": {"y": [5, 6]}})")}};
  c.add(
      "{{ messages[0].content }}|{{ messages[0]['role'] }}|{{ "
      "messages[-1].tool_calls[0].function.name }}",
      ctx);
  c.add(
      "{{ messages[1].missing }}|{{ messages[1].missing is defined }}|{{ messages[5] is defined }}",
      ctx);
  c.add("{{ messages[1].missing.deeper }}", ctx);
  c.add("{{ nothing.attr }}", ctx);
  c.add("{{ nothing['x'] }}", ctx);
  c.add("{{ d['items'] }}|{{ d.x.y.0 }}|{{ d.x.y[-1] }}|{{ d['keys'] }}|{{ d.get('x').y }}", ctx);
  c.add("{{ none.foo }}|{{ 1.5.foo }}|{{ 'str'.foo }}|{{ [1][1.5] }}", ctx);
  c.add(
      "{{ messages[::-1]|map(attribute='role')|join(',') }}|{{ messages[1:]|length }}|{{ "
      "messages[:-1][0].role }}",
      ctx);
  c.add(
      "{{ 'hello'[1:3] }}{{ 'hello'[::-1] }}{{ 'hello'[-2:] }}{{ 'héllo'[1] }}{{ 'héllo'|length "
      "}}{{ 'abcdef'[::2] }}");
  c.add(
      "{{ [1,2,3,4,5][1:4:2] }}{{ [1,2,3][5:] }}{{ [1,2,3][-10:2] }}{{ (1,2,3)[1:] }}{{ "
      "[1,2,3][::-2] }}");
  c.add("{{ 'x'[5] }}|{{ [1][3] }}|{{ {}['a'] }}|{{ d[none] }}", ctx);
  c.add("{{ [1][::0] }}");
  c.add("{{ (d|items)[1:] }}", ctx);
  c.add("{{ d[1:] }}", ctx);
  c.add("{{ nothing[1:] }}", Json{{"nothing", nullptr}});
  c.add(
      "{{ range(10)[2:8:2] }}|{{ range(10)[::-1] }}|{{ range(10)[-3:] | list }}|{{ range(5)[1] "
      "}}|{{ range(5)[9] }}|{{ range(3)|length }}");
  c.add("{{ d.update }}", ctx);
  c.add("{{ messages.append }}", ctx);
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, ForLoops) {
  Cases c;
  Json ctx{{"messages", kMessages}};
  c.add(
      "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ "
      "loop.revindex0 }}"
      "{{ loop.first }}{{ loop.last }}{{ loop.length }}:{{ m.role }};{% endfor %}",
      ctx);
  c.add(
      "{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }}|{% "
      "endfor %}");
  c.add(
      "{% for x in [1,2,3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ x }}{% else %}E{% "
      "endfor %}");
  c.add("{% for x in [] %}x{% else %}E{{ x }}{% endfor %}");
  c.add("{% for x in [1,2,3] if x > 5 %}x{% else %}none{% endfor %}");
  c.add("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}");
  c.add(
      "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}{% for ch in 'héj' %}[{{ ch }}]{% endfor "
      "%}");
  c.add(
      "{% for a, b in [[1,2],[3,4]] %}{{ a }}{{ b }}{% endfor %}{% for (a, b) in [(1, 2)] %}{{ b "
      "}}{% endfor %}");
  c.add("{% for a, b in [[1,2,3]] %}{% endfor %}");
  c.add(
      "{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break "
      "%}{% endif %}{{ x }}{% endfor %}");
  c.add(
      "{% for x in [1,2] %}{% for y in 'ab' %}{{ loop.index }}{{ x }}{{ y }}{{ loop.depth }} {% "
      "endfor %}{{ loop.last }}{% endfor %}");
  c.add("{% for x in none %}{% endfor %}");
  c.add("{% for x in 5 %}{% endfor %}");
  c.add("{% for x in undefined_var %}x{% else %}empty{% endfor %}");
  c.add("{% for x in [1,2] %}{{ loop }}{% endfor %}{{ loop is defined }}");
  c.add("{% for x in [1,1,2] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}");
  c.add(
      "{% for x in range(3) %}{{ x }}{% endfor %}{{ range(2, 10, 3)|list }}{{ range(5, 0, -2)|list "
      "}}{{ range(3) }}");
  c.add("{% for i in range(100001) %}{% endfor %}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Scoping) {
  Cases c;
  c.add(
      "{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }},{% endfor %}{{ x "
      "}}");
  c.add(
      "{% set x = 5 %}{% for i in range(3) %}{% if i == 1 %}{% set x = 9 %}{% endif %}{{ x }},{% "
      "endfor %}{{ x }}");
  c.add("{% for i in range(3) %}{% if i == 1 %}{% set y = 9 %}{% endif %}{{ y }},{% endfor %}");
  c.add("{% if true %}{% set z = 3 %}{% endif %}{{ z }}");
  c.add(
      "{% set ns = namespace(found=false, n=0) %}{% for i in range(3) %}{% set ns.found = true %}"
      "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.found }}{{ ns.n }}{{ ns }}{{ ns['n'] }}");
  c.add("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns.c }}");
  c.add(
      "{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, 1] %}{{ ns }}|{{ "
      "ns.me.me.l[1] }}");
  c.add("{% set x = 1 %}{% set x.y = 2 %}");
  c.add("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, %}{{ c }}{% set (d, e) = 'xy' %}{{ e }}");
  c.add("{% set x %}{% set inner = 3 %}block {{ 1 + 1 }}{% endset %}[{{ x }}]{{ inner }}");
  c.add("{% set x | upper | replace('B', 'b') %}abc{% endset %}{{ x }}");
  c.add("{% with a = 1, b = 2 %}{{ a }}{{ b }}{% endwith %}{{ a }}");
  c.add("{% set a = 5 %}{% with a = 1, b = a %}{{ a }}{{ b }}{% endwith %}");
  c.add("{% filter upper %}{% set w = 3 %}abc {{ 'd' }}{% endfilter %}{{ w }}");
  c.add("{% filter trim|replace('a', 'b') %}  aaa  {% endfilter %}");
  c.add("{% generation %}{% set y = 1 %}A{% endgeneration %}[{{ y }}]");
  c.add("{% set messages = [1] %}{{ messages }}", Json{{"messages", kMessages}});
  c.add("{% set range = 3 %}{{ range }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Macros) {
  Cases c;
  c.add(
      "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, "
      "x=4) }}{{ m(1) }}");
  c.add("{% macro m(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ m(1, 2, 3) }}");
  c.add("{% macro m(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ m(1, c=3) }}");
  c.add(
      "{% macro m(a, b=a) %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m() }}{{ m(b=5) }}{{ m(a=7) "
      "}}");
  c.add("{% macro m() %}<{{ caller(1) }}>{% endmacro %}{% call(x) m() %}got{{ x }}{% endcall %}");
  c.add("{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}{% call m() %}x{% endcall %}");
  c.add("{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}");
  c.add("{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}");
  c.add(
      "{% set x = 1 %}{% for i in [1] %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 3 %}{{ m() "
      "}}{% endfor %}");
  c.add(
      "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% "
      "endmacro %}{{ fact(5) }}");
  c.add(
      "{% macro m(x) %}{{ x|tojson }}{% endmacro %}{{ m({'a': [1]}) }}{{ m }}{{ m.name }}{{ "
      "m.arguments }}");
  c.add(
      "{% macro outer() %}{% macro inner() %}i{{ varargs }}{% endmacro %}{{ inner(1) }}{% endmacro "
      "%}{{ outer() }}");
  c.add(
      "{% macro m(a) %}{% set a = a ~ '!' %}{{ a }}{% endmacro %}{{ m('x') }}{{ m(*['y']) }}{{ "
      "m(**{'a': 'z'}) }}");
  c.add("{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, StringFilters) {
  Cases c;
  c.add(
      "{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'aBc'|upper }}{{ 'AbC'|lower }}|{{ "
      "'hello-world(foo bar'|title }}"
      "|{{ \"it's mE\"|title }}|{{ 'hELLO wORLD'|capitalize }}");
  c.add(
      "{{ 'aaa'|replace('a', 'b') }}{{ 'aaa'|replace('a', 'b', 2) }}{{ 'abc'|replace('', '-') }}");
  c.add("{{ 'a'|center(5) }}|{{ 'ab'|center(5) }}|{{ 'abc'|center(6) }}|{{ 'abc'|center }}|");
  c.add(
      "{{ '  x\ny\n\nz'|indent(2) }}|{{ 'x\ny'|indent(2, true) }}|{{ 'x\n\ny'|indent('--', "
      "blank=true) }}|{{ 'x\n'|indent }}");
  c.add(
      "{{ 'hello world foo'|truncate(9) }}|{{ 'hello world foo'|truncate(9, true) }}|{{ "
      "'hello'|truncate(3, leeway=0) }}");
  c.add(
      "{{ 'héllo wörld 12, x_y'|wordcount }}|{{ '<&>\"\\''|e }}|{{ '<a>'|escape }}|{{ '<b>'|safe "
      "}}|{{ 3|safe }}");
  c.add(
      "{{ '<p>a  <b>b</b>\n c</p> &amp; d'|striptags }}|{{ '%s and %s'|format(1, 2) }}|{{ "
      "'%(a)s'|format(a=3) }}");
  c.add(
      "{{ 12|string ~ 'x' }}|{{ [1, 'a']|string }}|{{ none|string }}|{{ undefined_var|string }}|");
  c.add(
      "{{ 'abc'|reverse }}|{{ 'abc'|first }}{{ 'abc'|last }}|{{ 'héllo'|list }}|{{ 'ß'|upper }}|{{ "
      "'ÉCOLE'|lower }}");
  c.add("{{ x|trim }}|{{ x|length }}", Json{{"x", "\u3000 wide space\u00a0 "}});
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, SequenceFilters) {
  Cases c;
  Json ctx{
      {"messages", kMessages},
      {"users",
       Json::parse(
           R"([{"name": "b", "age": 3}, {"name": "A", "age": 1}, {"name": "a", "age": 2, "x": {"y": 1}}])")}};
  c.add(
      "{{ messages|length }}{{ messages|count }}{{ messages|first }}{{ messages|last }}{{ []|first "
      "}}|{{ {'a': 1}|first }}",
      ctx);
  c.add(
      "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ "
      "messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|join('/') }}",
      ctx);
  c.add(
      "{{ messages|selectattr('name')|list }}|{{ messages|selectattr('name', "
      "'defined')|map(attribute='name')|first }}",
      ctx);
  c.add(
      "{{ (messages|selectattr('role', 'eq', 'nobody')) is true }}{% if "
      "messages|selectattr('role', 'eq', 'nobody') %}T{% endif %}",
      ctx);
  c.add(
      "{{ [1, 2, 3, 4]|select('odd')|list }}{{ [1, 2, 3, 4]|reject('even')|list }}{{ [0, 1, '', "
      "'a']|select|list }}"
      "{{ [1, 2, 5]|select('>', 1)|list }}{{ [1, 2, 5]|select('in', [2, 5])|list }}");
  c.add(
      "{{ users|map(attribute='name')|list }}{{ users|map(attribute='x.y', default=0)|list }}{{ "
      "[[1, 2]]|map(attribute='1')|list }}"
      "{{ ['a', 'b']|map('upper')|list }}{{ [1, 2]|map('string')|join(',') }}",
      ctx);
  c.add(
      "{{ users|sort(attribute='name')|map(attribute='name')|join }}|{{ "
      "users|sort(attribute='name', case_sensitive=true)|map(attribute='name')|join }}"
      "|{{ users|sort(attribute='age', reverse=true)|map(attribute='age')|join }}|{{ [3, 1, "
      "2]|sort }}|{{ ['b', 'A', 'a']|sort }}",
      ctx);
  c.add("{{ users|sort(attribute='age,name')|map(attribute='name')|join }}", ctx);
  c.add(
      "{{ ['b', 'A', 'a', 'B']|unique|list }}{{ ['b', 'A', 'a']|unique(true)|list }}{{ "
      "users|unique(attribute='name')|map(attribute='age')|list }}",
      ctx);
  c.add(
      "{{ [3, 1]|max }}{{ [3, 1]|min }}{{ []|max }}|{{ ['b', 'A']|max }}{{ ['b', "
      "'A']|max(case_sensitive=true) }}{{ users|max(attribute='age') }}",
      ctx);
  c.add(
      "{{ [1, 2, 3]|sum }}{{ [[1], [2]]|sum(start=[]) }}{{ [1.5]|sum }}{{ "
      "users|sum(attribute='age') }}",
      ctx);
  c.add(
      "{{ {'b': 1, 'A': 2, 'a': 0}|dictsort }}{{ {'b': 1, 'A': 2}|dictsort(true) }}{{ {'b': 1, "
      "'a': 2}|dictsort(by='value', reverse=true) }}");
  c.add(
      "{{ {'a': 1}|items|list }}{{ undefined_var|items|list }}{% if {}|items %}T{% endif %}{{ "
      "{'k': 'v'}.items()|list }}{{ {'a': 1}.keys()|list }}");
  c.add(
      "{{ [1, 2]|reverse|list }}{{ ({'a': 1, 'b': 2}|reverse|list) }}{{ ([1, 2]|reverse) is "
      "sequence }}");
  c.add("{{ [1, 2]|reverse|length }}");
  c.add(
      "{{ range(5)|batch(2)|list }}{{ range(5)|batch(2, 0)|list }}{{ range(5)|slice(2)|list }}{{ "
      "range(5)|slice(3, 'x')|list }}");
  c.add("{{ [1, 'a']|join }}|{{ [1, 'a']|join(', ') }}|{{ users|join(',', attribute='name') }}",
        ctx);
  c.add(
      "{{ (messages|map(attribute='role'))|list }}{% set g = [1, 2]|map('string') %}{{ g|list }}{{ "
      "g|list }}",
      ctx);
  c.add("{{ [1, 2]|list|length }}{{ messages|list|last|attr('role') }}{{ {'a': 1}|attr('a') }}",
        ctx);
  c.add("{{ messages|selectattr('x.y')|list }}", ctx);
  c.add("{{ 1|length }}");
  c.add(
      "{{ [none, none]|sort }}|{{ [undefined_a, undefined_b]|sort }}|{{ [[2, none], [1, "
      "none]]|sort }}");
  c.add("{{ [1, 'a']|sort }}");
  c.add("{{ [{'a': 1}, {'a': 1}]|unique|list }}");
  c.add("{{ [[1], [1]]|unique(attribute='0')|list }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, NumberFilters) {
  Cases c;
  c.add(
      "{{ 2.5|round }}{{ 3.5|round }}{{ 2.675|round(2) }}{{ 3|round }}{{ -2.5|round }}{{ "
      "2.5|round(0, 'floor') }}"
      "{{ 2.1|round(0, 'ceil') }}{{ 1234|round(-2) }}{{ 0.125|round(2) }}");
  c.add(
      "{{ 10|int }}{{ '12'|int }}{{ '1.9'|int }}{{ 'x'|int }}{{ '0x1f'|int(0, 16) }}{{ 3.9|int "
      "}}{{ '3'|float }}"
      "{{ none|int }}{{ 'x'|float(1.5) }}{{ ' 42 '|int }}{{ '1_000'|int }}{{ true|int }}{{ "
      "'-7'|int }}{{ 'nan'|float }}");
  c.add("{{ -3|abs }}{{ -1.5|abs }}{{ 5|float }}{{ 1e18|int }}");
  c.add("{{ 'a'|abs }}");
  c.add("{{ x|int }}{{ x|float }}", Json{{"x", "2.5e3"}});
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, ToJson) {
  Cases c;
  Json ctx{
      {"messages", kMessages},
      {"tool",
       Json::parse(
           R"({"type": "function", "function": {"name": "get_weather", "description": "Get \"weather\" <now> & é",
             "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["a", "b"]}}, "required": ["city"]}}})")}};
  c.add("{{ tool|tojson }}", ctx);
  c.add("{{ tool|tojson(indent=4) }}", ctx);
  c.add("{{ tool|tojson(indent=2, sort_keys=true) }}", ctx);
  c.add(
      "{{ tool|tojson(separators=(',', ':')) }}|{{ tool.function.parameters|tojson(indent='\\t') "
      "}}",
      ctx);
  c.add("{{ messages|tojson }}|{{ messages[2].tool_calls[0].function.arguments|tojson }}", ctx);
  c.add(
      "{{ 'é\\n\"\\u2028\\x01'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ "
      "'🙂'|tojson(true) }}");
  c.add(
      "{{ [1.0, 1e20, -0.0, none, true, (1, 2)]|tojson }}{{ {}|tojson(indent=2) }}{{ "
      "[]|tojson(indent=2) }}{{ {1: 2, none: 3}|tojson }}");
  c.add("{{ [[], {}, [[]]]|tojson(indent=0) }}");
  c.add("{{ undefined_var|tojson }}");
  c.add("{{ namespace(a=1)|tojson }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Tests) {
  Cases c;
  c.add(
      "{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.0 is integer }}{{ 1.0 is "
      "float }}{{ none is none }}"
      "{{ 'a' is string }}{{ 'a' is iterable }}{{ {} is sequence }}{{ 1 is sequence }}{{ {} is "
      "mapping }}{{ [] is mapping }}");
  c.add(
      "{{ u is sequence }}{{ u is iterable }}{{ u is callable }}{{ u is mapping }}{{ u is defined "
      "}}{{ u is undefined }}");
  c.add(
      "{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false "
      "}}{{ 0 is false }}");
  c.add(
      "{{ 3 is odd }}{{ 3 is even }}{{ 4 is divisibleby 2 }}{{ 4 is divisibleby(3) }}{{ -3 is odd "
      "}}");
  c.add(
      "{{ 'a' is eq 'a' }}{{ 'a' is equalto 'b' }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is ge 2 }}{{ "
      "1 is in [1] }}"
      "{{ 3 is greaterthan 2 }}{{ 'a' is == 'a' }}{{ 1 is != 1 }}");
  c.add(
      "{{ 'abc' is lower }}{{ 'aBc' is lower }}{{ 'ABC' is upper }}{{ range is callable }}{{ 'x' "
      "is callable }}"
      "{{ 'upper' is filter }}{{ 'odd' is test }}{{ none is sameas none }}{{ 1 is not none }}");
  c.add("{% set m = [] %}{{ m is sameas m }}{{ {'a': 1}.get is callable }}{{ x is string }}",
        Json{{"x", "s"}});
  c.add("{{ 5 is divisibleby 0 }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, StringMethods) {
  Cases c;
  c.add(
      "{{ '  a  '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}|{{ ' \\n a "
      "\\t'.strip() }}|{{ 'a'.strip(none) }}");
  c.add(
      "{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b "
      "c'.rsplit(' ', 1) }}{{ ''.split() }}"
      "{{ 'a\\nb\\r\\nc\\n'.splitlines() }}{{ 'a\\nb'.splitlines(true) }}{{ '  a b  '.rsplit(none, "
      "1) }}");
  c.add(
      "{{ 'abc'.startswith('ab') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ "
      "'abc'.startswith('b', 1) }}");
  c.add(
      "{{ 'aBc'.upper() }}{{ 'aBc'.lower() }}{{ \"they're bill's\".title() }}{{ 'hello "
      "World'.capitalize() }}{{ 'aB'.swapcase() }}");
  c.add(
      "{{ 'aaa'.replace('a', 'b', 2) }}{{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ "
      "'héllo'.find('l') }}{{ 'abc'.find('z') }}"
      "{{ 'abcabc'.count('bc') }}{{ 'abc'.index('c') }}{{ 'abc'.find('c', 1, 2) }}");
  c.add(
      "{{ ', '.join(['a', 'b']) }}{{ ''.join('xyz') }}{{ '{} and {}'.format(1, 'x') }}{{ "
      "'{0}{1}{0}'.format('a', 'b') }}"
      "{{ '{name}!'.format(name='n') }}{{ "
      "'{:>5}|{:<4}|{:^6}|{:.2f}|{:,}|{!r}|{:08.3f}|{:x}'.format(1, 2, 3, 4.5678, 1234567, 's', "
      "3.14159, 255) }}");
  c.add(
      "{{ 'abc'.center(7, '*') }}{{ 'ab'.ljust(4, '.') }}{{ 'ab'.rjust(4) }}{{ '42'.zfill(5) }}{{ "
      "'-4'.zfill(4) }}");
  c.add(
      "{{ 'a=b=c'.partition('=') }}{{ 'a=b=c'.rpartition('=') }}{{ 'abc'.partition('x') }}{{ "
      "'prefix_x'.removeprefix('prefix_') }}{{ 'x.py'.removesuffix('.py') }}");
  c.add(
      "{{ '123'.isdigit() }}{{ 'a1'.isalnum() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ "
      "''.isspace() }}{{ 'ab'.islower() }}{{ 'AB'.isupper() }}{{ 'A1'.isupper() }}");
  c.add("{{ ', '.join([1, 2]) }}");
  c.add("{{ 'abc'.index('z') }}");
  c.add("{{ 'a'.split('') }}");
  c.add("{{ 'a b'.split(sep=' ') }}{{ 'a\nb'.splitlines(keepends=true) }}{{ '{x}'.format(x=1) }}");
  c.add("{{ 'abc'.replace('a', 'x', count=1) }}");
  c.add("{{ ' a '.strip(chars=' ') }}");
  c.add("{{ {'a': 1}.get('a', default=2) }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, DictAndListMethods) {
  Cases c;
  Json ctx{{"d", Json::parse(R"({"a": 1, "b": [2, 3]})")}};
  c.add(
      "{{ d.items() }}|{{ d.keys() }}|{{ d.values() }}|{{ d.get('a') }}{{ d.get('z') }}{{ "
      "d.get('z', 5) }}|{{ 'a' in d.keys() }}"
      "|{{ d.items()|length }}|{{ d.items()|list|last }}|{{ d.copy() }}",
      ctx);
  c.add("{{ d.b.index(3) }}{{ d.b.count(2) }}{{ (1, 2).index(2) }}{{ d.b.copy() }}", ctx);
  c.add("{{ d.b.index(9) }}", ctx);
  c.add("{{ d.pop('a') }}", ctx);
  c.add("{{ d.b.append(4) }}", ctx);
  c.add("{{ dict(a=1, b=2) }}{{ dict({'x': 1}, y=2) }}{{ dict([('k', 'v')]) }}{{ dict() }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, Globals) {
  Cases c;
  c.add(
      "{% set cyc = cycler('a', 'b') %}{{ cyc.next() }}{{ cyc.next() }}{{ cyc.next() }}{{ "
      "cyc.current }}{% set j = joiner('|') %}"
      "{{ j() }}x{{ j() }}y{{ j() }}");
  c.add(
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') "
      "}}");
  c.add("before{% if true %}{{ raise_exception('bad ' ~ 1) }}{% endif %}");
  c.add("{{ strftime_now('%Y') | length }}");
  c.add("{{ range(1, 2, 0) }}");
  c.add("{{ undefined_function() }}");
  c.add("{{ 'x'() }}");
  expect_same_as_reference(c.list);
}

TEST(JinjaEngine, SyntaxErrors) {
  Cases c;
  for (const char* bad : {"{% if true %}",
                          "{% for x in y %}{% endif %}",
                          "{{ x",
                          "{{ }}",
                          "{% foo %}",
                          "{% endfor %}",
                          "{{ 1 +* 2 }}",
                          "{% set x = [1, 2 %}",
                          "{% for %}",
                          "{{ a.b(1, c=2, 3) }}",
                          "hello {{ 'x' }",
                          "{% break %}",
                          "{{ x|nosuchfilter }}",
                          "{{ x is nosuchtest }}",
                          "{{ 'unterminated }}",
                          "{# open comment",
                          "{% raw %}never closed",
                          "{% macro %}{% endmacro %}",
                          "{{ x.1a }}",
                          "{% set 1 = 2 %}",
                          "{{ (1, }}",
                          "{{ [1, 2 }}",
                          "{{ {'a' 1} }}",
                          "{% if %}{% endif %}",
                          "{% include 'x' %}",
                          "{{ x | }}",
                          "{{ 1 if }}",
                          "{% else %}",
                          "{{ @ }}",
                          "{% call x %}{% endcall %}"}) {
    c.add(bad);
  }
  c.add("{% if false %}{{ x|nosuchfilter }}{% endif %}ok");
  c.add("{% if true %}{{ x|nosuchfilter }}{% endif %}ok");
  c.add("{{ x|nosuchfilter if false else 1 }}ok");
  c.add("{% if false %}{% for x in y %}{{ x|nosuchfilter }}{% endfor %}{% endif %}");
  expect_same_as_reference(c.list);
}

}  // namespace
}  // namespace hearth::test
