//! Profiles and their cached tokens, in the user's config directory
//! (`$HERALD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/herald`, else `~/.config/herald`).
//! `profiles.json` names each profile's API and how it signs in; `tokens/<profile>.json`
//! holds its tokens and, for a machine client, its secret. Both are written `0600`
//! through a temporary file and a rename, so a reader never sees half a file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failure::{Failure, Result};

/// How a profile signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignIn {
    /// A person: Cognito's user-password flow against `cognito_url` (the regional
    /// endpoint in AWS, the emulator locally).
    User {
        cognito_url: String,
        client_id: String,
        username: String,
    },
    /// A machine client: the client-credentials grant at `token_url`.
    Client {
        token_url: String,
        client_id: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub api: String,
    pub sign_in: SignIn,
}

/// A profile's cached credentials. `bearer` is what the API is sent: the ID token for a
/// person (it carries the tenant and role), the access token for a machine client.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub bearer: String,
    /// Seconds since the Unix epoch when `bearer` stops being accepted.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

pub struct ConfigDir(PathBuf);

impl ConfigDir {
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = explicit {
            return Ok(Self(dir));
        }
        if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Ok(Self(PathBuf::from(xdg).join("herald")));
        }
        let home = std::env::var_os("HOME").ok_or_else(|| {
            Failure::Usage(
                "no HOME, XDG_CONFIG_HOME or HERALD_CONFIG_DIR to keep profiles in".into(),
            )
        })?;
        Ok(Self(PathBuf::from(home).join(".config").join("herald")))
    }

    fn profiles_path(&self) -> PathBuf {
        self.0.join("profiles.json")
    }

    pub fn tokens_path(&self, profile: &str) -> PathBuf {
        self.0.join("tokens").join(format!("{profile}.json"))
    }

    pub fn profiles(&self) -> Result<BTreeMap<String, Profile>> {
        read_json(&self.profiles_path()).map(Option::unwrap_or_default)
    }

    pub fn profile(&self, name: &str) -> Result<Profile> {
        self.profiles()?.remove(name).ok_or_else(|| {
            Failure::NotLoggedIn(format!(
                "no profile {name:?} in {}: run `herald login` first",
                self.0.display()
            ))
        })
    }

    pub fn save_profile(&self, name: &str, profile: Profile) -> Result<()> {
        let mut profiles = self.profiles()?;
        profiles.insert(name.to_owned(), profile);
        write_private(&self.profiles_path(), &profiles)
    }

    pub fn tokens(&self, profile: &str) -> Result<Tokens> {
        read_json(&self.tokens_path(profile))?.ok_or_else(|| {
            Failure::NotLoggedIn(format!(
                "profile {profile:?} holds no tokens: run `herald login --profile {profile}`"
            ))
        })
    }

    pub fn save_tokens(&self, profile: &str, tokens: &Tokens) -> Result<()> {
        write_private(&self.tokens_path(profile), tokens)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Failure::Io(format!("{} is not readable: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::io(path.display(), e)),
    }
}

/// Writes `value` as JSON readable by its owner only: the file is created `0600` (never
/// briefly wider) and renamed into place.
fn write_private<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().expect("config paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir.display(), e))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| Failure::io(temporary.display(), e))?;
    let bytes = serde_json::to_vec_pretty(value).expect("config serializes");
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::io(temporary.display(), e))?;
    std::fs::rename(&temporary, path).map_err(|e| Failure::io(path.display(), e))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
