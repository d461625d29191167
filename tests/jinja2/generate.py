#!/usr/bin/env python3
"""Regenerates tests/jinja2/matrix.json: each template below rendered by real
Jinja2 the way Mage renders config (`jinja2.Template(text).render(**vars)`),
with Mage's template functions stubbed by their contract. The Rust test
`jinja2_conformance` renders every case through mage-secrets and compares
bytes.

    python3 tests/jinja2/generate.py > tests/jinja2/matrix.json
"""
import json
import os
import re
import sys

import jinja2

SECRETS = {
    "pg_pass": "p@ss w/rd&?=ä",
    "sa": '{"a": {"b": [1, 2]}, "u": "x"}',
    "token": "abc",
}
ENV = {"PGHOST": "db.example", "SCHEMAS": "raw, stage ,mart", "PORT": "5432"}


def mage_secret_var(name):
    """Mage's get_secret_value: the value, or None when it is not set."""
    return SECRETS.get(name)


def env_var(name, default=None):
    """Mage passes os.getenv."""
    return ENV.get(name, default)


def json_value(text, path):
    """Mage's mage_ai.shared.hash.get_json_value (dig over a dotted path)."""
    if not text:
        return text
    try:
        obj = json.loads(text)
    except Exception:
        return text
    keys = path.split(".") if isinstance(path, str) else path
    for key in keys:
        key = key.strip()
        match = re.split(r"\[(\d+)\]$", key)
        if len(match) > 1:
            k, index = list(filter(lambda x: x, match))
            obj = obj[k][int(index)]
        elif obj:
            obj = obj.get(key)
    return obj


CASES = [
    # --- filters: every Jinja2 builtin ---
    ("abs_int", "{{ -3|abs }}"),
    ("abs_float", "{{ -2.5|abs }}"),
    ("attr_on_dict_is_undefined", "[{{ {'a': 1}|attr('a') }}]"),
    ("attr_on_namespace", "{% set ns = namespace(x=3) %}{{ ns|attr('x') }}"),
    ("batch", "{{ [1,2,3,4,5]|batch(2)|list }}"),
    ("batch_fill", "{{ [1,2,3]|batch(2, 'x')|list }}"),
    ("capitalize", "{{ 'hELLO world'|capitalize }}"),
    ("center_odd", "[{{ 'ab'|center(7) }}]"),
    ("center_even", "[{{ 'abc'|center(6) }}]"),
    ("center_default", "[{{ 'abc'|center }}]"),
    ("count", "{{ [1,2]|count }}"),
    ("default_undefined", "{{ {}.nope|default('x') }}"),
    ("default_boolean", "{{ ''|default('x', true) }}"),
    ("default_none_is_kept", "{{ none|d('y') }}"),
    ("dictsort", "{{ {'b': 1, 'a': 2}|dictsort }}"),
    ("dictsort_by_value", "{{ {'b': 1, 'a': 2}|dictsort(by='value') }}"),
    ("dictsort_case", "{{ {'B': 1, 'a': 2}|dictsort(true) }}"),
    ("dictsort_loop", "{% for k, v in {'b': 1, 'a': 2}|dictsort(reverse=true) %}{{ k }}={{ v }};{% endfor %}"),
    ("escape", "{{ '<a href=\"x\">&\\'</a>'|e }}"),
    ("escape_twice", "{{ '<b>'|escape|escape }}"),
    ("filesizeformat_1000", "{{ 1000|filesizeformat }}"),
    ("filesizeformat_big", "{{ 123456789|filesizeformat }}"),
    ("filesizeformat_binary", "{{ 1024|filesizeformat(true) }}"),
    ("filesizeformat_one", "{{ 1|filesizeformat }}"),
    ("first_list", "{{ [3,2,1]|first }}"),
    ("first_string", "{{ 'abc'|first }}"),
    ("float_string", "{{ '3.5'|float }}"),
    ("float_bad", "{{ 'x'|float }}"),
    ("float_int", "{{ 3|float }}"),
    ("forceescape", "{{ '<b>'|forceescape }}"),
    ("format_args", "{{ '%s-%d'|format('a', 3) }}"),
    ("format_float", "{{ '%05.2f'|format(3.14159) }}"),
    ("format_kwargs", "{{ '%(a)s!'|format(a=1) }}"),
    ("groupby_loop", "{% for g in [{'k': 'a', 'v': 1}, {'k': 'b', 'v': 2}, {'k': 'a', 'v': 3}]|groupby('k') %}{{ g.grouper }}:{{ g.list|map(attribute='v')|join(',') }};{% endfor %}"),
    ("groupby_unpack", "{% for k, items in [{'k': 'a'}, {'k': 'b'}]|groupby('k') %}{{ k }}{{ items|length }}{% endfor %}"),
    ("indent", "{{ 'a\nb\n\nc'|indent }}"),
    ("indent_first", "{{ 'a\nb'|indent(2, true) }}"),
    ("indent_blank", "{{ 'a\n\nb'|indent(4, blank=true) }}"),
    ("indent_string", "{{ 'a\nb'|indent('> ') }}"),
    ("int_string", "{{ '42'|int }}"),
    ("int_float_string", "{{ '4.7'|int }}"),
    ("int_bad", "{{ 'x'|int }}"),
    ("int_default", "{{ 'x'|int(7) }}"),
    ("int_base", "{{ '0x1A'|int(0, 16) }}"),
    ("int_float", "{{ 3.9|int }}"),
    ("items_list", "{{ {'a': 1}|items|list }}"),
    ("items_loop", "{% for k, v in {'a': 1, 'b': 2}|items %}{{ k }}{{ v }}{% endfor %}"),
    ("join", "{{ [1,2,3]|join('-') }}"),
    ("join_attribute", "{{ [{'n': 'a'}, {'n': 'b'}]|join(',', attribute='n') }}"),
    ("join_default", "{{ ['a', 'b']|join }}"),
    ("last", "{{ [1,2,3]|last }}"),
    ("length_string", "{{ 'abc'|length }}"),
    ("length_dict", "{{ {'a': 1}|length }}"),
    ("list_string", "{{ 'ab'|list }}"),
    ("list_dict", "{{ {'a': 1}|list }}"),
    ("lower", "{{ 'ABC'|lower }}"),
    ("map_filter", "{{ ['a','b']|map('upper')|list }}"),
    ("map_attribute", "{{ [{'n': 1}]|map(attribute='n')|list }}"),
    ("map_sum", "{{ ['1','2']|map('int')|sum }}"),
    ("max", "{{ [3,1,2]|max }}"),
    ("min_case", "{{ ['b','A','c']|min }}"),
    ("max_attribute", "{{ [{'v': 2}, {'v': 5}]|max(attribute='v') }}"),
    ("pprint_dict", "{{ {'b': 1, 'a': [1, 2]}|pprint }}"),
    ("pprint_string", "{{ 'x'|pprint }}"),
    ("pprint_none", "{{ none|pprint }}"),
    ("pprint_long", "{{ {'key_number_one': 'a fairly long value', 'key_number_two': ['x', 'y', 'z'], 'k3': {'nested': 1}}|pprint }}"),
    ("random_one", "{{ [7]|random }}"),
    ("select", "{{ [1,2,3,4]|select('odd')|list }}"),
    ("select_arg", "{{ [1,2,3]|select('greaterthan', 1)|list }}"),
    ("reject", "{{ [1,2,3,4]|reject('odd')|list }}"),
    ("selectattr", "{{ [{'a': true}, {'a': false}]|selectattr('a')|list }}"),
    ("rejectattr", "{{ [{'a': 1}, {'a': 2}]|rejectattr('a', 'equalto', 1)|list }}"),
    ("replace", "{{ 'aaa'|replace('a', 'b') }}"),
    ("replace_count", "{{ 'aaa'|replace('a', 'b', 2) }}"),
    ("reverse_string", "{{ 'abc'|reverse }}"),
    ("reverse_list", "{{ [1,2]|reverse|list }}"),
    ("round_half", "{{ 2.5|round }}"),
    ("round_half_odd", "{{ 3.5|round }}"),
    ("round_precision", "{{ 3.14159|round(2) }}"),
    ("round_ceil", "{{ 2.1|round(0, 'ceil') }}"),
    ("round_floor", "{{ 2.9|round(method='floor') }}"),
    ("round_int", "{{ 42|round }}"),
    ("safe", "{{ '<b>'|safe }}"),
    ("slice", "{{ [1,2,3,4,5]|slice(2)|list }}"),
    ("sort", "{{ [3,1,2]|sort }}"),
    ("sort_case", "{{ ['b','A','c']|sort }}"),
    ("sort_case_sensitive", "{{ ['b','A','c']|sort(case_sensitive=true) }}"),
    ("sort_attribute", "{{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }}"),
    ("sort_reverse", "{{ [3,1]|sort(reverse=true) }}"),
    ("string_none", "{{ none|string }}"),
    ("string_list", "{{ [1, 'a']|string }}"),
    ("string_bool", "{{ true|string }}"),
    ("striptags", "{{ '<p>a  <b>b</b>\n c</p> &amp; d'|striptags }}"),
    ("sum", "{{ [1,2,3]|sum }}"),
    ("sum_float", "{{ [1.5, 2]|sum }}"),
    ("sum_attribute", "{{ [{'v': 1}, {'v': 2}]|sum(attribute='v') }}"),
    ("sum_start", "{{ [1]|sum(start=10) }}"),
    ("title", "{{ 'hello wORLD-foo (bar)'|title }}"),
    ("tojson_escapes", "{{ {'b': 'ä', 'a': '<&\\'>'}|tojson }}"),
    ("tojson_scalars", "{{ [1, none, true, 2.5]|tojson }}"),
    ("tojson_indent", "{{ {'a': {'b': 1}, 'c': []}|tojson(indent=2) }}"),
    ("tojson_astral", "{{ '\U0001F600'|tojson }}"),
    ("trim", "[{{ '  a  '|trim }}]"),
    ("trim_chars", "{{ 'xxaxx'|trim('x') }}"),
    ("truncate", "{{ 'foo bar baz qux'|truncate(9) }}"),
    ("truncate_killwords", "{{ 'foo bar baz qux'|truncate(9, true) }}"),
    ("truncate_end", "{{ 'foo bar baz qux'|truncate(11, false, '!', 0) }}"),
    ("truncate_leeway", "{{ 'foo bar baz qux'|truncate(14) }}"),
    ("unique", "{{ [1,2,1,3]|unique|list }}"),
    ("unique_case", "{{ ['a','A']|unique|list }}"),
    ("upper", "{{ 'abc'|upper }}"),
    ("urlencode_string", "{{ 'a b&c/d?é'|urlencode }}"),
    ("urlencode_dict", "{{ {'a': 'x y', 'b': 1}|urlencode }}"),
    ("urlencode_secret", "postgresql://u:{{ mage_secret_var('pg_pass')|urlencode }}@h/db"),
    ("urlize", "{{ 'see http://example.com/x, or www.example.org.'|urlize }}"),
    ("urlize_email", "{{ 'mail a@b.com now'|urlize }}"),
    ("urlize_trim", "{{ 'http://x.io/aaaaaaaaaaaa'|urlize(10) }}"),
    ("urlize_domain", "{{ 'go to example.com'|urlize }}"),
    ("urlize_escape", "{{ 'a < b'|urlize }}"),
    ("wordcount", "{{ 'one two, three'|wordcount }}"),
    ("wordwrap", "{{ 'a long line of words that should wrap somewhere'|wordwrap(10) }}"),
    ("wordwrap_long_word", "{{ 'aaaaaaaaaaaaaaa bb'|wordwrap(5) }}"),
    ("wordwrap_keep_long", "{{ 'aaaaaaaaaaaaaaa bb'|wordwrap(5, false) }}"),
    ("xmlattr", "<a{{ {'class': 'a b', 'id': none, 'data': '<x>'}|xmlattr }}>"),
    ("xmlattr_nospace", "<a {{ {'a': 1}|xmlattr(false) }}>"),
    ("filter_block", "{% filter upper %}abc{% endfilter %}"),
    # --- filters minijinja has and Jinja2 lacks: errors in both ---
    ("split_is_not_a_filter", "{{ 'a,b'|split(',') }}"),
    ("lines_is_not_a_filter", "{{ 'a'|lines }}"),
    ("bool_is_not_a_filter", "{{ 'a'|bool }}"),
    ("chain_is_not_a_filter", "{{ [1]|chain([2])|list }}"),
    ("zip_is_not_a_filter", "{{ [1]|zip([2])|list }}"),
    ("startingwith_is_not_a_test", "{{ 'ab' is startingwith('a') }}"),
    ("unknown_filter_in_dead_branch", "{% if false %}{{ 'a'|nosuch }}{% endif %}ok"),
    # --- tests: every Jinja2 builtin ---
    ("test_boolean", "{{ true is boolean }} {{ 1 is boolean }}"),
    ("test_callable", "{{ range is callable }} {{ 1 is callable }}"),
    ("test_defined", "{{ {}.nope is defined }} {{ {}.nope is undefined }} {{ 1 is defined }}"),
    ("test_divisibleby", "{{ 9 is divisibleby(3) }} {{ 9 is divisibleby 2 }}"),
    ("test_eq", "{{ 1 is eq(1) }} {{ 1 is equalto 2 }} {{ [1, 2]|select('==', 1)|list }}"),
    ("test_ne", "{{ 1 is ne(1) }} {{ [1, 2]|select('!=', 1)|list }}"),
    ("test_escaped", "{{ '<'|e is escaped }} {{ 'x' is escaped }}"),
    ("test_even_odd", "{{ 2 is even }} {{ 2 is odd }}"),
    ("test_true_false", "{{ true is true }} {{ 0 is false }} {{ false is false }}"),
    ("test_filter_test", "{{ 'upper' is filter }} {{ 'split' is filter }} {{ 'odd' is test }} {{ 'startingwith' is test }}"),
    ("test_float_integer", "{{ 2.0 is float }} {{ 2 is integer }} {{ 2.0 is integer }} {{ true is integer }}"),
    ("test_comparisons", "{{ 2 is ge(2) }} {{ 2 is gt 1 }} {{ 2 is greaterthan 3 }} {{ 1 is le 1 }} {{ 1 is lt 1 }} {{ 1 is lessthan 2 }}"),
    ("test_comparison_symbols", "{{ [1, 2, 3]|select('<', 2)|list }} {{ [1, 2, 3]|select('<=', 2)|list }} {{ [1, 2, 3]|select('>', 2)|list }} {{ [1, 2, 3]|select('>=', 2)|list }}"),
    ("test_in", "{{ 2 is in [1, 2] }} {{ 'a' is in 'bc' }}"),
    ("test_iterable", "{{ [1] is iterable }} {{ 1 is iterable }} {{ 'a' is iterable }}"),
    ("test_lower_upper", "{{ 'ab' is lower }} {{ 'AB' is upper }} {{ 'aB' is lower }}"),
    ("test_mapping", "{{ {} is mapping }} {{ [] is mapping }}"),
    ("test_none", "{{ none is none }} {{ 0 is none }}"),
    ("test_number", "{{ 1 is number }} {{ 1.5 is number }} {{ '1' is number }}"),
    ("test_sameas", "{{ none is sameas none }} {{ true is sameas 1 }}"),
    ("test_sequence", "{{ [1] is sequence }} {{ 'a' is sequence }} {{ 1 is sequence }}"),
    ("test_string", "{{ 'a' is string }} {{ 1 is string }}"),
    ("test_not", "{{ 1 is not odd }}"),
    # --- globals ---
    ("range_list", "{{ range(3)|list }}"),
    ("range_printed", "{{ range(3) }}"),
    ("range_step", "{{ range(1, 10, 3)|list }} {{ range(1, 10, 3) }}"),
    ("dict", "{{ dict(a=1, b='x') }}"),
    ("lipsum", "{{ lipsum(1, false, 5, 10)|wordcount > 0 }}"),
    ("cycler", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{{ c.reset() }}{{ c.next() }}"),
    ("joiner", "{% set j = joiner(', ') %}{% for x in [1,2,3] %}{{ j() }}{{ x }}{% endfor %}"),
    ("namespace", "{% set ns = namespace(n=0) %}{% for x in [1,2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"),
    # --- Python methods ---
    ("str_split_env", "{{ env_var('SCHEMAS').split(',') }}"),
    ("str_split", "{{ 'a,b'.split(',') }}"),
    ("str_split_whitespace", "{{ 'a b  c'.split() }}"),
    ("str_split_max", "{{ 'a,b,c'.split(',', 1) }}"),
    ("str_strip_upper", "{{ '  x '.strip().upper() }}"),
    ("str_strip_chars", "{{ 'xxaxx'.strip('x') }}"),
    ("str_startswith", "{{ 'eu-west'.startswith('eu') }}"),
    ("str_startswith_tuple", "{{ 'eu-west'.startswith(('us', 'eu')) }}"),
    ("str_endswith", "{{ 'abc'.endswith('c') }}"),
    ("str_replace", "{{ 'aaa'.replace('a', 'b', 1) }}"),
    ("str_format", "{{ '{}-{}'.format('a', 1) }}"),
    ("str_format_named", "{{ '{name}!'.format(name='x') }}"),
    ("str_format_spec", "[{{ '{:>5}'.format('a') }}]"),
    ("str_join", "{{ ','.join(['a', 'b']) }}"),
    ("str_lower", "{{ 'ABC'.lower() }}"),
    ("str_title", "{{ 'hello world'.title() }}"),
    ("str_find", "{{ 'abc'.find('c') }} {{ 'abc'.find('z') }}"),
    ("str_zfill", "{{ '42'.zfill(5) }} {{ '-42'.zfill(5) }} {{ 'abc'.zfill(2) }}"),
    ("str_splitlines", "{{ 'a\nb'.splitlines() }}"),
    ("str_capitalize", "{{ 'abc'.capitalize() }}"),
    ("str_count", "{{ 'abcabc'.count('b') }}"),
    ("str_rfind", "{{ 'abcabc'.rfind('c') }}"),
    ("str_lstrip_rstrip", "[{{ '  x'.lstrip() }}|{{ 'x  '.rstrip() }}]"),
    ("str_is", "{{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ 'ABC'.isupper() }} {{ 'abc'.islower() }}"),
    ("dict_items", "{{ {'a': 1}.items() }}"),
    ("dict_keys", "{{ {'a': 1}.keys() }}"),
    ("dict_values", "{{ {'a': 1}.values() }}"),
    ("dict_get", "{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 'd') }} {{ {'a': 1}.get('b') }}"),
    ("dict_items_loop", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"),
    ("list_count", "{{ [1, 1, 2].count(1) }}"),
    # --- % formatting ---
    ("percent_tuple", "{{ '%s-%d' % ('a', 3) }}"),
    ("percent_single", "{{ '%s!' % 'x' }}"),
    ("percent_float", "{{ '%05.1f' % 3.14159 }}"),
    ("percent_dict", "{{ '%(a)s' % {'a': 1} }}"),
    ("percent_numbers", "{{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 7 % -3 }}"),
    ("percent_chain", "{{ '%s' % 'a' ~ '%d' % 2 }}|{{ 2 * 7 % 4 }}|{{ '%s=%s' % (env_var('PGHOST'), 1 + 1) }}"),
    ("percent_filter_operand", "{{ '%s!' % 'x'|upper }} {{ '<%s>' % ['a', 'b']|join(',') }}"),
    ("percent_in_set", "{% set s = 'n=%d' % 3 %}{{ s }}"),
    ("percent_literal_sign", "{{ '100%' }} {{ '%d%%' % 50 }}"),
    # --- printing ---
    ("tuple_literal", "{{ ('a', 2) }}"),
    ("list_of_tuples", "{{ [('a', 2)] }}"),
    ("tuple_set", "{% set t = ('a', 1) %}{{ t }} {{ t[1] }} {{ t|length }} {{ t|join('-') }} {{ t|list }}"),
    ("tuple_index", "{{ (1, 2)[0] }} {{ ('x',) }} {{ () }}"),
    ("tuple_in", "{{ 'a' in ('a', 'b') }}"),
    ("tuple_loop", "{% for a, b in [('x', 1), ('y', 2)] %}{{ a }}{{ b }}{% endfor %}"),
    ("dictsort_first", "{{ {'b': 1, 'a': 2}|dictsort|first }}"),
    ("grouping_parens", "{{ (1 + 2) * 3 }} {{ ('a') }}"),
    ("list_mixed", "{{ [1, 'a', none, true, 2.5] }}"),
    ("dict_quote", "{{ {'a': 'it\\'s', 'b': \"q\\\"\"} }}"),
    ("nested", "{{ {'a': [1, {'b': none}]} }}"),
    ("float_one", "{{ 1.0 }}"),
    ("float_sum", "{{ 0.1 + 0.2 }}"),
    ("float_big", "{{ 1e20 }} {{ 100000000000000000.0 }} {{ 1e15 }}"),
    ("float_small", "{{ 1e-5 }} {{ 0.0001 }}"),
    ("division", "{{ 1/3 }} {{ 10/2 }} {{ 7//2 }} {{ -7//2 }}"),
    ("power", "{{ 2**10 }} {{ 2**0.5 }}"),
    ("big_int", "{{ 123456789012345678901234567890 }}"),
    ("none_bool", "{{ none }} {{ true }} {{ false }}"),
    ("empty_containers", "{{ [] }} {{ {} }}"),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true }}"),
    ("string_repeat", "{{ 3 * 'ab' }} {{ [1] + [2] }}"),
    ("in_string", "{{ 'ab' in 'cabd' }}"),
    ("float_trailing", "{{ 2.50 }}"),
    ("json_value_scalar", "{{ json_value(mage_secret_var('sa'), 'u') }}"),
    ("json_value_list", "{{ json_value(mage_secret_var('sa'), 'a.b') }}"),
    ("json_value_dict", "{{ json_value(mage_secret_var('sa'), 'a') }}"),
    # --- loop helpers ---
    ("loop_counters", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
    ("loop_cycle", "{% for x in [1,2,3] %}{{ loop.cycle('a', 'b') }}{% endfor %}"),
    ("loop_prev_next", "{% for x in [1,2] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}"),
    ("loop_changed", "{% for x in [1,1,2] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}"),
    ("loop_recursive", "{% for x in [{'c': [{'c': []}]}] recursive %}{{ loop.depth }}{{ loop.depth0 }}{{ loop(x.c) }}{% endfor %}"),
    ("loop_else", "{% for x in [] %}a{% else %}empty{% endfor %}"),
    ("loop_filter", "{% for x in [1,2,3] if x > 1 %}{{ x }}{{ loop.index }}{% endfor %}"),
    ("loop_string_in_variable", "{% set s = 'xy' %}{% for c in s %}{{ c }}{{ loop.revindex }}{{ loop.last }}{% endfor %}"),
    ("loop_unpack", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"),
    # --- statements ---
    ("macro", "{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, b=2) }}"),
    ("call_block", "{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}x{% endcall %}"),
    ("set_block", "{% set x %}a{{ 1 }}{% endset %}{{ x }}"),
    ("with", "{% with a = 1 %}{{ a }}{% endwith %}"),
    ("raw", "{% raw %}{{ x }}{% endraw %}"),
    ("whitespace_control", "a  {%- if true -%}  b  {%- endif -%}  c"),
    ("conditional_expr", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 }}"),
    ("comment", "a{# c #}b"),
    ("trailing_newline", "a{{ '' }}\n"),
    # --- Mage's functions ---
    ("secret", "{{ mage_secret_var('token') }}"),
    ("secret_keyword", "{{ mage_secret_var(name='token') }}"),
    ("env_var", "{{ env_var('PGHOST') }}"),
    ("env_var_default", "{{ env_var('NOPE', 'd') }} {{ env_var('NOPE', default=5) }}"),
    ("env_var_int", "{{ env_var('PORT')|int + 1 }}"),
    ("tuple_in_percent", "{{ '%s' % ((1, 2),) }} {{ '%s' % {'a': (1,)} }}"),
    ("tuple_in_format", "{{ '{}'.format((1, 2)) }} {{ '{} {}'.format(('a',), [(1, 2)]) }}"),
    ("items_joined", "{{ {'a': 1}.items()|join(',') }} {{ {'b': 1, 'a': 2}|dictsort|join(';') }}"),
    ("url_with_secret", "{{ 'postgresql://u:' ~ mage_secret_var('pg_pass')|urlencode ~ '@' ~ env_var('PGHOST') ~ '/db' }}"),
]


def main():
    out = []
    names = set()
    for name, template in CASES:
        assert name not in names, name
        names.add(name)
        case = {"name": name, "template": template}
        try:
            case["output"] = jinja2.Template(template).render(
                mage_secret_var=mage_secret_var, env_var=env_var, json_value=json_value
            )
        except Exception as e:  # Mage fails to render this file
            case["error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    json.dump(
        {"jinja2": jinja2.__version__, "secrets": SECRETS, "env": ENV, "cases": out},
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
