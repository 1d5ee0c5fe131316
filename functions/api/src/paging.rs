//! What every listing shares: `limit` (1 to 100, 50 when absent), an opaque `cursor`
//! sealed to the listing's route, tenant, path and defining parameters
//! (`herald::cursor`, keyed by the cursor secret), and the `next_cursor`/`next_url`
//! of each page. A cursor sealed for anything else is a 400 naming `cursor`.

use std::time::Duration;

use axum::extract::MatchedPath;
use herald::TenantId;
use herald::aws::SecretsManagerClient;
use herald::cursor::{CursorKey, CursorScope};
use herald::secrets::SecretsCache;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{ApiError, FieldErrors, extract};

pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 50;
/// How long the cursor key is used before it is read again: a replaced key takes
/// effect within this time.
const KEY_TTL: Duration = Duration::from_secs(900);

/// The key cursors are sealed with, read from Secrets Manager and cached.
pub struct Cursors {
    secrets: SecretsCache,
    secret_id: String,
}

impl Cursors {
    pub fn new(client: SecretsManagerClient, secret_id: &str) -> Self {
        Self {
            secrets: SecretsCache::new(client, KEY_TTL),
            secret_id: secret_id.to_owned(),
        }
    }

    async fn key(&self) -> Result<CursorKey, ApiError> {
        let secret = self.secrets.get(&self.secret_id).await?;
        Ok(CursorKey::from_secret(&secret))
    }
}

/// The page size a listing was asked for, or the failure added to `errors`.
pub fn page_size(raw: Option<&str>, errors: &mut FieldErrors) -> usize {
    match raw.map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            errors.add(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            );
            DEFAULT_PAGE
        }
    }
}

/// One listing request: which list (the route, the tenant listed, the path and the
/// parameters that define it) and which page.
pub struct Listing {
    route: String,
    tenant: TenantId,
    path: String,
    /// The parameters that define the list (not `limit` or `cursor`), in order.
    params: Vec<(&'static str, String)>,
    pub limit: usize,
    cursor: Option<String>,
}

impl Listing {
    pub fn new(
        route: &MatchedPath,
        tenant: TenantId,
        path: String,
        params: Vec<(&'static str, String)>,
        limit: usize,
        cursor: Option<String>,
    ) -> Self {
        Self {
            route: route.as_str().to_owned(),
            tenant,
            path,
            params,
            limit,
            cursor,
        }
    }

    /// The parameters in their one canonical form.
    fn query(&self) -> String {
        serde_urlencoded::to_string(&self.params).expect("plain text pairs encode")
    }

    /// Runs `f` with the scope this listing's cursors are sealed to: the route, the
    /// tenant, and the path and parameters (a batch's id, an audit log's day).
    fn in_scope<R>(&self, f: impl FnOnce(CursorScope<'_>) -> R) -> R {
        let bound_to = format!("{}?{}", self.path, self.query());
        f(CursorScope {
            listing: &self.route,
            tenant: &self.tenant,
            query: &bound_to,
        })
    }

    /// Where the page starts: after the position the cursor holds, or at the top when
    /// there is none. A cursor sealed for another listing is a 400 naming `cursor`.
    pub async fn start(&self, cursors: &Cursors) -> Result<Option<String>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let key = cursors.key().await?;
        self.in_scope(|scope| key.open(scope, cursor))
            .map(Some)
            .map_err(|e| ApiError::InvalidFields(FieldErrors::one("cursor", e.to_string())))
    }

    /// The `next_cursor` and `next_url` of a page that ends at `after`: none on the
    /// last page.
    pub async fn next(
        &self,
        cursors: &Cursors,
        after: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let Some(after) = after else {
            return Ok((None, None));
        };
        let key = cursors.key().await?;
        let cursor = self.in_scope(|scope| key.seal(scope, after));
        let mut query = self.query();
        if !query.is_empty() {
            query.push('&');
        }
        // The cursor is URL-safe base64 and a dot.
        let url = format!("{}?{query}limit={}&cursor={cursor}", self.path, self.limit);
        Ok((Some(cursor), Some(url)))
    }
}

/// The query of a listing defined by its route and tenant alone (no filters).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Where to go on: the `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Items per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    pub(crate) limit: Option<String>,
}

/// The page of the caller's list, defined by its route and tenant alone, that
/// `raw_query` asks for.
pub fn plain_listing(
    route: &MatchedPath,
    tenant: &TenantId,
    raw_query: Option<&str>,
) -> Result<Listing, ApiError> {
    let query: PageQuery = extract::query(raw_query)?;
    let mut errors = FieldErrors::default();
    let limit = page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    let path = route.as_str().to_owned();
    Ok(Listing::new(
        route,
        tenant.clone(),
        path,
        Vec::new(),
        limit,
        query.cursor,
    ))
}
