//! The templates of `type: files`: the environment they render in, and what they see.

use minijinja::Environment;
use serde::Serialize;

use super::TemplateFile;

/// Two domains a path template is rendered for, to see it gives each its own file.
pub(super) const SAMPLE_DOMAINS: [&str; 2] = ["example.com", "example.org"];

/// `path` rendered for each of [`SAMPLE_DOMAINS`], with one RSA key.
pub(super) fn sample_paths(env: &Environment<'_>, path: &str) -> Result<[String; 2], String> {
    let render = |domain: &str| {
        let key = KeyView {
            selector: "rotor1".into(),
            algorithm: "rsa-2048".into(),
            k: "rsa",
            key_path: format!("/keys/{domain}.rotor1.pem"),
        };
        let view = View {
            domain: domain.into(),
            selector: Some(key.selector.clone()),
            algorithm: Some(key.algorithm.clone()),
            k: Some(key.k),
            key_path: Some(key.key_path.clone()),
            keys: vec![key],
            kept: Vec::new(),
        };
        env.render_str(path, &view).map_err(|err| err.to_string())
    };
    Ok([render(SAMPLE_DOMAINS[0])?, render(SAMPLE_DOMAINS[1])?])
}

/// Where templates render: an undefined variable is an error, block tags leave no blank line.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // A line holding only a block tag (`{% for … %}`) leaves no blank line behind.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

/// A rendered file's mode: its `mode:` (octal), or 0644.
pub(super) fn file_mode(file: &TemplateFile) -> Result<u32, String> {
    match &file.mode {
        None => Ok(0o644),
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| format!("invalid file mode {text:?}: write it in octal, like \"0644\"")),
    }
}

/// A key as templates see it.
#[derive(Serialize)]
pub(super) struct KeyView {
    pub(super) selector: String,
    pub(super) algorithm: String,
    pub(super) k: &'static str,
    pub(super) key_path: String,
}

/// Everything a template sees.
#[derive(Serialize)]
pub(super) struct View {
    pub(super) domain: String,
    pub(super) keys: Vec<KeyView>,
    pub(super) kept: Vec<KeyView>,
    pub(super) selector: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) k: Option<&'static str>,
    pub(super) key_path: Option<String>,
}
