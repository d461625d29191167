//! Jinja2's `urlize`: links for URLs and e-mail addresses in text.

use minijinja::value::{Rest, Value, ValueOrKwargs};
use minijinja::Error;

use super::filters::html_escape;
use super::{invalid, positional};
use crate::template::python;

/// Jinja2's `urlize`: words that look like URLs (`http://`, `https://`,
/// `www.`, a bare domain ending in `.com`, `.net` or `.org`) or e-mail
/// addresses become links with `rel="noopener"`; everything is escaped.
pub(super) fn urlize(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let kwargs = positional(
        &[
            "trim_url_limit",
            "nofollow",
            "target",
            "rel",
            "extra_schemes",
        ],
        args,
    )?;
    let trim_limit: Option<usize> = kwargs.get("trim_url_limit")?;
    let nofollow: Option<bool> = kwargs.get("nofollow")?;
    let target: Option<String> = kwargs.get("target")?;
    let rel: Option<String> = kwargs.get("rel")?;
    let extra_schemes: Option<Value> = kwargs.get("extra_schemes")?;
    kwargs.assert_all_used()?;
    if extra_schemes.is_some() {
        return Err(invalid("urlize: extra_schemes is not supported"));
    }
    let mut text = String::new();
    python::write_value(&mut text, value).map_err(|e| invalid(e.0))?;
    let mut rel_words: Vec<String> = rel
        .unwrap_or_else(|| "noopener".into())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if nofollow.unwrap_or(false) {
        rel_words.push("nofollow".into());
    }
    rel_words.sort();
    rel_words.dedup();
    let rel_attr = if rel_words.is_empty() {
        String::new()
    } else {
        format!(" rel=\"{}\"", html_escape(&rel_words.join(" ")))
    };
    let target_attr = target
        .map(|t| format!(" target=\"{}\"", html_escape(&t)))
        .unwrap_or_default();
    let trim = |u: &str| -> String {
        match trim_limit {
            Some(limit) if u.chars().count() > limit => {
                let cut: String = u.chars().take(limit).collect();
                format!("{cut}...")
            }
            _ => u.to_string(),
        }
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let ws = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&html_escape(&rest[..ws]));
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push_str(&urlize_word(&rest[..end], &rel_attr, &target_attr, &trim));
        rest = &rest[end..];
    }
    Ok(Value::from_safe_string(out))
}

pub(super) fn urlize_word(
    word: &str,
    rel: &str,
    target: &str,
    trim: &dyn Fn(&str) -> String,
) -> String {
    // Jinja2's `_lead_pattern` / `_trail_pattern`: punctuation around a URL.
    let lead_len = word.len()
        - word
            .trim_start_matches(['(', '<', '&', 'l', 't', ';'])
            .len();
    let lead_len = if word[..lead_len].chars().all(|c| c == '(') || word.starts_with("&lt;") {
        let head = word.chars().take_while(|c| *c == '(').count();
        if head > 0 {
            head
        } else if word.starts_with("&lt;") {
            4
        } else {
            0
        }
    } else {
        0
    };
    let (head, rest) = word.split_at(lead_len);
    let trail_start = rest
        .char_indices()
        .rev()
        .take_while(|(_, c)| matches!(c, '.' | ',' | ')' | '>' | '\n'))
        .last()
        .map_or(rest.len(), |(i, _)| i);
    let (mut middle, mut tail) = rest.split_at(trail_start);
    // Jinja2 keeps a closing parenthesis that belongs to the URL.
    let mut balanced = String::new();
    if middle.contains('(') && tail.starts_with(')') {
        let opens = middle.matches('(').count();
        let closes = middle.matches(')').count();
        if opens > closes {
            balanced = ")".repeat((opens - closes).min(tail.matches(')').count()));
            tail = &tail[balanced.len()..];
        }
    }
    let joined = format!("{middle}{balanced}");
    middle = &joined;
    let link = if middle.starts_with("https://") || middle.starts_with("http://") {
        Some(middle.to_string())
    } else if middle.starts_with("www.")
        || (!middle.contains('@')
            && !middle.starts_with("http")
            && !middle.is_empty()
            && middle
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && (middle.ends_with(".org") || middle.ends_with(".net") || middle.ends_with(".com"))
            && middle
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        Some(format!("https://{middle}"))
    } else {
        None
    };
    let body = if let Some(href) = link {
        format!(
            "<a href=\"{}\"{rel}{target}>{}</a>",
            html_escape(&href),
            html_escape(&trim(middle))
        )
    } else if is_email(middle) && !middle.contains(':') {
        format!(
            "<a href=\"mailto:{}\">{}</a>",
            html_escape(middle),
            html_escape(middle)
        )
    } else {
        html_escape(middle)
    };
    format!("{}{body}{}", html_escape(head), html_escape(tail))
}

/// Jinja2's `_email_re`: `^\S+@\w[\w.-]*\.\w+$`.
pub(super) fn is_email(s: &str) -> bool {
    let Some((user, domain)) = s.split_once('@') else {
        return false;
    };
    if user.is_empty() || user.chars().any(char::is_whitespace) {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let Some(first) = domain.chars().next() else {
        return false;
    };
    let Some(dot) = domain.rfind('.') else {
        return false;
    };
    word(first)
        && dot > 0
        && domain[..dot]
            .chars()
            .all(|c| word(c) || c == '.' || c == '-')
        && !domain[dot + 1..].is_empty()
        && domain[dot + 1..].chars().all(word)
}
