//! Where the Jinja of a file lies in its YAML, for files Mage loads raw
//! and renders field by field (a pipeline's `metadata.yaml`): the file is
//! parsed as Mage parses it, without Jinja, and every `{{`, `{%` or `{#`
//! must sit inside the value of a field Mage renders.

use std::fmt;
use std::ops::Range;

use super::libyaml::{EventKind, Parser};

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path in the form `blocks[1].executor_config.namespace`.
pub struct FieldPath<'a>(pub &'a [Seg]);

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A Jinja construct outside the rendered fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outside {
    /// Byte offset of the construct's opening delimiter.
    pub offset: usize,
    /// Where it lies, in words: "the value of `name`", "a key in `blocks[0]`".
    pub place: String,
    /// Why that place is not rendered: "which Mage reads raw", ….
    pub why: &'static str,
}

const READ_RAW: &str = "which Mage reads raw";

/// The byte ranges of the Jinja constructs (`{{ }}`, `{% %}`, `{# #}`) in
/// `source`; an unclosed one runs to the end.
fn constructs(source: &str) -> Vec<Range<usize>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let close: &[u8] = match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') => b"}}",
            (b'{', b'%') => b"%}",
            (b'{', b'#') => b"#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let end =
            memchr::memmem::find(&bytes[i + 2..], close).map_or(bytes.len(), |p| i + 2 + p + 2);
        out.push(i..end);
        i = end;
    }
    out
}

enum Frame {
    Map {
        key: Option<Seg>,
        want_key: bool,
        as_key: bool,
    },
    Seq {
        next: usize,
        as_key: bool,
    },
}

fn path_of(frames: &[Frame]) -> Vec<Seg> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Map { key, .. } => key.clone(),
            Frame::Seq { next, .. } => Some(Seg::Index(*next)),
        })
        .collect()
}

fn value_done(frames: &mut [Frame]) {
    match frames.last_mut() {
        Some(Frame::Map { key, want_key, .. }) => {
            *key = None;
            *want_key = true;
        }
        Some(Frame::Seq { next, .. }) => *next += 1,
        None => {}
    }
}

/// The first Jinja construct of `source` that does not lie inside the
/// scalar value of a field `rendered` accepts, if any. A file that is not
/// YAML without its Jinja has every construct outside (Mage could not
/// read it).
pub fn first_outside(source: &str, rendered: impl Fn(&[Seg]) -> bool) -> Option<Outside> {
    let constructs = constructs(source);
    let first = constructs.first()?.clone();
    let mut parser = Parser::new(source.as_bytes());
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    // Scalars: their range, path, whether they are a key, whether rendered.
    let mut scalars: Vec<(Range<usize>, Vec<Seg>, bool, bool)> = Vec::new();
    // Single-quoted rendered values: Mage loads the YAML before it renders
    // the field, and the protection a value may need for Mage's pass
    // (`{{ '{{' }}`) does not fit inside single quotes.
    let mut single_quoted: Vec<(Range<usize>, Vec<Seg>)> = Vec::new();
    let mut alias = false;
    loop {
        let event = match parser.next(&mut values, |_, _| true) {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err((message, _, _)) => {
                return Some(Outside {
                    offset: first.start,
                    place: format!("a file that is not YAML without its Jinja ({message})"),
                    why: READ_RAW,
                })
            }
        };
        let is_key = matches!(frames.last(), Some(Frame::Map { want_key: true, .. }));
        match event.kind {
            EventKind::Scalar | EventKind::Alias => {
                let path = path_of(&frames);
                let text = event
                    .value
                    .map(|i| String::from_utf8_lossy(&values[i]).into_owned())
                    .unwrap_or_else(|| "*alias".into());
                if event.kind == EventKind::Scalar {
                    let ok = !is_key && rendered(&path);
                    if ok && !event.plain && !event.double_quoted && !event.block {
                        single_quoted.push((event.start..event.end, path.clone()));
                    }
                    scalars.push((event.start..event.end, path, is_key, ok));
                } else {
                    alias = true;
                }
                if let (true, Some(Frame::Map { key, want_key, .. })) = (is_key, frames.last_mut())
                {
                    *key = Some(Seg::Key(text));
                    *want_key = false;
                } else {
                    value_done(&mut frames);
                }
            }
            EventKind::CollectionStart => {
                if let (true, Some(Frame::Map { key, want_key, .. })) = (is_key, frames.last_mut())
                {
                    *key = Some(Seg::Key("<complex key>".into()));
                    *want_key = false;
                }
                frames.push(if event.mapping {
                    Frame::Map {
                        key: None,
                        want_key: true,
                        as_key: is_key,
                    }
                } else {
                    Frame::Seq {
                        next: 0,
                        as_key: is_key,
                    }
                });
            }
            EventKind::CollectionEnd => {
                let as_key = match frames.pop() {
                    Some(Frame::Map { as_key, .. } | Frame::Seq { as_key, .. }) => as_key,
                    None => false,
                };
                if !as_key {
                    value_done(&mut frames);
                }
            }
            EventKind::Other => {}
        }
    }
    if alias {
        // `*name` (or a `<<` merge) may repeat a rendered field's text where
        // Mage reads it raw.
        return Some(Outside {
            offset: first.start,
            place: "a file with YAML aliases".into(),
            why: "where an alias may repeat a rendered field's text in a field Mage reads raw",
        });
    }
    constructs.into_iter().find_map(|c| {
        // Mage renders each field alone: a tag (`{% set %}`, an `{% if %}`
        // spanning fields), a comment or whitespace control would act
        // across fields here and within one field there.
        let text = &source[c.clone()];
        if !text.starts_with("{{") || text.starts_with("{{-") || text.ends_with("-}}") {
            return Some(Outside {
                offset: c.start,
                place: "a tag, a comment or whitespace control".into(),
                why: "which act only within one field when Mage renders a pipeline's metadata field by field",
            });
        }
        if let Some((_, path)) = single_quoted
            .iter()
            .find(|(r, _)| r.start <= c.start && c.start < r.end)
        {
            return Some(Outside {
                offset: c.start,
                place: format!("the single-quoted value of `{}`", FieldPath(path)),
                why: "which Mage renders after loading the YAML, where the protection a value may need for that pass does not fit in single quotes (write it in double quotes)",
            });
        }
        let holder = scalars
            .iter()
            .rev()
            .find(|(r, ..)| r.start <= c.start && c.start < r.end);
        match holder {
            Some((r, _, _, true)) if c.end <= r.end => None,
            Some((_, path, true, _)) if path.is_empty() => Some(Outside {
                offset: c.start,
                place: "a top-level key".into(),
                why: READ_RAW,
            }),
            Some((_, path, true, _)) => Some(Outside {
                offset: c.start,
                place: format!("a key in `{}`", FieldPath(path)),
                why: READ_RAW,
            }),
            Some((_, path, false, _)) => Some(Outside {
                offset: c.start,
                place: format!("the value of `{}`", FieldPath(path)),
                why: READ_RAW,
            }),
            None => Some(Outside {
                offset: c.start,
                place: "no field's value (a comment, or YAML structure)".into(),
                why: READ_RAW,
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(path: &[Seg]) -> bool {
        matches!(path, [Seg::Key(a), Seg::Index(_), Seg::Key(b)] if a == "blocks" && b == "executor_type")
            || matches!(path, [Seg::Key(a)] if a == "executor_type")
    }

    #[test]
    fn jinja_inside_rendered_fields_only_is_accepted() {
        let src = "executor_type: \"{{ env_var('X') }}\"\nblocks:\n- uuid: a\n  executor_type: |\n    {{ mage_secret_var(\"e\") }}\nname: etl\n";
        assert_eq!(first_outside(src, namespace), None);
        assert_eq!(first_outside("name: etl\n", namespace), None);
    }

    #[test]
    fn single_quoted_values_and_aliases_are_not_rendered() {
        let quoted = "executor_type: '{{ mage_secret_var(\"e\") }}'\n";
        let out = first_outside(quoted, namespace).unwrap();
        assert_eq!(out.place, "the single-quoted value of `executor_type`");
        assert!(out.why.contains("double quotes"), "{}", out.why);
        let aliased =
            "blocks:\n- uuid: a\n  executor_type: &e \"{{ mage_secret_var('e') }}\"\nname: *e\n";
        let out = first_outside(aliased, namespace).unwrap();
        assert_eq!(out.place, "a file with YAML aliases");
        // Aliases in a file without Jinja change nothing.
        assert_eq!(first_outside("a: &x 1\nb: *x\n", namespace), None);
        // A tag or an anchor before the quote changes nothing.
        for prefix in ["!!str ", "&a "] {
            let src = format!("executor_type: {prefix}'{{{{ mage_secret_var(\"e\") }}}}'\n");
            let out = first_outside(&src, namespace).unwrap();
            assert!(
                out.place.starts_with("the single-quoted"),
                "{prefix}: {}",
                out.place
            );
        }
    }

    #[test]
    fn tags_comments_and_whitespace_control_are_not_rendered_as_one_template() {
        for src in [
            "executor_type: \"{% set ns = mage_secret_var('n') %}x\"\n",
            "executor_type: \"{% if false %}k8s\"\nblocks:\n- executor_type: \"x{% endif %}\"\n",
            "executor_type: \"{# note #}x\"\n",
            "executor_type: |\n  {{ mage_secret_var('n') -}}\nname: a\n",
            "executor_type: \"{{- mage_secret_var('n') }}\"\n",
        ] {
            let out = first_outside(src, namespace).unwrap_or_else(|| panic!("{src}"));
            assert_eq!(out.place, "a tag, a comment or whitespace control", "{src}");
        }
    }

    #[test]
    fn jinja_elsewhere_is_located_by_its_field() {
        let src =
            "blocks:\n- uuid: a\n  executor_type: x\n- uuid: \"{{ mage_secret_var('b') }}\"\n";
        let out = first_outside(src, namespace).unwrap();
        assert_eq!(out.offset, src.find("{{").unwrap());
        assert_eq!(out.place, "the value of `blocks[1].uuid`");
        let comment = "executor_type: x # {{ no }}\n";
        assert!(first_outside(comment, namespace)
            .unwrap()
            .place
            .contains("comment"));
        let key = "\"{{ k }}\": 1\n";
        assert_eq!(
            first_outside(key, namespace).unwrap().place,
            "a top-level key"
        );
        let broken = "executor_type: {{ x }\n";
        assert!(first_outside(broken, namespace)
            .unwrap()
            .place
            .contains("not YAML"));
    }
}
