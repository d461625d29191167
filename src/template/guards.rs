//! What a render may not do: print more than the output limit (counted as
//! expressions print, and checked before a width or count is allocated),
//! or show a secret's value in a message.

use super::analysis::{self, Analysis};
use crate::diagnostic::{Diagnostic, Kind};

/// The output limit of one file unless one is given: far above any config.
pub const DEFAULT_MAX_OUTPUT: usize = 64 << 20;

thread_local! {
    /// What the file being rendered on this thread may still print.
    pub(super) static OUTPUT_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Refuses, before anything is allocated, a string of `len` bytes that
/// would not fit what the file may still print (a padding width, a repeat
/// count): the same error as an output past the limit.
pub(crate) fn fits_output(len: usize) -> Result<(), minijinja::Error> {
    if len > OUTPUT_LEFT.get() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "output limit reached",
        ));
    }
    Ok(())
}

/// Every width and precision in a `%` (printf) or `str.format` format
/// string fits the output limit.
pub(crate) fn format_widths_fit(format: &str, printf: bool) -> Result<(), minijinja::Error> {
    let bytes = format.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let spec_start = if printf {
            (bytes[i] == b'%').then_some(i + 1)
        } else if bytes[i] == b'{' && bytes.get(i + 1) != Some(&b'{') {
            format[i..]
                .find('}')
                .and_then(|end| format[i..i + end].find(':').map(|colon| i + colon + 1))
        } else {
            None
        };
        let Some(mut j) = spec_start else {
            i += 1;
            continue;
        };
        // Numbers up to the conversion (printf) or the closing brace.
        while j < bytes.len() && !(printf && bytes[j].is_ascii_alphabetic()) && bytes[j] != b'}' {
            let start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > start {
                let n = format[start..j].parse::<usize>().unwrap_or(usize::MAX);
                fits_output(n)?;
            } else {
                j += 1;
            }
        }
        i = j.max(i + 1);
    }
    Ok(())
}

/// Engine messages may quote what an expression computed (an attribute
/// name, a format key): where that could be a secret's value, the message is
/// withheld. A message is withheld when it contains a used value (as it is,
/// upper- or lower-cased, or one of its lines), or when it is an engine
/// error at an expression that reads a secret.
pub(super) fn withhold_values(
    diagnostics: &mut [Diagnostic],
    used: &[(String, std::sync::Arc<crate::secret::SecretValue>)],
    source: &str,
    analysis: &Analysis,
) {
    if used.is_empty() || diagnostics.is_empty() {
        return;
    }
    let mut needles: Vec<String> = Vec::new();
    for (_, value) in used {
        let v = value.as_str();
        for variant in [v.to_string(), v.to_uppercase(), v.to_lowercase()] {
            needles.extend(
                std::iter::once(variant.trim().to_string())
                    .chain(variant.lines().map(|l| l.trim().to_string()))
                    .filter(|n| n.chars().count() >= 2),
            );
        }
    }
    // The lines of the secret references, in one pass over the source.
    let mut offsets: Vec<usize> = analysis
        .references
        .iter()
        .filter(|r| r.function == analysis::Function::SecretVar)
        .map(|r| r.offset)
        .collect();
    offsets.sort_unstable();
    let mut secret_lines = std::collections::HashSet::new();
    let (mut line, mut pos) = (1, 0);
    for offset in offsets {
        let offset = offset.min(source.len());
        line += source.as_bytes()[pos..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        pos = offset;
        secret_lines.insert(line);
    }
    for d in diagnostics.iter_mut() {
        let engine_error = d.message.starts_with("template error: ")
            && d.line.is_some_and(|l| secret_lines.contains(&l));
        // Our own messages are built from names and fixed texts only.
        let ours = matches!(
            d.kind,
            Kind::MissingSecret
                | Kind::UnsetEnvVar
                | Kind::ComputedName
                | Kind::Quoting
                | Kind::Yaml
        );
        let quotes_value = !ours
            && needles.iter().any(|n| {
                d.message.contains(n.as_str())
                    || d.help.as_deref().is_some_and(|h| h.contains(n.as_str()))
            });
        if engine_error || quotes_value {
            d.message = "the expression failed on a secret's value; its message is withheld, as it could show the value (check the filters, methods and attributes applied to it)".to_string();
            d.help = None;
        }
    }
}

/// The error for an output past the limit (no value in it).
pub(super) fn output_limit_error(limit: usize) -> String {
    format!(
        "the rendered output would be larger than {} (a loop or a repeated string?); nothing is written for this file. If the file is meant to be this large, raise --max-output",
        size_text(limit)
    )
}

/// `64 MiB`, `512 KiB`, `100 bytes`.
pub fn size_text(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}
