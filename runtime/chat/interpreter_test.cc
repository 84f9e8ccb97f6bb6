// The Jinja interpreter, by example. Every expected output below was produced
// by Python's Jinja2 3.1 set up as transformers sets it up
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// json.dumps-based tojson), so these double as a conformance suite.
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "nlohmann/json.hpp"
#include "runtime/chat/chat_template.h"

namespace dsrt::chat {
namespace {

// Renders `source` with the variables of a JSON object; a "messages" entry
// becomes the messages argument. Errors come back as "ERROR: <status>".
std::string Render(const std::string& source, const std::string& variables_json = "{}",
                   bool add_generation_prompt = false) {
  absl::StatusOr<std::unique_ptr<ChatTemplate>> tmpl = ChatTemplate::Parse(source);
  if (!tmpl.ok()) return "ERROR: " + tmpl.status().ToString();
  nlohmann::ordered_json variables = nlohmann::ordered_json::parse(variables_json, nullptr, false);
  if (variables.is_discarded()) return "ERROR: test variables are not valid JSON";
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (variables.contains("messages")) {
    messages = variables["messages"];
    variables.erase("messages");
  }
  absl::StatusOr<std::string> out = (*tmpl)->Render(messages, add_generation_prompt, variables);
  if (!out.ok()) return "ERROR: " + out.status().ToString();
  return *out;
}

absl::Status RenderStatus(const std::string& source, const std::string& variables_json = "{}") {
  absl::StatusOr<std::unique_ptr<ChatTemplate>> tmpl = ChatTemplate::Parse(source);
  if (!tmpl.ok()) return tmpl.status();
  const nlohmann::ordered_json variables = nlohmann::ordered_json::parse(variables_json);
  return (*tmpl)->Render(nlohmann::ordered_json::array(), false, variables).status();
}

// ---- examples checked against Jinja2 ----

TEST(JinjaWhitespace, TrimBlocksEatsNewlineAfterBlockTag) {
  EXPECT_EQ(Render(R"jinja({% if true %}
yes
{% endif %}
done)jinja"),
            "yes\ndone");
}

TEST(JinjaWhitespace, LstripBlocksEatsIndentBeforeBlockTag) {
  EXPECT_EQ(Render(R"jinja(<ul>
    {% for x in [1, 2] %}
    <li>{{ x }}</li>
    {% endfor %}
</ul>)jinja"),
            "<ul>\n    <li>1</li>\n    <li>2</li>\n</ul>");
}

TEST(JinjaWhitespace, MinusStripsAllWhitespaceOnThatSide) {
  EXPECT_EQ(Render("a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c"),
            "abc");
}

TEST(JinjaWhitespace, MinusOnExpressionTags) {
  EXPECT_EQ(Render(R"jinja(x   {{- 'y' -}}   z)jinja"),
            "xyz");
}

TEST(JinjaWhitespace, PlusDisablesLstrip) {
  EXPECT_EQ(Render(R"jinja(  {%+ if true %}kept indent{% endif %})jinja"),
            "  kept indent");
}

TEST(JinjaWhitespace, PlusDisablesTrimBlocks) {
  EXPECT_EQ(Render(R"jinja({% if true +%}
newline kept{% endif %})jinja"),
            "\nnewline kept");
}

TEST(JinjaWhitespace, ExpressionTagsAreNotLstripped) {
  EXPECT_EQ(Render(R"jinja(  {{ 'x' }}
)jinja"),
            "  x");
}

TEST(JinjaWhitespace, CommentsAreTrimmedLikeBlocks) {
  EXPECT_EQ(Render(R"jinja(a
  {# note #}
b{#- tight -#}   c)jinja"),
            "a\nbc");
}

TEST(JinjaWhitespace, OneTrailingNewlineIsDropped) {
  EXPECT_EQ(Render(R"jinja(text

)jinja"),
            "text\n");
}

TEST(JinjaWhitespace, CarriageReturnsBecomeNewlines) {
  EXPECT_EQ(Render("a\r\nb\rc"),
            "a\nb\nc");
}

TEST(JinjaWhitespace, RawBlockKeepsDelimiters) {
  EXPECT_EQ(Render(R"jinja({% raw %}{{ not evaluated }}{% endraw %})jinja"),
            "{{ not evaluated }}");
}

TEST(JinjaLoops, LoopVariables) {
  EXPECT_EQ(Render(R"jinja({% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}/{{ loop.length }};{% endfor %})jinja"),
            "103aF/3;212b/3;321cL/3;");
}

TEST(JinjaLoops, PrevNextItemAndCycle) {
  EXPECT_EQ(Render(R"jinja({% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {{ loop.cycle('odd', 'even') }}|{% endfor %})jinja"),
            "<1>2 odd|1<2>3 even|2<3> odd|");
}

TEST(JinjaLoops, BreakAndContinue) {
  EXPECT_EQ(Render(R"jinja({% for x in range(10) %}{% if x is even %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %})jinja"),
            "135");
}

TEST(JinjaLoops, ElseRunsWhenNothingIterated) {
  EXPECT_EQ(Render(R"jinja({% for x in [] %}{{ x }}{% else %}empty{% endfor %})jinja"),
            "empty");
}

TEST(JinjaLoops, FilterCondition) {
  EXPECT_EQ(Render(R"jinja({% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }} {% endfor %})jinja", R"json({"messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]})json"),
            "1:user 2:assistant ");
}

TEST(JinjaLoops, TupleUnpackingOverItems) {
  EXPECT_EQ(Render(R"jinja({% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %})jinja"),
            "b=1;a=2;");
}

TEST(JinjaLoops, IteratingADictGivesKeys) {
  EXPECT_EQ(Render(R"jinja({% for k in d %}{{ k }}{% endfor %})jinja", R"json({"d": {"x": 1, "y": 2}})json"),
            "xy");
}

TEST(JinjaLoops, IteratingAStringGivesCharacters) {
  EXPECT_EQ(Render(R"jinja({% for c in 'añ😀' %}[{{ c }}]{% endfor %})jinja"),
            "[a][ñ][😀]");
}

TEST(JinjaLoops, LoopScopeDoesNotLeak) {
  EXPECT_EQ(Render(R"jinja({% set x = 'outer' %}{% for i in [1] %}{% set x = 'inner' %}{{ x }} {% endfor %}{{ x }})jinja"),
            "inner outer");
}

TEST(JinjaLoops, IfDoesNotCreateAScope) {
  EXPECT_EQ(Render(R"jinja({% if true %}{% set x = 'set in if' %}{% endif %}{{ x }})jinja"),
            "set in if");
}

TEST(JinjaLoops, NestedLoopsEachHaveTheirLoop) {
  EXPECT_EQ(Render(R"jinja({% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }} {% endfor %})jinja"),
            "1x2y1 1x2y2 ");
}

TEST(JinjaNamespace, SetAttributeSurvivesLoop) {
  EXPECT_EQ(Render(R"jinja({% set ns = namespace(count=0, seen='') %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.seen = ns.seen ~ m.role[0] %}{% endfor %}{{ ns.count }} {{ ns.seen }})jinja", R"json({"messages": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]})json"),
            "3 uau");
}

TEST(JinjaNamespace, FromMappingAndKeywords) {
  EXPECT_EQ(Render(R"jinja({% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }})jinja"),
            "121");
}

TEST(JinjaNamespace, SetBlockCapturesOutput) {
  EXPECT_EQ(Render(R"jinja({% set greeting %}Hello {{ name }}{% endset %}[{{ greeting }}]{% set shout | upper %}hi{% endset %}{{ shout }})jinja", R"json({"name": "Ann"})json"),
            "[Hello Ann]HI");
}

TEST(JinjaFilters, LengthTrimStringUpperLower) {
  EXPECT_EQ(Render(R"jinja({{ 'héllo'|length }} [{{ '  x y  '|trim }}] {{ 42|string ~ '!' }} {{ 'Abc'|upper }} {{ 'ÀBC'|lower }} [{{ 'xxhixx'|trim('x') }}])jinja"),
            "5 [x y] 42! ABC àbc [hi]");
}

TEST(JinjaFilters, ToJsonLikePythonJsonDumps) {
  EXPECT_EQ(Render(R"jinja({{ data|tojson }}|{{ data|tojson(indent=2) }}|{{ 'é<>&'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }})jinja", R"json({"data": {"name": "f", "args": [1, 2.5, true, null, "q\"\n"], "empty": {}}})json"),
            "{\"name\": \"f\", \"args\": [1, 2.5, true, null, \"q\\\"\\n\"], \"empty\": {}}|{\n  \"name\": \"f\",\n  \"args\": [\n    1,\n    2.5,\n    true,\n    null,\n    \"q\\\"\\n\"\n  ],\n  \"empty\": {}\n}|\"é<>&\"|\"\\u00e9\"");
}

TEST(JinjaFilters, ToJsonSortKeysAndSeparators) {
  EXPECT_EQ(Render(R"jinja({{ {'b': 1, 'a': [1, 2]}|tojson(sort_keys=true, separators=(',', ':')) }})jinja"),
            "{\"a\":[1,2],\"b\":1}");
}

TEST(JinjaFilters, DefaultJoinFirstLast) {
  EXPECT_EQ(Render(R"jinja({{ missing|default('fallback') }} {{ ''|default('empty', true) }} {{ [1, 2, 3]|join('-') }} {{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }})jinja"),
            "fallback empty 1-2-3 13");
}

TEST(JinjaFilters, MapSelectRejectAttr) {
  EXPECT_EQ(Render(R"jinja({{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|rejectattr('content')|map(attribute='role')|list }} {{ [0, 1, 2, '', 'a']|select|list }} {{ [1, 2, 3, 4]|reject('odd')|list }})jinja", R"json({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": ""}, {"role": "user", "content": "x"}]})json"),
            "user,tool,user 2 ['tool'] [1, 2, 'a'] [2, 4]");
}

TEST(JinjaFilters, SortUniqueReverseMinMaxSum) {
  EXPECT_EQ(Render(R"jinja({{ ['b', 'A', 'c']|sort|list }} {{ [3, 1, 2]|sort(reverse=true)|list }} {{ ['a', 'A', 'b']|unique|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }} {{ [4, 2, 8]|min }} {{ [4, 2, 8]|max }} {{ [1, 2, 3]|sum }})jinja"),
            "['A', 'b', 'c'] [3, 2, 1] ['a', 'b'] [3, 2, 1] cba 2 8 6");
}

TEST(JinjaFilters, ItemsAndDictsort) {
  EXPECT_EQ(Render(R"jinja({% for k, v in {'b': 2, 'A': 1}|dictsort %}{{ k }}{{ v }}{% endfor %} {{ {'x': 1}|items|list }})jinja"),
            "A1b2 [('x', 1)]");
}

TEST(JinjaFilters, NumbersIntFloatRoundAbs) {
  EXPECT_EQ(Render(R"jinja({{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ '2.5'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 3.14159|round(2) }} {{ -3|abs }} {{ 7|round }})jinja"),
            "43 4 7 2.5 2.0 4.0 3.14 3 7");
}

TEST(JinjaFilters, ReplaceTitleCapitalizeIndent) {
  EXPECT_EQ(Render(R"jinja({{ 'a-b-a'|replace('a', 'x') }} {{ 'hello big-world'|title }} {{ 'hELLO'|capitalize }}
{{ 'line1
line2

line4'|indent(2) }}|{{ 'a
b'|indent(first=true) }})jinja"),
            "x-b-x Hello Big-World Hello\nline1\n  line2\n\n  line4|    a\n    b");
}

TEST(JinjaFilters, EscapeAndSafe) {
  EXPECT_EQ(Render(R"jinja({{ '<a href="x">&</a>'|e }} {{ [1]|safe }})jinja"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt; [1]");
}

TEST(JinjaStrings, SplitAndIndexTakeTheLastPiece) {
  EXPECT_EQ(Render(R"jinja({{ content.split('</think>')[-1] }}|{{ 'a  b c'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }})jinja", R"json({"content": "<think>\nreasoning\n</think>\n\nThe answer."})json"),
            "\n\nThe answer.|['a', 'b', 'c']|['a', 'b,c']|['a,b', 'c']");
}

TEST(JinjaStrings, StripStartswithEndswithReplace) {
  EXPECT_EQ(Render(R"jinja([{{ '  pad  '.strip() }}][{{ 'xxhixx'.lstrip('x') }}][{{ 'xxhixx'.rstrip('x') }}] {{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('lo', 'x')) }} {{ 'aaa'.replace('a', 'b', 2) }})jinja"),
            "[pad][hixx][xxhi] True True bba");
}

TEST(JinjaStrings, CaseAndSearchMethods) {
  EXPECT_EQ(Render("{{ 'MiXed'.lower() }} {{ 'MiXed'.upper() }} {{ 'hello world'.title() }} {{ 'añb'.find('b') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b']) }} {{ 'a\nb\r\nc'.splitlines() }}"),
            "mixed MIXED Hello World 2 2 a-b ['a', 'b', 'c']");
}

TEST(JinjaStrings, SlicingByCharacters) {
  EXPECT_EQ(Render(R"jinja({{ 'héllo'[1:] }} {{ 'héllo'[:-1] }} {{ 'héllo'[::-1] }} {{ 'héllo'[1] }} {{ [1, 2, 3, 4][1:3] }} {{ [1, 2, 3, 4][::2] }} {{ [1, 2, 3][-1] }} {{ (1, 2, 3)[1:] }})jinja"),
            "éllo héll olléh é [2, 3] [1, 3] 3 (2, 3)");
}

TEST(JinjaStrings, LiteralEscapes) {
  EXPECT_EQ(Render(R"jinja({{ 'tab:\t|nl:\n|quote:\'|uni:\u00e9|hex:\x41|oct:\101|unknown:\d' }}{{ "dq \"x\"" }})jinja"),
            "tab:\t|nl:\n|quote:'|uni:é|hex:A|oct:A|unknown:\\ddq \"x\"");
}

TEST(JinjaStrings, AdjacentLiteralsConcatenate) {
  EXPECT_EQ(Render(R"jinja({{ 'a' 'b' "c" }})jinja"),
            "abc");
}

TEST(JinjaOperators, ArithmeticFollowsPython) {
  EXPECT_EQ(Render(R"jinja({{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 1_000 + 0x10 }} {{ 1e3 }} {{ 0.1 + 0.2 }})jinja"),
            "3 -4 1 2 3.5 1024 3.5 ababab [1, 2] 1016 1000.0 0.30000000000000004");
}

TEST(JinjaOperators, ConcatAndPlus) {
  EXPECT_EQ(Render(R"jinja({{ 'a' ~ 1 ~ none ~ true ~ undefined_var }} {{ 'x' + 'y' }})jinja"),
            "a1NoneTrue xy");
}

TEST(JinjaOperators, ComparisonsAndMembership) {
  EXPECT_EQ(Render(R"jinja({{ 1 < 2 < 3 }} {{ 'b' > 'a' }} {{ 'a' in 'cat' }} {{ 'x' not in ['y'] }} {{ 'role' in {'role': 1} }} {{ [1, 2] == [1, 2] }} {{ 1 == 1.0 }} {{ true == 1 }} {{ none == none }})jinja"),
            "True True True True True True True True True");
}

TEST(JinjaOperators, BooleanOperatorsReturnOperands) {
  EXPECT_EQ(Render(R"jinja({{ '' or 'default' }} {{ 'a' and 'b' }} {{ not none }} {{ 0 or [] }} {{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }})jinja"),
            "default b True [] yes no");
}

TEST(JinjaOperators, TestsBindTighterThanNot) {
  EXPECT_EQ(Render(R"jinja({{ not x is defined }} {{ x is not defined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ true is boolean }} {{ {} is mapping }} {{ [] is iterable }} {{ 3 is odd }} {{ 10 is divisibleby 5 }} {{ 'abc' is lower }} {{ 2 is in [1, 2] }})jinja"),
            "True True True True True True True True True True True True");
}

TEST(JinjaOperators, FiltersBindTighterThanArithmetic) {
  EXPECT_EQ(Render(R"jinja({{ 1 + [1, 2]|length }} {{ 10 - 'abc'|length }} {{ 2 * 'ab'|upper }})jinja"),
            "3 7 ABAB");
}

TEST(JinjaOperators, ValuesPrintLikePython) {
  EXPECT_EQ(Render(R"jinja({{ [1, 'a', none, true, 2.0, {'k': 'v'}] }} {{ (1,) }} {{ ('a', 'b') }} {{ 1e20 }} {{ 1e-5 }} {{ 100000000000000.0 }} {{ -0.0 }})jinja"),
            "[1, 'a', None, True, 2.0, {'k': 'v'}] (1,) ('a', 'b') 1e+20 1e-05 100000000000000.0 -0.0");
}

TEST(JinjaUndefined, PrintsAsEmptyAndIsFalsy) {
  EXPECT_EQ(Render(R"jinja([{{ nothing }}][{{ message.missing }}]{% if not nothing %}falsy{% endif %}{% for x in nothing %}never{% endfor %}{{ nothing|length }}{{ nothing is defined }}{{ nothing is undefined }})jinja", R"json({"message": {"role": "user"}})json"),
            "[][]falsy0FalseTrue");
}

TEST(JinjaUndefined, MissingKeysAndIndexesAreUndefined) {
  EXPECT_EQ(Render(R"jinja([{{ d['x'] }}][{{ l[10] }}][{{ d.x is defined }}][{{ none.attr }}][{{ 'abc'[10] }}])jinja", R"json({"d": {}, "l": [1]})json"),
            "[][][False][][]");
}

TEST(JinjaUndefined, GetMethodAndDictAttributes) {
  EXPECT_EQ(Render(R"jinja({{ d.get('a') }} {{ d.get('zz', 'fallback') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.a }} {{ d['a'] }})jinja", R"json({"d": {"a": 1, "b": 2}})json"),
            "1 fallback ['a', 'b'] [1, 2] 1 1");
}

TEST(JinjaMacros, MacroWithDefaultsAndKeywords) {
  EXPECT_EQ(Render(R"jinja({% macro tag(name, value='none', sep=':') %}<{{ name }}{{ sep }}{{ value }}>{% endmacro %}{{ tag('a') }}{{ tag('b', 2) }}{{ tag('c', sep='=', value=3) }})jinja"),
            "<a:none><b:2><c=3>");
}

TEST(JinjaMacros, MacroVarargsAndKwargs) {
  EXPECT_EQ(Render(R"jinja({% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }})jinja"),
            "1(2, 3){'x': 4}");
}

TEST(JinjaMacros, MacroMissingArgumentIsUndefined) {
  EXPECT_EQ(Render(R"jinja({% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }})jinja"),
            "[1][]");
}

TEST(JinjaMacros, FilterAndWithBlocks) {
  EXPECT_EQ(Render(R"jinja({% filter upper %}shout {{ 'this' }}{% endfilter %} {% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }})jinja"),
            "SHOUT THIS 3");
}

TEST(JinjaMacros, RangeAndDict) {
  EXPECT_EQ(Render(R"jinja({{ range(3)|list }} {{ range(1, 10, 4)|list }} {{ dict(a=1, b='x') }})jinja"),
            "[0, 1, 2] [1, 5, 9] {'a': 1, 'b': 'x'}");
}

// ---- behaviours outside the Python reference set-up ----

TEST(JinjaMacros, GenerationBlockRendersItsBody) {
  // transformers' AssistantTracker extension; the body renders as is.
  EXPECT_EQ(Render("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}",
                   R"({"messages": [{"role": "assistant", "content": "hi"}]})"),
            "hi");
}

TEST(JinjaGlobals, SpecialTokensToolsAndDocumentsAreVariables) {
  auto tmpl = ChatTemplate::Parse(
      "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ tools is none }}|{{ documents is none }}|"
      "{{ add_generation_prompt }}",
      SpecialTokens{.bos_token = "<s>", .eos_token = "</s>"});
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  EXPECT_EQ(*(*tmpl)->Render(nlohmann::json::array(), true), "<s>|</s>|False|True|True|True");
  EXPECT_EQ(*(*tmpl)->Render(nlohmann::json::array(), false, {{"tools", {{{"name", "f"}}}}, {"bos_token", "B"}}),
            "B|</s>|False|False|True|False");
}

TEST(JinjaGlobals, StrftimeNowFormatsTheCurrentDate) {
  const std::string year = Render("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u) << year;
  EXPECT_TRUE(year[0] == '2') << year;
}

TEST(JinjaToJson, OrderedJsonKeepsTheCallersKeyOrder) {
  EXPECT_EQ(Render("{{ tool|tojson }}", R"({"tool": {"name": "f", "description": "d", "args": {}}})"),
            R"({"name": "f", "description": "d", "args": {}})");
  // nlohmann::json sorts keys; so does the template's output then.
  auto tmpl = ChatTemplate::Parse("{{ tool|tojson }}");
  ASSERT_TRUE(tmpl.ok());
  const nlohmann::json sorted = {{"tool", {{"name", "f"}, {"description", "d"}}}};
  EXPECT_EQ(*(*tmpl)->Render(nlohmann::json::array(), false, sorted), R"({"description": "d", "name": "f"})");
}

// ---- errors: at render time, with the position of the failing expression ----

TEST(JinjaErrors, RaiseExceptionReturnsTheTemplatesMessage) {
  const absl::Status status = RenderStatus(
      "{% if messages|length == 0 %}{{ raise_exception('Conversation roles must alternate user/assistant') }}"
      "{% endif %}");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "Conversation roles must alternate user/assistant");
}

TEST(JinjaErrors, RaiseExceptionInsideAMacroKeepsItsMessage) {
  const absl::Status status = RenderStatus("{% macro fail() %}{{ raise_exception('no') }}{% endmacro %}{{ fail() }}");
  EXPECT_EQ(status.message(), "no");
}

TEST(JinjaErrors, UsingUndefinedBeyondPrintingIsAnError) {
  EXPECT_EQ(Render("{{ message.content + 'x' }}", R"({"message": {"role": "user"}})"),
            "ERROR: INVALID_ARGUMENT: chat template 1:20: 'dict object' has no attribute 'content'");
  EXPECT_EQ(Render("{{ nothing.attr }}"), "ERROR: INVALID_ARGUMENT: chat template 1:11: 'nothing' is undefined");
  EXPECT_EQ(Render("{{ nothing['key'] }}"), "ERROR: INVALID_ARGUMENT: chat template 1:11: 'nothing' is undefined");
  EXPECT_EQ(Render("{{ nothing() }}"), "ERROR: INVALID_ARGUMENT: chat template 1:11: 'nothing' is undefined");
  EXPECT_EQ(Render("{{ nothing < 1 }}"), "ERROR: INVALID_ARGUMENT: chat template 1:12: 'nothing' is undefined");
}

TEST(JinjaErrors, PythonTypeErrorsAreReported) {
  EXPECT_EQ(Render("{{ '<|User|>' + content }}", R"({"content": null})"),
            "ERROR: INVALID_ARGUMENT: chat template 1:15: can only concatenate str (not \"NoneType\") to str");
  EXPECT_EQ(Render("{{ 1 + 'a' }}"),
            "ERROR: INVALID_ARGUMENT: chat template 1:6: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(Render("{{ -[1, 2]|length }}"),
            "ERROR: INVALID_ARGUMENT: chat template 1:4: bad operand type for unary -: 'list'");
  EXPECT_EQ(Render("{{ 1 / 0 }}"), "ERROR: INVALID_ARGUMENT: chat template 1:6: division by zero");
  EXPECT_EQ(Render("{% for x in 5 %}{% endfor %}"),
            "ERROR: INVALID_ARGUMENT: chat template 1:13: 'int' object is not iterable");
  EXPECT_EQ(Render("{{ 'a'.split('') }}"), "ERROR: INVALID_ARGUMENT: chat template 1:13: empty separator");
  EXPECT_EQ(Render("{{ [1].append(2) }}"),
            "ERROR: INVALID_ARGUMENT: chat template 1:14: access to attribute 'append' of 'list' object is unsafe.");
}

TEST(JinjaErrors, AssigningToANonNamespaceAttributeFails) {
  EXPECT_EQ(Render("{% set d = {} %}{% set d.x = 1 %}"),
            "ERROR: INVALID_ARGUMENT: chat template 1:24: cannot assign attribute on non-namespace object");
}

TEST(JinjaErrors, UnsupportedConstructsAreNamedNotIgnored) {
  EXPECT_EQ(Render("{{ '%s' % 'x' }}"),
            "ERROR: UNIMPLEMENTED: chat template 1:9: printf-style '%' string formatting is not supported");
  EXPECT_EQ(Render("{{ 'x'.zfill(3) }}"), "ERROR: UNIMPLEMENTED: chat template 1:13: str.zfill() is not supported");
  EXPECT_EQ(Render("{% include 'other.jinja' %}"),
            "ERROR: UNIMPLEMENTED: chat template 1:4: the 'include' tag is not supported");
  EXPECT_EQ(Render("{{ x|wordwrap }}"), "ERROR: UNIMPLEMENTED: chat template 1:6: the 'wordwrap' filter is not supported");
  EXPECT_EQ(Render("{% for x in y recursive %}{% endfor %}"),
            "ERROR: UNIMPLEMENTED: chat template 1:15: recursive loops are not supported");
  EXPECT_EQ(Render("{{ f(*args) }}"),
            "ERROR: UNIMPLEMENTED: chat template 1:6: *args and **kwargs in calls are not supported");
}

TEST(JinjaErrors, RunawayTemplatesStopWithAnError) {
  const absl::Status loop = RenderStatus(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  EXPECT_EQ(loop.code(), absl::StatusCode::kResourceExhausted) << loop;
  const absl::Status growth = RenderStatus(
      "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
  EXPECT_EQ(growth.code(), absl::StatusCode::kResourceExhausted) << growth;
  const absl::Status recursion = RenderStatus("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  EXPECT_EQ(recursion.code(), absl::StatusCode::kResourceExhausted) << recursion;
  EXPECT_EQ(RenderStatus("{{ range(1000000)|length }}").code(), absl::StatusCode::kOutOfRange);
}

// ---- errors: at parse time, naming line:column ----

struct ParseErrorCase {
  const char* name;
  const char* source;
  const char* message;
};

void PrintTo(const ParseErrorCase& c, std::ostream* os) { *os << c.name; }

class JinjaParseErrors : public ::testing::TestWithParam<ParseErrorCase> {};

TEST_P(JinjaParseErrors, NameLineAndColumn) {
  const absl::StatusOr<std::unique_ptr<ChatTemplate>> tmpl = ChatTemplate::Parse(GetParam().source);
  ASSERT_FALSE(tmpl.ok()) << GetParam().source;
  EXPECT_EQ(std::string(tmpl.status().message()), GetParam().message) << GetParam().source;
}

INSTANTIATE_TEST_SUITE_P(
    Examples, JinjaParseErrors,
    ::testing::Values(
        ParseErrorCase{"UnclosedIf", "{% if x %}never closed",
                       "chat template 1:1: 'if' is never closed: expected 'elif' or 'else' or 'endif' before the end "
                       "of the template"},
        ParseErrorCase{"UnclosedExpression", "line one\n{{ x ", "chat template 2:1: unclosed '{{': missing '}}'"},
        ParseErrorCase{"MismatchedEndTag", "{% for x in y %}{% endif %}",
                       "chat template 1:20: unexpected tag 'endif': the innermost open block is 'for' at 1:1, which "
                       "expects 'endfor' or 'else'"},
        ParseErrorCase{"UnknownFilter", "{{ x|no_such_filter }}", "chat template 1:6: no filter named 'no_such_filter'"},
        ParseErrorCase{"UnknownTest", "{% if x is no_such_test %}{% endif %}",
                       "chat template 1:12: no test named 'no_such_test'"},
        ParseErrorCase{"UnknownTag", "{% frobnicate %}", "chat template 1:4: unknown tag 'frobnicate'"},
        ParseErrorCase{"UnclosedString", "{{ 'unclosed }}", "chat template 1:4: unclosed string literal"},
        ParseErrorCase{"WrongClosingBracket", "{{ (1 + 2 }}", "chat template 1:11: unexpected '}', expected ')'"},
        ParseErrorCase{"UnclosedParenthesis", "{{ (1 + 2", "chat template 1:4: '(' is never closed"},
        ParseErrorCase{"ParenthesisClosesList", "{{ [1, 2) }}", "chat template 1:9: unexpected ')', expected ']'"},
        ParseErrorCase{"MissingOperand", "{{ 1 + }}", "chat template 1:8: unexpected '}}'"},
        ParseErrorCase{"EmptyExpression", "{{ }}", "chat template 1:4: expected an expression, got '}}'"},
        ParseErrorCase{"TwoExpressions", "{{ a b }}", "chat template 1:6: expected end of print statement '}}', got 'b'"},
        ParseErrorCase{"UnclosedComment", "{# comment", "chat template 1:1: unclosed comment: missing '#}'"},
        ParseErrorCase{"BreakOutsideLoop", "{% break %}", "chat template 1:4: 'break' outside of a loop"},
        ParseErrorCase{"UnexpectedCharacter", "{{ x ? y }}", "chat template 1:6: unexpected character '?'"},
        ParseErrorCase{"AssignToLiteral", "{% set 1 = x %}", "chat template 1:8: can't assign to this expression"},
        ParseErrorCase{"PositionalAfterKeyword", "{{ f(a=1, 2) }}",
                       "chat template 1:11: positional argument follows keyword argument"},
        ParseErrorCase{"NonDefaultAfterDefault", "{% macro m(a=1, b) %}{% endmacro %}",
                       "chat template 1:18: non-default argument follows default argument"},
        ParseErrorCase{"TruncatedEscape", "é\n  {{ 'x' '\\x4' }}", "chat template 2:10: truncated \\x escape"}),
    [](const ::testing::TestParamInfo<ParseErrorCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dsrt::chat
