#!/usr/bin/env python3
"""Differential test of mage-secrets against the real thing: Python Jinja2 and
PyYAML, as Mage loads config (``yaml.full_load(jinja2.Template(text).render())``).

Two commands, both speaking JSON lines:

``generate --count N --seed S``
    Prints N cases: a template (contexts: plain, double and single quoted,
    block ``|``/``>``/``|-``/``|2``, flow mappings and sequences, comments,
    keys, plain continuations; whole-file and partial with ``variables()``;
    filters indent, replace, trim, tojson, ``~``; CRLF and CR line ends;
    ``{% raw %}`` blocks) with adversarial secret values, and the places to
    check.

``check``
    Reads ``{"case": …, "output": str|null, "diagnostics": [...]}`` lines
    (what mage-secrets made of each case) and prints one verdict per case:
    ``{"id", "ok", "why", "refused"}``. A case passes when either

    - the output, loaded as Mage loads it, gives the intended value at every
      place (a bare call: the value itself; a shaped expression: what
      Mage's own load of the template gives there), no key is injected, a
      value PyYAML resolves to another type carries a warning naming its
      secret, and, where Mage's own load of the template is right, the
      output after Mage's Jinja pass is byte-identical to Mage's; or
    - the render failed with an error naming a secret of the case, and
      Mage's own load of the template was not right (a refusal where Mage
      gets it right fails).

    No diagnostic may contain a value.
"""

import argparse
import json
import random
import re
import sys

import jinja2
import yaml

PIECES = [
    '"', "\\", "'", "\n", "\r", "\r\n", "\t", "#", " #", "# ", ": ", "- ", " ",
    "  ", "{{", "{%", "{#", "}}", "%}", "#}", "{%endraw%}", "{% endraw %}",
    "{%- endraw %}", "{{ 7*7 }}", "{% raw %}", "&a", "*a", "!!str", "!x",
    "\x85", "\u2028", "\u2029", "é", "日本", "abc", "Z9", "0123", "yes",
    "null", "~", "[1, 2]", '{"a": 1}', "-", "?", "|", ">", "%", "@", "`",
    ",", "[", "]", "{", "}", "\x01", "\x7f", "\ufeff", "\\n", "1_000", "12:30",
    "---", "...", "=", "<<", "\x00",
]

RUNTIME = "RT-value"


def value(rng):
    r = rng.random()
    if r < 0.05:
        return ""
    if r < 0.052:
        return (rng.choice(["a", "b\n", "c d", "é"]) * 70000)[:65536]
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))


def expression(rng, name, env_name):
    """An expression and whether it is a bare call."""
    r = rng.random()
    if r < 0.55:
        return "{{ mage_secret_var('%s') }}" % name, True
    if r < 0.62:
        return "{{ env_var('%s') }}" % env_name, True
    shaped = [
        "{{ mage_secret_var('%s') | indent(2) }}",
        "{{ mage_secret_var('%s') | replace('\\n', '\\\\n') }}",
        "{{ mage_secret_var('%s') | trim }}",
        "{{ mage_secret_var('%s') | tojson }}",
        "{{ mage_secret_var('%s') ~ '-x' }}",
        "{{ 'p-' ~ mage_secret_var('%s') }}",
        "{{ mage_secret_var('%s') if true else '' }}",
        "{{ mage_secret_var('%s') | upper }}",
    ]
    return rng.choice(shaped) % name, False


def clip(v):
    """A block scalar's content with one final line break (clip chomping)."""
    return v if v == "" or v.endswith("\n") else v + "\n"


# Each context: (template text with {E}, path to the place, how the intended
# loaded value is made from the expression's text V).
CONTEXTS = [
    ("k: {E}", ["k"], lambda v: v),
    ("k: pre-{E}-post", ["k"], lambda v: "pre-" + v + "-post"),
    ('k: "{E}"', ["k"], lambda v: v),
    ('k: "pre {E} post"', ["k"], lambda v: "pre " + v + " post"),
    ("k: '{E}'", ["k"], lambda v: v),
    ("k: 'it''s {E}'", ["k"], lambda v: "it's " + v),
    ("k: |\n  {E}", ["k"], clip),
    ("k: |-\n  {E}", ["k"], lambda v: v),
    ("k: |2\n  {E}", ["k"], clip),
    ("k: | # PEM below\n  {E}", ["k"], clip),
    ("k: >\n  {E}", ["k"], clip),
    ("k:\n  nested: |\n    {E}", ["k", "nested"], clip),
    ("k: {a: {E}, b: 1}", ["k", "a"], lambda v: v),
    ('k: {a: "{E}", b: 1}', ["k", "a"], lambda v: v),
    ("k: [{E}, x]", ["k", 0], lambda v: v),
    ("k: ['{E}', x]", ["k", 0], lambda v: v),
    ("k:\n  - {E}\n  - x", ["k", 0], lambda v: v),
    ("k: plain\n  text {E}", ["k"], lambda v: "plain text " + v if v else "plain text"),
    ('k: plain\n  "{E}"', ["k"], lambda v: 'plain "' + v + '"'),
    ("# old value was {E}", None, None),
    ("k: 1 # note {E}", ["k"], lambda v: 1),
    ("{E}: keyed", ["@key", "keyed"], lambda v: v),
]


def tojson_alike(v):
    """Whether minijinja's tojson prints v as Jinja2's does: Jinja2 also
    escapes <, >, &, ' and every non-ASCII character (an engine difference
    the Jinja2-compatibility tests cover, not a placement question)."""
    return all(c.isascii() and c not in "<>&'" and (c >= " " or c in "\n\r\t") for c in v) and "\x7f" not in v


def indent_alike(v):
    """Whether minijinja's indent splits v into the lines Jinja2's does
    (and keeps a final line break; Python's str.splitlines also splits at \\r, \\v, \\f, \\x1c-\\x1e,
    \\x85, U+2028, U+2029: an engine difference, not a placement question)."""
    return not any(c in v for c in "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029") and not v.endswith("\n")


def generate(count, seed):
    rng = random.Random(seed)
    for i in range(count):
        places = []
        lines = []
        secrets = {}
        env = {}
        n = rng.randint(1, 3)
        for j in range(n):
            name = "s%d" % j
            env_name = "E%d" % j
            v = value(rng)
            secrets[name] = v
            env[env_name] = v
            context = rng.randrange(len(CONTEXTS))
            text, path, intended = CONTEXTS[context]
            expr, bare = expression(rng, name, env_name)
            while ("tojson" in expr and not tojson_alike(v)) or ("indent" in expr and not indent_alike(v)):
                expr, bare = expression(rng, name, env_name)
            key = "k%d" % j
            text = text.replace("k:", key + ":", 1).replace("keyed", "keyed%d" % j)
            lines.append(text.replace("{E}", expr))
            if path is None:
                continue
            path = [key if p == "k" else ("keyed%d" % j if p == "keyed" else p) for p in path]
            places.append(
                {"path": path, "bare": bare, "secret": name, "expr": expr, "context": context}
            )
        if rng.random() < 0.2:
            lines.append('raw: "{% raw %}{{ target.schema }}{% endraw %}"')
            places.append({"path": ["raw"], "literal": "{{ target.schema }}"})
        if rng.random() < 0.3:
            lines.append("rt: \"{{ variables('x') }}\"")
            places.append({"path": ["rt"], "literal": RUNTIME})
        lines.append("end: 1")
        newline = rng.choice(["\n"] * 6 + ["\r\n", "\r"])
        template = ("\n".join(lines) + rng.choice(["", "\n"])).replace("\n", newline)
        yield {
            "id": i,
            "template": template,
            "secrets": secrets,
            "env": env,
            "places": places,
        }


def json_value(text, path):
    # Mage's helper (mage_ai.data_preparation.shared.utils): enough for the stub.
    try:
        obj = json.loads(text)
    except Exception:
        return text
    for key in str(path).split("."):
        obj = obj.get(key.strip()) if isinstance(obj, dict) else obj
    return obj


def mage_render(text, case):
    secrets = case["secrets"]
    env = case["env"]
    return jinja2.Template(text).render(
        mage_secret_var=lambda name, **_: secrets.get(name),
        env_var=lambda name, default=None: env.get(name, default),
        json_value=json_value,
        variables=lambda name, **_: RUNTIME,
    )


def mage_load(text, case):
    return yaml.full_load(mage_render(text, case))


MISSING = object()


def at(doc, path):
    if path and path[0] == "@key":
        if not isinstance(doc, dict):
            return MISSING
        for k, v in doc.items():
            if v == path[1]:
                return k
        return MISSING
    for p in path:
        try:
            doc = doc[p]
        except Exception:
            return MISSING
    return doc


def value_as_yaml(case, place):
    """The collection a place's value is in YAML, or MISSING."""
    value = case.get("secrets", {}).get(place.get("secret"))
    if value is None:
        return MISSING
    try:
        return yaml.safe_load(value)
    except Exception:
        return MISSING


def intended_for(case, place):
    """The value Mage must read at a place, or MISSING when only Mage's own
    load of the template can say (shaped expressions)."""
    if "literal" in place:
        return place["literal"]
    if not place["bare"]:
        return MISSING
    v = case["secrets"][place["secret"]]
    return CONTEXTS[place["context"]][2](v)


def check_case(line):
    case = line["case"]
    output = line["output"]
    diagnostics = line["diagnostics"]
    names = set(case["secrets"]) | set(case["env"])
    values = [v for v in case["secrets"].values() if len(v) >= 8 and v not in case["template"]]
    for d in diagnostics:
        for v in values:
            if v in d["message"] or v in (d.get("name") or ""):
                return "a diagnostic shows a value"
    try:
        orig = mage_load(case["template"], case)
        orig_ok = True
    except Exception:
        orig, orig_ok = None, False
    keys = {p["path"][0] for p in case["places"] if p["path"][0] != "@key"} | {"end"}
    key_places = [p for p in case["places"] if p["path"][0] == "@key"]

    def right(doc):
        if not isinstance(doc, dict) or doc.get("end") != 1:
            return False
        if set(doc) - keys and len(set(doc) - keys) != len(key_places):
            return False
        for p in case["places"]:
            want = intended_for(case, p)
            if want is MISSING:
                continue
            if at(doc, p["path"]) != want:
                return False
        return True

    mage_right = orig_ok and right(orig)
    if output is None:
        errors = [d for d in diagnostics if d["severity"] == "error"]
        named = any(
            (d.get("name") in names)
            or any(re.search(r"\b%s\b" % n, d["message"]) for n in names)
            for d in errors
        )
        if not named:
            return "refused without naming a secret: %s" % [d["message"] for d in errors]
        if mage_right:
            return "OVER: refused although Mage's own load is right: %s" % [d["message"] for d in errors]
        return None
    try:
        ours = mage_load(output, case)
    except Exception as e:
        return "Mage cannot load the output: %s" % str(e).splitlines()[0]
    if not isinstance(ours, dict) or ours.get("end") != 1:
        return "the document's structure changed"
    extra = set(ours) - keys
    if len(extra) > len(key_places):
        return "keys injected: %d" % len(extra)
    warned = {d.get("name") for d in diagnostics if d["severity"] == "warning"}
    for d in diagnostics:
        if d["severity"] == "warning":
            warned |= set(re.findall(r"'(\w+)'", d["message"]))
    for p in case["places"]:
        got = at(ours, p["path"])
        want = intended_for(case, p)
        if want is MISSING and orig_ok:
            want = at(orig, p["path"])
        if want is MISSING:
            # A shaped expression where Mage's own load has no value here
            # (its file broke around the place): nothing says what is meant.
            continue
        if got == want:
            continue
        if (
            p.get("bare")
            and not isinstance(got, str)
            and (p["secret"] in warned or p["secret"].replace("s", "E") in warned)
        ):
            continue  # PyYAML resolves it to another type: warned
        if p.get("bare") and isinstance(got, (list, dict)) and (
            (orig_ok and got == at(orig, p["path"])) or got == value_as_yaml(case, p)
        ):
            # A JSON value read as a collection, as Mage reads it (where
            # Mage's own file fails to load elsewhere, the value alone says
            # what Mage reads at this place).
            continue
        return "place %s: Mage reads %r, intended %r" % (p["path"], shorten(got), shorten(want))
    escaped_breaks = any(c in v for v in case["secrets"].values() for c in "\u2028\u2029\ufeff")
    if mage_right and not escaped_breaks:
        # Double-quoted escaping of U+2028/U+2029 (which PyYAML keeps, but
        # folds the white space around) and of a BOM (which PyYAML counts no
        # column for) are the escapes Mage may not need.
        # Mage's pass over our output also reads the line ends of values
        # (\r\n, \r) as \n, which YAML reads alike.
        if newlines(mage_render(output, case)) != newlines(mage_render(case["template"], case)):
            return "bytes differ from Mage's where Mage's load is right"
    return None


def newlines(text):
    return re.sub(r"\r\n|\r", "\n", text)


def shorten(v):
    r = repr(v)
    return r if len(r) < 200 else r[:200] + "…"


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    sub.add_parser("check")
    args = parser.parse_args()
    out = sys.stdout
    if args.command == "generate":
        for case in generate(args.count, args.seed):
            out.write(json.dumps(case) + "\n")
        return
    for raw in sys.stdin:
        line = json.loads(raw)
        why = check_case(line)
        out.write(
            json.dumps(
                {
                    "id": line["case"]["id"],
                    "ok": why is None or why.startswith("OVER:"),
                    "over": why is not None and why.startswith("OVER:"),
                    "why": why,
                    "refused": line["output"] is None,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
