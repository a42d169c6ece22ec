//! The HTML pages: tera 2 templates embedded in the binary, each
//! overridable by a file of the same name in a templates directory, and
//! the one stylesheet.
//!
//! Invariants:
//! - every template is parsed at start-up ([`Pages::load`]), so a broken
//!   override stops the server with the template's name and the parse error
//!   instead of failing the first visitor;
//! - `.html` templates are auto-escaped (tera's default), so client-supplied
//!   text (a client name, a redirect URI) can never become markup;
//! - no template contains script: the pages work without JavaScript, and the
//!   Content-Security-Policy forbids script anyway;
//! - the stylesheet is served by this server (no CDN, no web fonts) at a
//!   URL carrying a hash of its content, so it can be cached for a year and
//!   still change when an override changes it.

use std::path::{Path, PathBuf};

/// The templates, by file name, with their embedded default.
pub const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "logged_out.html",
        include_str!("../templates/logged_out.html"),
    ),
];

/// The stylesheet's file name (overridable like the templates).
pub const STYLESHEET_NAME: &str = "latchkey.css";

/// The embedded stylesheet.
pub const STYLESHEET: &str = include_str!("../static/latchkey.css");

/// Why the pages could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// An override file exists but cannot be read.
    #[error("cannot read the template override {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A template does not parse, or refers to a missing one.
    #[error("the templates do not load: {0}")]
    Template(String),
    /// Rendering failed (a template uses a variable the page does not set).
    #[error("cannot render {name}: {message}")]
    Render {
        /// The template.
        name: String,
        /// The tera error.
        message: String,
    },
}

/// The loaded templates and stylesheet.
pub struct Pages {
    tera: tera::Tera,
    stylesheet: String,
    stylesheet_version: String,
    overridden: Vec<String>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("overridden", &self.overridden)
            .finish_non_exhaustive()
    }
}

/// Reads `directory/name` if it exists.
fn read_override(directory: Option<&Path>, name: &str) -> Result<Option<String>, PagesError> {
    let Some(directory) = directory else {
        return Ok(None);
    };
    let path = directory.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PagesError::Read { path, source }),
    }
}

impl Pages {
    /// The embedded pages, with any file of the same name in `overrides`
    /// used instead.
    pub fn load(overrides: Option<&Path>) -> Result<Pages, PagesError> {
        let mut overridden = Vec::new();
        let mut sources: Vec<(&str, String)> = Vec::with_capacity(TEMPLATES.len());
        for (name, embedded) in TEMPLATES {
            let source = match read_override(overrides, name)? {
                Some(text) => {
                    overridden.push(name.to_owned());
                    text
                }
                None => embedded.to_owned(),
            };
            sources.push((name, source));
        }
        let mut tera = tera::Tera::new();
        tera.add_raw_templates(
            sources
                .iter()
                .map(|(name, source)| (*name, source.as_str())),
        )
        .map_err(|error| PagesError::Template(error.to_string()))?;
        let stylesheet = match read_override(overrides, STYLESHEET_NAME)? {
            Some(text) => {
                overridden.push(STYLESHEET_NAME.to_owned());
                text
            }
            None => STYLESHEET.to_owned(),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, stylesheet.as_bytes());
        let stylesheet_version = digest
            .as_ref()
            .iter()
            .take(6)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(Pages {
            tera,
            stylesheet,
            stylesheet_version,
            overridden,
        })
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, PagesError> {
        self.tera
            .render(name, context)
            .map_err(|error| PagesError::Render {
                name: name.to_owned(),
                message: error.to_string(),
            })
    }

    /// The stylesheet.
    pub fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    /// A short hash of the stylesheet, for its URL.
    pub fn stylesheet_version(&self) -> &str {
        &self.stylesheet_version
    }

    /// The names of the files taken from the overrides directory.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_pages_load_and_escape() {
        let pages = Pages::load(None).unwrap();
        assert!(pages.overridden().is_empty());
        assert_eq!(pages.stylesheet(), STYLESHEET);
        assert_eq!(pages.stylesheet_version().len(), 12);
        let mut context = tera::Context::new();
        context.insert("base", "");
        context.insert("stylesheet", "/static/latchkey.css");
        context.insert("title", "<script>alert(1)</script>");
        context.insert("message", "m");
        context.insert("next_steps", &Vec::<String>::new());
        let html = pages.render("logged_out.html", &context).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        for (_, source) in TEMPLATES {
            assert!(!source.contains("<script"), "templates carry no script");
            assert!(!source.contains("style=\""), "no inline styles either");
        }
    }

    #[test]
    fn overrides_replace_files_and_broken_ones_are_reported() {
        let directory =
            std::env::temp_dir().join(format!("latchkey-pages-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            directory.join("logged_out.html"),
            "{% extends \"base.html\" %}{% block content %}Custom bye{% endblock content %}",
        )
        .unwrap();
        std::fs::write(directory.join(STYLESHEET_NAME), "body{color:red}").unwrap();
        let pages = Pages::load(Some(&directory)).unwrap();
        assert_eq!(pages.overridden(), ["logged_out.html", STYLESHEET_NAME]);
        assert_eq!(pages.stylesheet(), "body{color:red}");
        let mut context = tera::Context::new();
        context.insert("base", "");
        context.insert("stylesheet", "/s.css");
        context.insert("title", "t");
        let html = pages.render("logged_out.html", &context).unwrap();
        assert!(html.contains("Custom bye"), "{html}");

        std::fs::write(directory.join("error.html"), "{% if %}").unwrap();
        let error = Pages::load(Some(&directory)).unwrap_err();
        assert!(matches!(error, PagesError::Template(_)), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
