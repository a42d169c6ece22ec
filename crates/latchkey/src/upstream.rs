//! Upstream OpenID Connect providers from the configuration.
//!
//! Two sources, the first that has any winning whole (like `--resource`):
//! 1. one provider from flags or environment: `--upstream-issuer`
//!    (`LATCHKEY_UPSTREAM_ISSUER`), `--upstream-client-id`,
//!    `--upstream-client-secret` (hidden), `--upstream-id` (default
//!    `oidc`), `--upstream-display-name`,
//!    `--upstream-link-by-verified-email`, `--upstream-auto-provision`;
//! 2. `[[upstream]]` tables of the config file (any number).
//!
//! A file provider's client secret comes from, in order: the environment
//! variable `LATCHKEY_UPSTREAM_<ID>_CLIENT_SECRET` (`<ID>` upper-cased,
//! `-` as `_`), `client_secret_file` (trailing newline removed), or
//! `client_secret` in the file. Everything else is checked by
//! `UpstreamProvider::validate` before the server starts.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use latchkey_protocol::secret::SecretString;
use latchkey_service::upstream::config::env_name;
use latchkey_service::upstream::{UpstreamAlgorithm, UpstreamProvider};
use serde::Deserialize;

/// An `[[upstream]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub(crate) id: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) client_secret: Option<String>,
    #[serde(default)]
    pub(crate) client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) scopes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) link_by_verified_email: Option<bool>,
    #[serde(default)]
    pub(crate) auto_provision: Option<bool>,
    #[serde(default)]
    pub(crate) userinfo_fallback: Option<bool>,
    #[serde(default)]
    pub(crate) algorithms: Option<Vec<String>>,
}

/// The single provider configurable by flags or environment.
#[derive(Debug, Default, Args)]
pub(crate) struct UpstreamArgs {
    /// An upstream OpenID Connect provider to offer on the sign-in page (its
    /// issuer URL); replaces the config file's [[upstream]] tables.
    #[arg(long, env = "LATCHKEY_UPSTREAM_ISSUER", value_name = "URL")]
    pub(crate) upstream_issuer: Option<String>,
    /// The provider's id, used in the redirect URI /login/upstream/<ID>/callback [default: oidc].
    #[arg(long, env = "LATCHKEY_UPSTREAM_ID", value_name = "ID")]
    pub(crate) upstream_id: Option<String>,
    /// Latchkey's client id at the upstream provider.
    #[arg(long, env = "LATCHKEY_UPSTREAM_CLIENT_ID", value_name = "ID")]
    pub(crate) upstream_client_id: Option<String>,
    /// Latchkey's client secret at the upstream provider.
    #[arg(
        long,
        env = "LATCHKEY_UPSTREAM_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) upstream_client_secret: Option<String>,
    /// The name on the "Continue with …" button [default: the id].
    #[arg(long, env = "LATCHKEY_UPSTREAM_DISPLAY_NAME", value_name = "NAME")]
    pub(crate) upstream_display_name: Option<String>,
    /// Link an upstream identity to the local user with the same, verified, email [default: false].
    #[arg(long, env = "LATCHKEY_UPSTREAM_LINK_BY_VERIFIED_EMAIL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) upstream_link_by_verified_email: Option<bool>,
    /// Create a local user for an unknown upstream identity with a verified email [default: false].
    #[arg(long, env = "LATCHKEY_UPSTREAM_AUTO_PROVISION", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) upstream_auto_provision: Option<bool>,
}

/// Reads a secret file, without its trailing newline.
fn read_secret_file(path: &PathBuf, id: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "upstream provider {id:?}: cannot read client_secret_file {}",
            path.display()
        )
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

impl FileUpstream {
    /// The provider, its secret looked up as the module docs say;
    /// `environment` reads a variable (the process environment in `serve`).
    fn provider(
        &self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<UpstreamProvider> {
        let id = self.id.trim();
        let variable = format!("LATCHKEY_UPSTREAM_{}_CLIENT_SECRET", env_name(id));
        let secret = match (
            environment(&variable).filter(|value| !value.is_empty()),
            &self.client_secret_file,
            &self.client_secret,
        ) {
            (Some(secret), _, _) => secret,
            (None, Some(_), Some(_)) => anyhow::bail!(
                "upstream provider {id:?}: set client_secret or client_secret_file, not both"
            ),
            (None, Some(path), None) => read_secret_file(path, id)?,
            (None, None, Some(secret)) => secret.clone(),
            (None, None, None) => String::new(),
        };
        let mut provider = UpstreamProvider::new(
            id,
            self.issuer.trim(),
            self.client_id.trim(),
            SecretString::new(secret),
        );
        if let Some(scopes) = &self.scopes {
            provider.scopes = scopes.clone();
        }
        if let Some(name) = &self.display_name {
            provider.display_name = name.trim().to_owned();
        }
        provider.link_by_verified_email = self.link_by_verified_email.unwrap_or(false);
        provider.auto_provision = self.auto_provision.unwrap_or(false);
        provider.userinfo_fallback = self.userinfo_fallback.unwrap_or(false);
        if let Some(names) = &self.algorithms {
            provider.algorithms = names
                .iter()
                .map(|name| {
                    UpstreamAlgorithm::parse(name.trim()).ok_or_else(|| {
                        anyhow::anyhow!(
                            "upstream provider {id:?}: unknown algorithm {name:?} (use RS256 or ES256)"
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        Ok(provider)
    }
}

/// The configured providers (module docs).
pub(crate) fn providers(
    args: &UpstreamArgs,
    file: &[FileUpstream],
    environment: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<UpstreamProvider>> {
    if let Some(issuer) = args.upstream_issuer.as_deref().map(str::trim)
        && !issuer.is_empty()
    {
        let id = args.upstream_id.as_deref().map(str::trim).unwrap_or("oidc");
        let mut provider = UpstreamProvider::new(
            id,
            issuer,
            args.upstream_client_id
                .as_deref()
                .unwrap_or_default()
                .trim(),
            SecretString::new(args.upstream_client_secret.clone().unwrap_or_default()),
        );
        if let Some(name) = &args.upstream_display_name {
            provider.display_name = name.trim().to_owned();
        }
        provider.link_by_verified_email = args.upstream_link_by_verified_email.unwrap_or(false);
        provider.auto_provision = args.upstream_auto_provision.unwrap_or(false);
        return Ok(vec![provider]);
    }
    file.iter()
        .map(|upstream| upstream.provider(environment))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_environment(_: &str) -> Option<String> {
        None
    }

    fn table(text: &str) -> FileUpstream {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn file_tables_fill_the_provider() {
        let upstream = table(
            r#"
            id = "corp-sso"
            issuer = "https://idp.example.com"
            client_id = "latchkey"
            client_secret = "from-file"
            scopes = ["openid", "email"]
            display_name = "Corp SSO"
            link_by_verified_email = true
            algorithms = ["ES256"]
            "#,
        );
        let provider = upstream.provider(&no_environment).unwrap();
        assert_eq!(provider.id, "corp-sso");
        assert_eq!(provider.client_secret.expose(), "from-file");
        assert_eq!(provider.scopes, ["openid", "email"]);
        assert_eq!(provider.display_name, "Corp SSO");
        assert!(provider.link_by_verified_email);
        assert!(!provider.auto_provision && !provider.userinfo_fallback);
        assert_eq!(provider.algorithms, [UpstreamAlgorithm::Es256]);
        assert_eq!(provider.validate(), Ok(()));

        // The environment wins over the file.
        let environment = |name: &str| {
            (name == "LATCHKEY_UPSTREAM_CORP_SSO_CLIENT_SECRET").then(|| "from-env".to_owned())
        };
        let provider = upstream.provider(&environment).unwrap();
        assert_eq!(provider.client_secret.expose(), "from-env");
    }

    #[test]
    fn secret_files_and_mistakes() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let upstream = table(&format!(
            "id = \"corp\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\nclient_secret_file = {:?}\n",
            path.display().to_string()
        ));
        let provider = upstream.provider(&no_environment).unwrap();
        assert_eq!(provider.client_secret.expose(), "from-a-file");

        let both = FileUpstream {
            client_secret: Some("also".to_owned()),
            ..upstream.clone()
        };
        assert!(
            both.provider(&no_environment)
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        let bad_algorithm = FileUpstream {
            algorithms: Some(vec!["HS256".to_owned()]),
            ..upstream
        };
        assert!(bad_algorithm.provider(&no_environment).is_err());
        assert!(
            toml::from_str::<FileUpstream>(
                "id = \"a\"\nissuer = \"b\"\nclient_id = \"c\"\ntypo = 1"
            )
            .is_err()
        );
    }

    #[test]
    fn flags_replace_the_file_tables() {
        let file = vec![table(
            "id = \"corp\"\nissuer = \"https://idp.example.com\"\nclient_id = \"x\"\nclient_secret = \"y\"",
        )];
        let none = UpstreamArgs::default();
        assert_eq!(providers(&none, &file, &no_environment).unwrap().len(), 1);
        let flags = UpstreamArgs {
            upstream_issuer: Some("https://accounts.example.org".to_owned()),
            upstream_client_id: Some("abc".to_owned()),
            upstream_client_secret: Some("def".to_owned()),
            upstream_auto_provision: Some(true),
            ..UpstreamArgs::default()
        };
        let from_flags = providers(&flags, &file, &no_environment).unwrap();
        assert_eq!(from_flags.len(), 1);
        let only = &from_flags[0];
        assert_eq!(
            (only.id.as_str(), only.issuer.as_str()),
            ("oidc", "https://accounts.example.org")
        );
        assert!(only.auto_provision);
        assert_eq!(only.validate(), Ok(()));
    }
}
