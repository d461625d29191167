//! PyYAML's YAML 1.1 implicit resolution of plain scalars, as Mage's
//! loader (`yaml.full_load`) applies it: which texts it reads as booleans,
//! numbers, null, dates or tags it cannot load.

/// Whether PyYAML resolves this plain scalar to a tag its full loader has no
/// constructor for (a merge key anywhere it would fail, the value key).
pub fn unloadable(value: &[u8]) -> bool {
    matches!(value, b"<<" | b"=")
}

/// Whether PyYAML (YAML 1.1 implicit resolvers) reads this plain scalar as
/// something other than the string of its characters, in a way that is not
/// the obvious reading (`true`, `5432`, `1.5` are read as meant).
pub fn resolves_otherwise(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return true,
        "yes" | "Yes" | "YES" | "no" | "No" | "NO" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return true
        }
        _ => {}
    }
    let obvious_int = {
        let d = s.strip_prefix('-').unwrap_or(s);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && (d == "0" || !d.starts_with('0'))
    };
    if obvious_int {
        return false;
    }
    is_yaml11_int(s) || is_yaml11_float(s) && !obvious_float(s) || is_yaml11_timestamp(s)
}

fn digits_(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c == '_' || c.is_digit(radix))
}

fn is_yaml11_int(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    if let Some(b) = t.strip_prefix("0b") {
        return digits_(b, 2);
    }
    if let Some(x) = t.strip_prefix("0x") {
        return digits_(x, 16);
    }
    if t == "0" {
        return true;
    }
    if let Some(o) = t.strip_prefix('0') {
        return digits_(o, 8);
    }
    if t.starts_with(|c: char| ('1'..='9').contains(&c)) {
        let mut parts = t.split(':');
        let head = parts.next().unwrap_or("");
        if !digits_(head, 10) {
            return false;
        }
        return parts.all(sexagesimal_part);
    }
    false
}

/// `[0-5]?[0-9]`
fn sexagesimal_part(p: &str) -> bool {
    let b = p.as_bytes();
    match b {
        [d] => d.is_ascii_digit(),
        [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
        _ => false,
    }
}

fn is_yaml11_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some((head, frac)) = t.split_once('.') {
        if head.contains(':') {
            let mut parts = head.split(':');
            let first = parts.next().unwrap_or("");
            return first.starts_with(|c: char| c.is_ascii_digit())
                && digits_(first, 10)
                && parts.all(sexagesimal_part)
                && frac.chars().all(|c| c == '_' || c.is_ascii_digit());
        }
    }
    // Mantissa then an optional exponent with a sign.
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    if let Some(exp) = exponent {
        let Some(digits) = exp.strip_prefix(['-', '+']) else {
            return false;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let Some((head, frac)) = mantissa.split_once('.') else {
        return false;
    };
    let frac_ok = frac.chars().all(|c| c == '_' || c.is_ascii_digit());
    if head.is_empty() {
        // \.[0-9_]+ (no sign allowed by PyYAML's pattern)
        return s == t && !frac.is_empty() && frac_ok;
    }
    head.starts_with(|c: char| c.is_ascii_digit()) && digits_(head, 10) && frac_ok
}

/// A float written as Python prints it back: `1.5`, `-0.25`, `10.0`.
fn obvious_float(s: &str) -> bool {
    let t = s.strip_prefix('-').unwrap_or(s);
    let Some((head, frac)) = t.split_once('.') else {
        return false;
    };
    !head.is_empty()
        && head.bytes().all(|b| b.is_ascii_digit())
        && (head == "0" || !head.starts_with('0'))
        && !frac.is_empty()
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (frac == "0" || !frac.ends_with('0'))
}

fn is_yaml11_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit());
    if !(digit(0) && digit(1) && digit(2) && digit(3) && b.get(4) == Some(&b'-')) {
        return false;
    }
    if b.len() == 10 {
        return digit(5) && digit(6) && b[7] == b'-' && digit(8) && digit(9);
    }
    // Date and time: any form PyYAML's long pattern accepts starts with a
    // date and has a time after `T`, `t` or blanks; read it loosely (a
    // string of this shape is rare in a secret and reported only as a
    // warning).
    s.len() > 10 && s[5..].contains(':') && s[5..].split(['T', 't', ' ', '\t']).count() > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyyaml_resolution_is_followed() {
        for v in [
            "yes",
            "off",
            "0123",
            "1_000",
            "0x1F",
            "1:30",
            "190:20:30.15",
            "~",
            "null",
            "2001-12-14",
            "1.50",
            ".inf",
            "+5",
        ] {
            assert!(resolves_otherwise(v.as_bytes()), "{v}");
        }
        for v in [
            "true", "False", "5432", "-7", "1.5", "10.0", "abc", "09", "1e3", "0.5.1", "v1.2",
        ] {
            assert!(!resolves_otherwise(v.as_bytes()), "{v}");
        }
        assert!(unloadable(b"<<") && unloadable(b"=") && !unloadable(b"<<a"));
    }
}
