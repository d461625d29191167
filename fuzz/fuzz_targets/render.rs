//! Template analysis, quote-aware substitution and the YAML check, with no
//! I/O: any template with any secret value must render or fail with
//! diagnostics, never panic; a render that succeeds parses (what Mage reads,
//! after its Jinja pass); and a value placed in any quoting context either
//! reads back exactly or the render fails (the YAML-parser oracle).
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mage_secrets::template::{Engine, EnvVars, RenderOptions, SecretSource};
use mage_secrets::{Scope, SecretValue};
use serde::Deserialize;

struct OneSecret(Arc<SecretValue>);

impl SecretSource for OneSecret {
    fn lookup(
        &self,
        _chain: &[Scope],
        name: &str,
    ) -> mage_secrets::Result<Option<Arc<SecretValue>>> {
        Ok((name == "v").then(|| self.0.clone()))
    }
    fn environment(&self) -> &str {
        "fuzz"
    }
}

struct NoVars;

impl EnvVars for NoVars {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

/// What Mage's Jinja pass makes of an output's protections: one pass from
/// left to right, as Jinja reads it (replacing one pattern after another
/// would unescape text a first replacement produced).
fn mage_view(out: &str) -> String {
    const PROTECTIONS: [(&str, &str); 4] = [
        ("{{ '{{' }}", "{{"),
        ("{{ '{%' }}", "{%"),
        ("{{ '{#' }}", "{#"),
        ("{{ '{' }}", "{"),
    ];
    let mut view = String::with_capacity(out.len());
    let mut rest = out;
    while !rest.is_empty() {
        match PROTECTIONS.iter().find(|(p, _)| rest.starts_with(p)) {
            Some((p, text)) => {
                view.push_str(text);
                rest = &rest[p.len()..];
            }
            None => {
                let c = rest.chars().next().expect("not empty");
                view.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    view
}

/// The YAML-parser oracle: a template placing `v` in one context, and where
/// its loaded value is found.
const CONTEXTS: &[(&str, &[&str], bool)] = &[
    ("key: {{ mage_secret_var('v') }}\n", &["key"], false),
    ("key: \"{{ mage_secret_var('v') }}\"\n", &["key"], false),
    ("key: '{{ mage_secret_var('v') }}'\n", &["key"], false),
    (
        "key: |\n  {{ mage_secret_var('v') }}\nnext: 1\n",
        &["key"],
        true,
    ),
    (
        "key: |-\n  {{ mage_secret_var('v') }}\nnext: 1\n",
        &["key"],
        false,
    ),
    (
        "key: {a: {{ mage_secret_var('v') }}, b: 1}\n",
        &["key", "a"],
        false,
    ),
    (
        "key: [\"{{ mage_secret_var('v') }}\", x]\n",
        &["key", "0"],
        false,
    ),
    ("# {{ mage_secret_var('v') }}\nkey: 1\n", &[], false),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "template \x1f value": the value fills mage_secret_var('v').
    let (template, value) = text.split_once('\u{1f}').unwrap_or((text, "value"));
    let engine = Engine::new(
        Arc::new(OneSecret(Arc::new(SecretValue::new(value.to_string())))),
        Arc::new(NoVars),
    );
    let chain = [Scope::Global];
    for lenient in [false, true] {
        let options = RenderOptions {
            lenient,
            ..RenderOptions::default()
        };
        let file = engine.render(Path::new("fuzz.yaml"), template, &chain, &options, true);
        // A render that succeeds was proven: what Mage reads parses. (What
        // a partial render keeps, Mage fills in at run time: the proof reads
        // a stand-in there, this oracle cannot.)
        if let Some(out) = file.output.filter(|_| file.kept.is_empty()) {
            let view = mage_view(&out);
            for doc in serde_yaml::Deserializer::from_str(&view) {
                serde::de::IgnoredAny::deserialize(doc).expect("a proven output parses");
            }
        }
    }
    // Wherever a value is placed, a render that succeeds gives it back
    // exactly (or, in plain context, a collection or a warned resolution).
    for (template, path, clip) in CONTEXTS {
        let file = engine.render(
            Path::new("o.yaml"),
            template,
            &chain,
            &RenderOptions::default(),
            true,
        );
        let Some(out) = file.output else {
            // A refusal, whose messages never show the value. A message
            // that holds the value's text must be one the same template
            // gives for a stand-in of the same shape (its letters and
            // digits replaced): the words were the message's own (a value
            // " value" is in "cannot place this value").
            let stand_in: String = value
                .chars()
                .map(|c| if c.is_alphanumeric() { '\u{3a9}' } else { c })
                .collect();
            let neutral = Engine::new(
                Arc::new(OneSecret(Arc::new(SecretValue::new(stand_in)))),
                Arc::new(NoVars),
            )
            .render(Path::new("o.yaml"), template, &chain, &RenderOptions::default(), true);
            let messages = |f: &mage_secrets::template::FileRender| {
                f.diagnostics.iter().map(|d| d.message.clone()).collect::<Vec<_>>()
            };
            assert!(file.diagnostics.iter().any(|d| d.is_error()));
            let neutral = messages(&neutral);
            for message in messages(&file) {
                assert!(
                    value.len() < 4 || !message.contains(value) || neutral.contains(&message),
                    "a message shows the value: {message:?}"
                );
            }
            continue;
        };
        let doc: serde_yaml::Value = match serde_yaml::from_str(&mage_view(&out)) {
            Ok(doc) => doc,
            // An integer past 64 bits: PyYAML loads it (Python's ints, the
            // same digits), serde_yaml's value cannot hold it.
            Err(e) if e.to_string().contains(" as u128") || e.to_string().contains(" as i128") => {
                continue;
            }
            // A value read as a mapping (a JSON object in plain context)
            // with a key twice: PyYAML keeps the last, as `json.loads`
            // does; serde_yaml's value refuses it.
            Err(e) if e.to_string().contains("duplicate entry") => continue,
            Err(e) => panic!("a proven output parses: {e}"),
        };
        let mut node = &doc;
        for step in *path {
            node = match step.parse::<usize>() {
                Ok(i) => &node[i],
                Err(_) => &node[*step],
            };
        }
        if path.is_empty() {
            assert_eq!(
                doc["key"].as_u64(),
                Some(1),
                "a comment value stays in its comment"
            );
            continue;
        }
        let warned = file.diagnostics.iter().any(|d| !d.is_error());
        match node.as_str() {
            Some(s) => {
                let want = if *clip && !value.is_empty() && !value.ends_with('\n') {
                    format!("{value}\n")
                } else {
                    value.to_string()
                };
                assert!(
                    s == want || warned,
                    "{template:?}: read {s:?}, meant {want:?}"
                );
            }
            // Another type: PyYAML-style resolution, which is warned about,
            // or a JSON-like collection in plain context.
            None => assert!(
                warned
                    || node.is_mapping()
                    || node.is_sequence()
                    || template.starts_with("key: {{")
                    || template.contains("{a: {{"),
                "{template:?}: read {node:?}"
            ),
        }
    }
});
