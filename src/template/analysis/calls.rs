//! Calls of the tracked functions in one tag's tokens, with their literal
//! arguments.

use minijinja::machinery::{Span, Token};

use super::{Function, Reference};

/// Finds `f(…)` calls to tracked functions in one tag's tokens.
pub(super) fn collect_references(tokens: &[(Token<'_>, Span)], out: &mut Vec<Reference>) {
    for (i, (token, span)) in tokens.iter().enumerate() {
        let Token::Ident(ident) = token else { continue };
        let Some(function) = Function::from_ident(ident) else {
            continue;
        };
        if i > 0 && matches!(tokens[i - 1].0, Token::Dot) {
            continue; // an attribute such as `x.env_var(…)`
        }
        if !matches!(tokens.get(i + 1), Some((Token::ParenOpen, _))) {
            // A bare name: the function used indirectly (`{% set f =
            // mage_secret_var %}`), its argument unknown here.
            out.push(Reference {
                function,
                name: None,
                has_default: false,
                offset: span.start_offset as usize,
            });
            continue;
        }
        let (args, closed) = call_arguments(&tokens[i + 2..]);
        let first = match args.first() {
            Some(arg) if closed => literal_argument(arg),
            // An unclosed call: its leading string is the name meant.
            Some(arg) => literal_argument(&arg[..arg.len().min(1)]),
            None => None,
        };
        // `none` (Python's default) is no default.
        let is_none = |t: &[(Token<'_>, Span)]| {
            matches!(t, [(Token::Ident("none" | "None"), _)])
                || matches!(
                    t,
                    [
                        (Token::Ident("default"), _),
                        (Token::Assign, _),
                        (Token::Ident("none" | "None"), _)
                    ]
                )
        };
        let has_default = args.iter().skip(1).any(|a| !is_none(a));
        out.push(Reference {
            function,
            name: first,
            has_default: function == Function::EnvVar && has_default,
            offset: span.start_offset as usize,
        });
    }
}

type Tokens<'a, 's> = &'a [(Token<'s>, Span)];

/// The top-level arguments of a call, up to its closing parenthesis, and
/// whether that parenthesis was found.
fn call_arguments<'a, 's>(tokens: Tokens<'a, 's>) -> (Vec<Tokens<'a, 's>>, bool) {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (j, (token, _)) in tokens.iter().enumerate() {
        match token {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::ParenClose | Token::BracketClose | Token::BraceClose if depth > 0 => depth -= 1,
            Token::ParenClose => {
                if j > start {
                    args.push(&tokens[start..j]);
                }
                return (args, true);
            }
            Token::Comma if depth == 0 => {
                args.push(&tokens[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    // An unclosed call (a syntax error the parser reports): keep what is there.
    if start < tokens.len() {
        args.push(&tokens[start..]);
    }
    (args, false)
}

/// The string an argument is, when it is a single literal (`'x'` or `name='x'`).
fn literal_argument(arg: Tokens<'_, '_>) -> Option<String> {
    let value = match arg {
        [(Token::Ident(_), _), (Token::Assign, _), rest @ ..] => rest,
        other => other,
    };
    match value {
        [(Token::Str(s), _)] => Some((*s).to_string()),
        [(Token::String(s), _)] => Some(s.to_string()),
        _ => None,
    }
}
