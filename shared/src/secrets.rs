//! Secrets Manager behind a small cache: secrets are fetched once per TTL, refreshed on
//! demand when a provider rejects them (rotation), and never printable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {id} could not be read")]
    Unavailable {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {id} has no string value")]
    Empty { id: String },
}

pub struct SecretsCache {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, SecretString)>>,
}

impl SecretsCache {
    pub fn new(client: aws_sdk_secretsmanager::Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, fetched when absent or older than the TTL. The lock is held
    /// across the fetch so concurrent callers wait for one request instead of each
    /// making their own.
    pub async fn get(&self, id: &str) -> Result<SecretString, SecretsError> {
        let mut entries = self.entries.lock().await;
        if let Some((at, value)) = entries.get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let value = self.fetch(id).await?;
        entries.insert(id.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Drops the cached value if it is the one that failed, so the next `get` reads
    /// the current version. Callers that hit an authentication error call this once.
    pub async fn invalidate(&self, id: &str) {
        self.entries.lock().await.remove(id);
    }

    #[tracing::instrument(skip(self))]
    async fn fetch(&self, id: &str) -> Result<SecretString, SecretsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable {
                id: id.to_owned(),
                source: e.into(),
            })?;
        out.secret_string
            .map(SecretString::from)
            .ok_or_else(|| SecretsError::Empty { id: id.to_owned() })
    }
}
