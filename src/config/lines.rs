//! Where in the YAML text an error found after parsing belongs: the line and column of a
//! domain entry or of the field a provider's or signer's error concerns.

/// Finds the first line (and its column) that `matches` (given the line without indentation or
/// list dash), for errors found after parsing.
pub(super) fn find_line(text: &str, matches: impl Fn(&str) -> bool) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(index, line)| {
        let trimmed = line.trim_start().trim_start_matches('-').trim_start();
        matches(trimmed).then(|| (index + 1, line.len() - trimmed.len() + 1))
    })
}

/// The line of the domain entry `name: <domain>`.
pub(super) fn domain_line(text: &str, domain: &str) -> Option<(usize, usize)> {
    find_line(text, |line| {
        line.strip_prefix("name:").is_some_and(|value| {
            let value = value.trim().trim_matches(['"', '\'']).trim_end_matches('.');
            value.eq_ignore_ascii_case(domain)
        })
    })
}

/// Errors inside a provider or signer entry (a `type`-tagged map, which serde reads as a whole)
/// come located at the entry's name: point them at the field they concern instead.
pub(super) fn refine(
    text: &str,
    (line, column): (usize, usize),
    message: String,
) -> (Option<(usize, usize)>, String) {
    let unchanged = (Some((line, column)), message.clone());
    let Some((section, rest)) = ["providers", "signers"]
        .iter()
        .find_map(|section| Some((*section, message.strip_prefix(section)?.strip_prefix(": ")?)))
    else {
        return unchanged;
    };
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(entry) = lines.get(line.wrapping_sub(1)) else {
        return unchanged;
    };
    let name = entry
        .trim()
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_matches(['"', '\'']);
    let unknown = rest
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next());
    for (offset, candidate) in lines[line..].iter().enumerate() {
        if candidate.trim().is_empty() {
            continue;
        }
        if indent(candidate) <= indent(entry) {
            break;
        }
        let Some((key, value)) = candidate.trim().split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']);
        let concerned = match unknown {
            Some(field) => key == field,
            None => value.len() >= 3 && rest.contains(value),
        };
        if concerned {
            let at = (line + offset + 1, indent(candidate) + 1);
            return (Some(at), format!("{section}.{name}.{key}: {rest}"));
        }
    }
    (Some((line, column)), format!("{section}.{name}: {rest}"))
}
