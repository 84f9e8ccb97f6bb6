#!/usr/bin/env python3
"""Differential check of dsrt's chat template engine against Python's Jinja2.

Renders random templates with both chat_template_render --batch and Jinja2
set up as transformers' apply_chat_template sets it up, and compares:

  python3 runtime/chat/differential_check.py build/runtime/chat/chat_template_render \
      [--mode idiomatic|grammar] [--cases 2000] [--seed 1]

`idiomatic` combines chat-template idioms (message loops, role tests,
namespace flags, tojson of tools, whitespace control); `grammar` draws from
the whole expression grammar, so most of its cases fail in both engines.
The exit status is non-zero when dsrt renders text that differs from Jinja2's
or succeeds where Jinja2 fails. Cases where dsrt reports an error and Jinja2
renders something are counted apart: they come from Jinja2's lazy generators
(`{{ 5|map('x') == 1 }}` never iterates) and its compile-time folding of
slices of literals (`{{ 100[1:] }}`), which dsrt does not reproduce.
Needs Python with jinja2 3.1 (`pip install jinja2`, or Debian's python3-jinja2).
"""
import argparse
import copy
import json
import random
import subprocess
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


# ---- the reference: transformers' environment ----

def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def render_reference(template, variables):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template).render(**variables)


# ---- grammar mode ----

VARS = {
  "s": "Hello World", "s2": "  pad\tme \n", "uni": "héllo wörld ñ 😀", "n": 3, "z": 0, "neg": -7, "f": 2.5, "nf": -0.5,
  "l": [1, 2, 3], "ls": ["b", "A", "c", "a"], "el": [], "d": {"a": 1, "b": "x", "c": [1, 2], "items": 5},
  "ed": {}, "none_var": None, "empty": "", "t": True, "fa": False,
  "msgs": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi</think>yo"},
           {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
           {"role": "tool", "content": "out"}, {"role": "assistant", "content": "<think>r</think>ans"}],
}
NAMES = list(VARS) + ["undef", "loop"]
STRS = ["'a'", "'abc'", "''", "' x '", "'</think>'", "'a,b,,c'", "\"q'uote\"", "'\\n'", "'é'", "'A-b c'", "'%'"]
FILTERS = [("length",[]),("trim",[]),("trim",["'x'"]),("string",[]),("upper",[]),("lower",[]),("tojson",[]),("tojson",["indent=2"]),
  ("tojson",["sort_keys=true"]),("first",[]),("last",[]),("list",[]),("join",[]),("join",["', '"]),("default",["'D'"]),("default",["'D'","true"]),
  ("capitalize",[]),("title",[]),("replace",["'a'","'b'"]),("int",[]),("float",[]),("abs",[]),("round",[]),("round",["1"]),
  ("reverse",[]),("sort",[]),("unique",[]),("min",[]),("max",[]),("sum",[]),("items",[]),("dictsort",[]),("escape",[]),
  ("indent",[]),("indent",["2","true"]),("map",["attribute='role'"]),("map",["'upper'"]),("select",[]),("reject",["'odd'"]),
  ("selectattr",["'role'","'equalto'","'user'"]),("rejectattr",["'content'"]),("count",[]),("safe",[]),("batch",["2"])]
TESTS = ["defined","undefined","none","string","number","integer","float","boolean","true","false","mapping","iterable",
  "sequence","odd","even","divisibleby 2","lower","upper","eq 3","in l","sameas none","callable"]
METHODS = ["split()","split(',')","split('</think>')","split('l', 1)","rsplit('l', 1)","strip()","lstrip('H')","rstrip('d')",
  "startswith('He')","endswith(('d','x'))","replace('l','L')","lower()","upper()","title()","find('o')","count('l')",
  "splitlines()","capitalize()","isspace()","isdigit()","get('a')","get('zz', 1)","keys()","values()","items()","index(2)",
  "removeprefix('He')","join(['x','y'])"]
BINOPS = ["+","-","*","/","//","%","**","~","==","!=","<","<=",">",">=","in","not in","and","or"]


def atom(r, depth):
    c = r.random()
    if c < 0.3: return r.choice(NAMES)
    if c < 0.45: return r.choice(STRS)
    if c < 0.55: return str(r.choice([0, 1, 2, 3, -1, 10, 100, 7]))
    if c < 0.6: return r.choice(["1.5", "0.1", "2.0", "1e3", "-0.0"])
    if c < 0.65: return r.choice(["true", "false", "none", "True", "None"])
    if c < 0.72 and depth < 3: return "[" + ", ".join(expr(r, depth+1) for _ in range(r.randint(0, 3))) + "]"
    if c < 0.76 and depth < 3: return "{" + ", ".join("%s: %s" % (r.choice(STRS), expr(r, depth+1)) for _ in range(r.randint(0, 2))) + "}"
    if c < 0.8 and depth < 3: return "(" + expr(r, depth+1) + ", " + expr(r, depth+1) + ")"
    return "(" + expr(r, depth+1) + ")" if depth < 3 else r.choice(NAMES)


def postfix(r, e, depth):
    c = r.random()
    if c < 0.15: return e + "." + r.choice(["a", "b", "role", "content", "items", "0", "x"])
    if c < 0.3: return e + "[" + r.choice(["0", "-1", "1", "'a'", "'content'", "'role'", "10"]) + "]"
    if c < 0.4: return e + "[" + r.choice(["1:", ":-1", "::-1", "1:3", "::2", ":", "-2:"]) + "]"
    if c < 0.5: return e + "." + r.choice(METHODS)
    return e


def unary(r, depth):
    e = postfix(r, atom(r, depth), depth)
    c = r.random()
    if c < 0.25:
        f, args = r.choice(FILTERS)
        e = e + "|" + f + ("(" + ", ".join(args) + ")" if args else "")
    elif c < 0.35:
        e = e + " is " + r.choice(["", "not "]) + r.choice(TESTS)
    return e


def expr(r, depth=0):
    c = r.random()
    if depth > 3 or c < 0.45: return unary(r, depth)
    if c < 0.8: return unary(r, depth) + " " + r.choice(BINOPS) + " " + unary(r, depth)
    if c < 0.88: return "not " + unary(r, depth)
    if c < 0.95: return unary(r, depth) + " if " + unary(r, depth) + (" else " + unary(r, depth) if r.random() < 0.7 else "")
    return "-" + unary(r, depth)


def ws(r):
    return r.choice(["", "", " ", "\n", "  \n  ", "\n\n", "\t"])


def tag(r, body):
    return "{%" + r.choice(["", "", "-", "+"]) + " " + body + " " + r.choice(["", "", "-", "+"]) + "%}"


def stmt(r, depth=0, in_loop=False):
    c = r.random()
    if depth > 2 or c < 0.35:
        return ws(r) + "{{" + r.choice(["", "-"]) + " " + expr(r) + " " + r.choice(["", "-"]) + "}}" + ws(r) + r.choice(["", "x", "[", "]"])
    if c < 0.5:
        out = tag(r, "if " + expr(r)) + ws(r) + body(r, depth+1, in_loop)
        if r.random() < 0.4: out += tag(r, "elif " + expr(r)) + body(r, depth+1, in_loop)
        if r.random() < 0.5: out += tag(r, "else") + ws(r) + body(r, depth+1, in_loop)
        return out + tag(r, "endif") + ws(r)
    if c < 0.65:
        target = r.choice(["x", "m", "k, v"])
        it = r.choice(["l", "ls", "msgs", "d.items()", "d", "s", "range(3)", "el", expr(r)])
        cond = (" if " + expr(r)) if r.random() < 0.2 else ""
        out = tag(r, "for %s in %s%s" % (target, it, cond)) + ws(r) + body(r, depth+1, True)
        if r.random() < 0.2: out += tag(r, "else") + body(r, depth+1, in_loop)
        return out + tag(r, "endfor") + ws(r)
    if c < 0.75:
        return tag(r, "set " + r.choice(["y", "s", "ns.a", "ns.b", "n"]) + " = " + expr(r)) + ws(r)
    if c < 0.8 and in_loop:
        return tag(r, r.choice(["break", "continue"]))
    if c < 0.85:
        return "{# c #}" + ws(r)
    if c < 0.9:
        return tag(r, "macro mm(a, b='B')") + "{{ a }}-{{ b }}" + tag(r, "endmacro") + "{{ mm(" + expr(r) + ") }}"
    return ws(r) + r.choice(["text", "  indented", "a\nb", "\n  "]) + ws(r)


def body(r, depth=0, in_loop=False):
    return "".join(stmt(r, depth, in_loop) for _ in range(r.randint(1, 3)))


def template(r):
    return "{% set ns = namespace(a=1, b='') %}" + body(r)


def grammar_case(r):
    return template(r), dict(VARS)


# ---- idiomatic mode ----

def iws(r):
    return r.choice(["", "", "", "\n", "  ", "\n  ", " \n", "\n\n"])

def o(r):
    return "{%" + r.choice(["", "", "-", "+"]) + " "

def c(r):
    return " " + r.choice(["", "", "-", "+"]) + "%}"

def vo(r):
    return "{{" + r.choice(["", "", "-"]) + " "

def vc(r):
    return " " + r.choice(["", "", "-"]) + "}}"

CONDS = ["message['role'] == 'user'", "message.role == 'assistant'", "message['content'] is string", "message.content is none",
  "message.tool_calls is defined", "'tool_calls' in message", "loop.first", "loop.last", "not loop.last and message.role != 'system'",
  "message.content and '</think>' in message.content", "ns.flag", "not ns.flag", "loop.index0 % 2 == 0", "message.role in ['user', 'system']",
  "tools is not none", "add_generation_prompt", "message['content'] is not none and message['content']|length > 3",
  "message.name is defined", "loop.index > 1"]
EXPRS = ["message['content']", "message.content|trim", "message.role|upper", "message['role'] ~ ': '", "'<|' + message.role + '|>'",
  "(message.content or '')[:5]", "(message.content or '').split('</think>')[-1]|trim", "loop.index", "loop.revindex0", "message|tojson",
  "message.tool_calls|default([])|length", "ns.count", "ns.text", "messages|length", "messages[0].role", "messages[-1]['content']",
  "tools|tojson", "tools|tojson(indent=2)", "(tools or [])|map(attribute='name')|join(', ')", "bos_token", "eos_token",
  "message.content|replace('\\n', ' ')", "message.content|string|title", "messages|selectattr('role', 'equalto', 'user')|list|length",
  "message.get('name', 'anon')", "message.content.strip() if message.content is string else ''", "loop.previtem.role if loop.previtem is defined else '-'",
  "message.content|indent(2)", "'%d' if false else loop.length",
  "ns.count * 2 // 3", "message.keys()|list", "message.items()|list|length", "range(loop.index)|list", "(message.content or '')|length > 5"]
SETS = ["{% set ns.count = ns.count + 1 %}", "{% set ns.flag = not ns.flag %}", "{% set ns.text = ns.text ~ message.role[0] %}",
  "{% set content = message.content %}", "{% set content = (message.content or '').split('</think>')[-1] %}{{ content }}"]


def idiom_stmt(r, depth, in_loop):
    k = r.random()
    if k < 0.4 or depth > 2:
        return iws(r) + vo(r) + r.choice(EXPRS if in_loop else [e for e in EXPRS if "message" not in e and "loop" not in e]) + vc(r) + iws(r) + r.choice(["", "|", "\n"])
    if k < 0.6 and in_loop:
        out = o(r) + "if " + r.choice(CONDS) + c(r) + idiom_body(r, depth + 1, in_loop)
        if r.random() < 0.4: out += o(r) + "elif " + r.choice(CONDS) + c(r) + idiom_body(r, depth + 1, in_loop)
        if r.random() < 0.4: out += o(r) + "else" + c(r) + idiom_body(r, depth + 1, in_loop)
        return out + o(r) + "endif" + c(r)
    if k < 0.75:
        filt = r.choice(["", "", " if message.role != 'system'", " if message.content"])
        out = o(r) + "for message in messages" + filt + c(r) + idiom_body(r, depth + 1, True)
        if r.random() < 0.2: out += o(r) + "else" + c(r) + "none"
        return out + o(r) + "endfor" + c(r)
    if k < 0.85 and in_loop:
        return r.choice(SETS)
    if k < 0.9 and in_loop:
        return o(r) + "if " + r.choice(CONDS) + c(r) + o(r) + r.choice(["break", "continue"]) + c(r) + o(r) + "endif" + c(r)
    return iws(r) + r.choice(["<|im_start|>", "\n", "  text", "{# note #}", "[SEP]"]) + iws(r)


def idiom_body(r, depth, in_loop):
    return "".join(idiom_stmt(r, depth, in_loop) for _ in range(r.randint(1, 3)))


def idiom_template(r):
    return "{%- set ns = namespace(count=0, flag=false, text='') -%}\n" + idiom_body(r, 0, False) + r.choice(["", "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"])


def idiom_messages(r):
    out = []
    for i in range(r.randint(0, 6)):
        role = r.choice(["system", "user", "assistant", "tool", "user", "assistant"])
        m = {"role": role}
        k = r.random()
        if k < 0.7: m["content"] = r.choice(["Hello", "  spaced  \n", "<think>\nr\n</think>\n\nanswer", "多语言 😀", "", "a\nb\n\nc", "x" * 12])
        elif k < 0.85: m["content"] = None
        if role == "assistant" and r.random() < 0.3:
            m["tool_calls"] = [{"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]
        if r.random() < 0.1: m["name"] = "bob"
        out.append(m)
    return out


def idiomatic_case(r):
    tools = r.choice([None, [{"name": "get", "description": "d",
                              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]])
    return idiom_template(r), {"messages": idiom_messages(r), "add_generation_prompt": r.random() < 0.5,
                                "bos_token": "<s>", "eos_token": "</s>", "tools": tools}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("renderer", help="path to chat_template_render")
    parser.add_argument("--mode", choices=["idiomatic", "grammar"], default="idiomatic")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    r = random.Random(args.seed)
    make_case = idiomatic_case if args.mode == "idiomatic" else grammar_case
    cases = [make_case(r) for _ in range(args.cases)]
    batch = "".join(json.dumps({"template": t, "vars": v}, ensure_ascii=False) + "\n" for t, v in cases)
    run = subprocess.run([args.renderer, "--batch"], input=batch.encode(), capture_output=True)
    if run.returncode != 0:
        print("chat_template_render failed:", run.returncode, run.stderr.decode()[-2000:])
        return 1
    results = [json.loads(line) for line in run.stdout.decode().splitlines()]
    counts = {"same": 0, "both_fail": 0, "unsupported": 0, "unreproducible": 0, "dsrt_fails_only": 0, "different": 0}
    for (template, variables), ours in zip(cases, results):
        variables = dict(copy.deepcopy(variables))
        for name in ("messages", "tools", "documents"):
            variables.setdefault(name, [] if name == "messages" else None)
        variables.setdefault("add_generation_prompt", False)
        try:
            reference = {"ok": True, "out": render_reference(template, variables)}
        except Exception as error:  # any Jinja2 failure
            reference = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        if not ours["ok"] and ("UNIMPLEMENTED" in ours["error"] or "integer overflow" in ours["error"]):
            counts["unsupported"] += 1
        elif reference["ok"] and " at 0x" in reference["out"]:
            counts["unreproducible"] += 1  # Python printed an object's address
        elif ours["ok"] and reference["ok"] and ours["out"] == reference["out"]:
            counts["same"] += 1
        elif not ours["ok"] and not reference["ok"]:
            counts["both_fail"] += 1
        elif not ours["ok"]:
            counts["dsrt_fails_only"] += 1
        else:
            counts["different"] += 1
            if counts["different"] <= 5:
                print("=== differs:", repr(template))
                print("  jinja2:", repr(reference)[:600])
                print("  dsrt:  ", repr(ours)[:600])
    print(counts)
    return 1 if counts["different"] else 0


if __name__ == "__main__":
    sys.exit(main())
