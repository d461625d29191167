use super::super::libyaml::Parser;
use super::*;

/// libyaml's events and kept values, or `None` when it fails.
fn libyaml(text: &str) -> Option<(Vec<Event>, Vec<Vec<u8>>)> {
    let mut values = Vec::new();
    let mut events = Vec::new();
    let mut p = Parser::new(text.as_bytes());
    loop {
        match p.next(&mut values, |_, _| true) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return Some((events, values)),
            Err(_) => return None,
        }
    }
}

fn same(a: &Event, b: &Event) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The contract: a text read here is read so by libyaml.
fn agrees(text: &str) -> bool {
    let mut values = Vec::new();
    let Some(fast) = events(text, |_, _| true, &mut values) else {
        return false;
    };
    let Some((slow, slow_values)) = libyaml(text) else {
        panic!("read here, refused by libyaml: {text:?}");
    };
    let matches = fast.len() == slow.len() && fast.iter().zip(&slow).all(|(a, b)| same(a, b));
    assert!(
        matches && values == slow_values,
        "{text:?}\nhere:    {fast:?}\nlibyaml: {slow:?}\nvalues {values:?} / {slow_values:?}"
    );
    true
}

#[test]
fn config_files_are_read_as_libyaml_reads_them() {
    for text in [
        "",
        "# only\n",
        "a: 1\nb:\n  c: x y\n  d: \"q\"\n# c\ne: 'z'  # t\n",
        "a:\n- 1\n- b: 2\n  c: 3\n-\nd: 4",
        "- a\n-  b: c\n   d: e\n",
        "a: 1\n\n\n# end\n",
        "a:\nb:",
        "a:   \n  b: 1\n",
        "a:\n  - x\n  - y\nb: 1\n",
        "a: \"\\x41\\u00e9\\U0001F600\\t\\\"\\\\ \\N\\_\\L\\P\\0\"\n",
        "a: 'it''s' # c\nb: ''\nc: \"\"\n",
        "url: http://x:80/#frag\nk: a#b\n",
        "  a: 1\n  b: 2\n",
        "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
        "\"k\": v\n'k2' : v2\nk3 :  v3  \n",
        "a: -1\nb: -x\nc: ?x\nd: :x\n",
        "key: ünïcødé ✓ 😀\n",
        "a:\n- \n-  # c\n- x\n",
        "x: 1\n\n   # indented comment\ny: 2\n",
    ] {
        assert!(agrees(text), "not read here: {text:?}");
    }
}

#[test]
fn other_yaml_is_left_to_libyaml() {
    for text in [
        "a: [1, 2]\n",
        "a: {b: 1}\n",
        "a: |\n  x\n",
        "a: >\n  x\n",
        "a: &x 1\nb: *x\n",
        "a: !tag 1\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "%YAML 1.1\n---\na: 1\n",
        "? a\n: 1\n",
        "a: b\n  c\n",
        "a: \"b\n  c\"\n",
        "a:\tb\n",
        "a: b\r\n",
        "\u{feff}a: 1\n",
        "a: b\u{85}c\n",
        "- - a\n",
        "a: b: c\n",
        "a: 1\n- b\n",
        "- a\nb: 1\n",
        "top\n",
        "a:\n  value\n",
        "a: \"x\" y\n",
        "a: \"x\"#c\n",
        "a: \"\\q\"\n",
        "a: \"\\ud800\"\n",
        "a: - b\n",
        "  a: 1\nb: 2\n",
        "a: 1\n  b: 2\n",
        "a: \u{1}\n",
        "a: b:\n",
    ] {
        let mut values = Vec::new();
        assert!(
            events(text, |_, _| true, &mut values).is_none(),
            "read here: {text:?}"
        );
        assert!(values.is_empty());
    }
}

use proptest::prelude::*;

/// Lines made of the pieces config files (and mistakes) are made of.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        " ",
        "  ",
        "- ",
        "-",
        "key",
        "k2",
        ": ",
        ":",
        "\n",
        "\n",
        "\n  ",
        "\n    ",
        "#",
        " # c",
        "\"",
        "'",
        "''",
        "\\",
        "\\n",
        "\\x4",
        "\\u00e9",
        "x y",
        "-1",
        "?",
        "é",
        "😀",
        "[",
        "{",
        "&a",
        "*a",
        "!t",
        "|",
        ">",
        "---",
        "...",
        "\t",
        "\r",
        "http://h:1",
    ])
}

/// One line as config files write them, or nearly: an indent, `- `
/// markers, a key, a value, a comment.
fn line() -> impl Strategy<Value = String> {
    let indent = prop::sample::select(vec!["", "", "  ", "    ", " ", "   "]);
    let dashes = prop::sample::select(vec!["", "", "", "- ", "-  ", "-", "- - "]);
    let scalar = prop::sample::select(vec![
        "k",
        "key name",
        "\"q k\"",
        "'s k'",
        "-x",
        "a#b",
        "http://h:1/p",
        "1",
        "0123",
        "yes",
        "\"\\n\\x41\\u00e9\\\"\"",
        "'it''s'",
        "\"\"",
        "''",
        "é😀",
        "~",
        "x y ",
        "[a]",
        "{a: 1}",
        "&a x",
        "*a",
        "!t x",
        "|",
        ">",
        "? x",
        ": x",
        "\"open",
        "'open",
        "\"\\q\"",
        "a: b",
        "@x",
        "%x",
        "x\t",
        "---",
        "...",
        "x\r",
    ]);
    let colon = prop::sample::select(vec!["", ": ", ":", ":  ", " : "]);
    let comment = prop::sample::select(vec!["", "", " # c", "#c", "  #"]);
    let key = prop::option::weighted(0.9, scalar.clone());
    (
        indent,
        dashes,
        key,
        colon,
        prop::option::of(scalar),
        comment,
    )
        .prop_map(|(i, d, k, c, v, m)| {
            format!(
                "{i}{d}{}{c}{}{m}",
                k.unwrap_or_default(),
                v.unwrap_or_default()
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn whatever_is_read_here_is_read_so_by_libyaml(
        pieces in prop::collection::vec(piece(), 0..24)
    ) {
        let text: String = pieces.concat();
        agrees(&text);
    }

    #[test]
    fn config_like_lines_are_read_as_libyaml_reads_them(
        lines in prop::collection::vec(line(), 0..12),
        end in prop::sample::select(vec!["", "\n", "\n\n"]),
    ) {
        let text = lines.join("\n") + end;
        agrees(&text);
    }
}

#[test]
#[ignore]
fn hit_rate() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::default();
    let (mut read, mut all) = (0, 0);
    for _ in 0..20_000 {
        let lines = prop::collection::vec(line(), 0..12)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        all += 1;
        if agrees(&(lines.join("\n") + "\n")) {
            read += 1;
        }
    }
    println!("read here: {read} of {all}");
}
