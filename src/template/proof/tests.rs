use super::*;
use QuotingContext::*;

fn place(text: &str, needle: &str, intended: Option<&str>, context: QuotingContext) -> Place {
    let start = text.find(needle).expect("needle in text");
    Place {
        range: start..start + needle.len(),
        intended: intended.map(|s| zeroize::Zeroizing::new(s.to_string())),
        context,
    }
}

fn one(text: &str, needle: &str, intended: &str, context: QuotingContext) -> Vec<Finding> {
    prove(text, &[place(text, needle, Some(intended), context)])
}

#[test]
fn values_within_one_scalar_are_proven() {
    assert!(one("a: \"x\\\"y\"\n", "x\\\"y", "x\"y", DoubleQuoted).is_empty());
    assert!(one("a: 'it''s'\n", "it''s", "it's", SingleQuoted).is_empty());
    assert!(one("url: pre-abc-post\n", "abc", "abc", Plain).is_empty());
    assert!(one(
        "k: |\n  l1\n  l2\nn: 1\n",
        "l1\n  l2",
        "l1\nl2",
        Block { indent: 2 }
    )
    .is_empty());
    assert!(one("k: [1, abc]\n", "abc", "abc", Plain).is_empty());
    assert!(one("a: 1 # note abc\n", "note abc", "note abc", Comment).is_empty());
}

#[test]
fn cut_trimmed_and_injected_values_are_found() {
    assert_eq!(
        one("password: abc #def\n", "abc #def", "abc #def", Plain),
        vec![Finding::Structure { place: 0 }]
    );
    assert_eq!(
        one("password:   spaced  \n", "  spaced  ", "  spaced  ", Plain),
        vec![Finding::Structure { place: 0 }]
    );
    assert_eq!(
        one(
            "cert: |\n  x\nevil: injected\nother: 1\n",
            "x\nevil: injected",
            "x\nevil: injected",
            Block { indent: 2 }
        ),
        vec![Finding::Structure { place: 0 }]
    );
    assert_eq!(
        one("k: {a: x, b: 2}\n", "x, b: 2", "x, b: 2", Plain),
        vec![Finding::Structure { place: 0 }]
    );
    assert_eq!(
        one("# c abc\nd: e\n", "abc\nd: e", "abc\nd: e", Comment),
        vec![Finding::Structure { place: 0 }]
    );
}

#[test]
fn changed_values_are_found() {
    // Folded line ends, indentation taken by a block scalar.
    assert_eq!(
        one("k: a\n  b\n", "a\n  b", "a\n  b", Plain),
        vec![Finding::Changed { place: 0 }]
    );
    assert_eq!(
        one(
            "k: |\n   a\n   b\n",
            " a\n   b",
            " a\n b",
            Block { indent: 2 }
        ),
        vec![Finding::Changed { place: 0 }]
    );
    assert_eq!(
        one("k: >\n  a\n  b\n", "a\n  b", "a\nb", Block { indent: 2 }),
        vec![Finding::Changed { place: 0 }]
    );
}

#[test]
fn a_json_value_in_plain_context_may_become_a_collection() {
    assert!(one(
        "k: {\"a\": [1, 2]}\n",
        "{\"a\": [1, 2]}",
        "{\"a\": [1, 2]}",
        Plain
    )
    .is_empty());
    assert!(one("k: ['x', 'y']\n", "['x', 'y']", "['x', 'y']", Plain).is_empty());
    assert_eq!(one("k: [1] [2]\n", "[1] [2]", "[1] [2]", Plain).len(), 1);
    // PyYAML cannot use a mapping as a key: `{{ 7*7 }}` after Mage's pass.
    assert_eq!(
        one("k: {{ 7*7 }}\n", "{{ 7*7 }}", "{{ 7*7 }}", Plain).len(),
        1
    );
}

#[test]
fn pyyaml_resolution_is_reported() {
    assert_eq!(
        one("port: 0123\n", "0123", "0123", Plain),
        vec![Finding::Resolved { place: 0 }]
    );
    assert!(one("port: \"0123\"\n", "0123", "0123", DoubleQuoted).is_empty());
}

#[test]
fn several_places_in_one_scalar_are_found_in_order() {
    let text = "u: \"ab-ab\"\n";
    let places = [
        Place {
            range: 4..6,
            intended: Some(zeroize::Zeroizing::new("ab".into())),
            context: DoubleQuoted,
        },
        Place {
            range: 7..9,
            intended: Some(zeroize::Zeroizing::new("ab".into())),
            context: DoubleQuoted,
        },
    ];
    assert!(prove(text, &places).is_empty());
}

#[test]
fn syntax_errors_span_the_failing_node() {
    let text = "a: 1\n# c abc\nxyz\nuser: u\n";
    let found = prove(text, &[]);
    let [Finding::Syntax { span, message }] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert!(!message.contains('"'));
    assert!(span.start <= text.find("xyz").unwrap(), "{span:?}");
    let text = "# old password was old\nxyz\nuser: bob";
    let found = prove(text, &[]);
    let [Finding::Syntax { span, .. }] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert!(
        span.start <= text.find("xyz").unwrap(),
        "{span:?} {found:?}"
    );
}
