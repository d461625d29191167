use super::*;

#[test]
fn references_before_a_lexer_error_are_kept() {
    let src = "a: {{ mage_secret_var('one') }}\nb: \"{{ mage_secret_var('two') \"\nc: 1\n";
    let err = Analysis::of(src).unwrap_err();
    let names: Vec<_> = references_before(src, &err)
        .into_iter()
        .filter_map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["one"]);
}

#[test]
fn the_enclosing_block_of_a_place() {
    let src = "a: 1\n{% if x %}\nb: {{ y }}\n{% for i in z %}{{ i }}{% endfor %}\nc: {{ w }}\n{% endif %}\nd: {{ v }}\n";
    let analysis = Analysis::of(src).unwrap();
    let at = |needle: &str| src.find(needle).unwrap();
    assert_eq!(
        analysis.enclosing_block(src, at("{{ y }}")),
        Some(("if", at("{% if")))
    );
    assert_eq!(
        analysis.enclosing_block(src, at("{{ i }}")),
        Some(("for", at("{% for")))
    );
    assert_eq!(
        analysis.enclosing_block(src, at("{{ w }}")),
        Some(("if", at("{% if")))
    );
    assert_eq!(analysis.enclosing_block(src, at("{{ v }}")), None);
}

fn refs(src: &str) -> Vec<(Function, Option<String>, bool, usize)> {
    Analysis::of(src)
        .unwrap()
        .references
        .into_iter()
        .map(|r| (r.function, r.name, r.has_default, r.offset))
        .collect()
}

#[test]
fn finds_literal_and_computed_references_everywhere() {
    let src = "a: \"{{ mage_secret_var('pw') }}\"\n\
               {% if false %}b: {{ mage_secret_var(\"hidden\") }}{% endif %}\n\
               # c: {{ mage_secret_var('in_comment') }}\n\
               {# d: {{ mage_secret_var('jinja_comment') }} #}\n\
               e: {{ mage_secret_var(prefix ~ 'x') }}\n\
               f: {{ env_var('HOME') }} {{ env_var('X', 'd') }} {{ env_var('Y', default='d') }}\n\
               g: {% set v = mage_secret_var(name='kw') %}{{ obj.mage_secret_var('no') }}\n";
    let found = refs(src);
    let names: Vec<_> = found.iter().map(|r| (r.0, r.1.as_deref(), r.2)).collect();
    assert_eq!(
        names,
        vec![
            (Function::SecretVar, Some("pw"), false),
            (Function::SecretVar, Some("hidden"), false),
            (Function::SecretVar, Some("in_comment"), false),
            (Function::SecretVar, None, false),
            (Function::EnvVar, Some("HOME"), false),
            (Function::EnvVar, Some("X"), true),
            (Function::EnvVar, Some("Y"), true),
            (Function::SecretVar, Some("kw"), false),
        ]
    );
    assert_eq!(found[0].3, src.find("mage_secret_var").unwrap());
}

#[test]
fn expression_sites_and_contexts() {
    let src = "a: \"{{ x }}\"\nb: '{{- y -}}' \n{# c #}{% raw %}{{ z }}{% endraw %}\nd: {{ w }}\n";
    let a = Analysis::of(src).unwrap();
    let sites: Vec<_> = a
        .expressions
        .iter()
        .map(|s| {
            (
                &src[s.outer.clone()],
                &src[s.inner.clone()],
                s.trim_before,
                s.trim_after,
                s.context,
            )
        })
        .collect();
    assert_eq!(
        sites,
        vec![
            ("{{ x }}", "x", false, false, QuotingContext::DoubleQuoted),
            ("{{- y -}}", "y", true, true, QuotingContext::SingleQuoted),
            ("{{ w }}", "w", false, false, QuotingContext::Plain),
        ]
    );
    assert!(!a.has_tags, "raw blocks and comments are not tags");
    assert_eq!(
        a.expression_at(src.find(" x ").unwrap() + 1).unwrap().outer,
        sites_outer(src, "{{ x }}")
    );
    // Segments cover the source exactly.
    let mut covered = String::new();
    for s in &a.segments {
        let r = match s {
            Segment::Raw(r) | Segment::Expression(r) | Segment::Tag(r) => r.clone(),
        };
        covered.push_str(&src[r]);
    }
    assert_eq!(covered, src.trim_end_matches('\n').to_string() + "\n");
}

fn sites_outer(src: &str, needle: &str) -> Range<usize> {
    let s = src.find(needle).unwrap();
    s..s + needle.len()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// The lexer-free scan gives exactly the lexer's analysis.
    #[test]
    fn simple_scan_agrees_with_the_lexer(pieces in proptest::collection::vec(proptest::sample::select(vec![
        "a: ", "\"", "'", "\n", "\r\n", " ", "\t", "# ", "- ", "key:", "|\n  ", "é", "{", "}", "%",
        "{{ mage_secret_var('pw') }}", "{{mage_secret_var(\"x_1\")}}", "{{ env_var('HOME') }}",
        "{{ env_var( 'A' , 'd' ) }}", "{{ env_var('P', 5432) }}", "{{\tmage_secret_var('t')\t}}",
        "{{ other('x') }}", "{{- mage_secret_var('a') }}", "{{ mage_secret_var('a') -}}",
        "{# c #}", "{% if x %}", "{{ env_var('A', 012) }}", "{{ mage_secret_var('a}}') }}",
        "{{ variables('t') }}", "{{ n_days_ago(1) }}", "{{ x | upper }}", "{{ '}}' }}",
        "{{ {'a': {'b': 1}} }}", "{{ 'a{{b' }}", "{{ x }", "{{ x -}}", "{{ x +}}", "{{+ x }}",
        "{{ mage_secret_var('a') ~ 'b' }}", "{{ env_var('A') | default(mage_secret_var('b')) }}",
        "{{ mage_secret_var('a\\'b') }}", "{{ 'unterminated }}", "{{ x.env_var('y') }}",
        "{{ f(a=1) }}", "{{ x is defined }}", "{{}}", "{{ 1 -}}", "\r",
    ]), 0..14)) {
        let src = pieces.concat();
        if let Some(fast) = scan_simple(&src) {
            proptest::prop_assert_eq!(Some(fast), Analysis::lex(&src).ok(), "{:?}", src);
        }
    }
}

#[test]
fn simple_scan_takes_the_common_case_only() {
    assert!(scan_simple("a: \"{{ mage_secret_var('pw') }}\"\n").is_some());
    assert!(scan_simple("a: {{ env_var('P', 5432) }}").is_some());
    assert!(scan_simple("a: {{ mage_secret_var('pw') | upper }}").is_some());
    assert!(scan_simple("{% if x %}{% endif %}").is_none());
    assert!(scan_simple("a: {{- mage_secret_var('pw') }}").is_none());
}

#[test]
fn unclosed_tags_do_not_panic() {
    // Found by the fuzzer: the lexer ends an unclosed `{{` without an error.
    for src in ["\0{{", "{{", "a {%", "{{ x", "{% if"] {
        let _ = Analysis::of(src);
    }
}

#[test]
fn lexer_errors_have_offsets() {
    let err = Analysis::of("a: {{ 'unterminated }}").unwrap_err();
    assert!(err.offset.is_some());
    assert!(!has_template_syntax("plain: yaml"));
    assert!(has_template_syntax("{# c #}"));
}
