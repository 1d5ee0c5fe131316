//! The API as the command calls it: a bearer token on every request, an
//! `Idempotency-Key` on every POST, and every answer that is not a success turned into
//! a `Failure` (problem title and field errors, exit code by kind).

use serde_json::Value;

use crate::failure::{Failure, Result};

pub struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    pub fn new(http: reqwest::Client, base: &str, bearer: String) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bearer,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// A POST with `key` as its Idempotency-Key (a fresh one when `None`: a command
    /// the user runs again is a new request unless they give a key).
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Result<Value> {
        self.post_body(path, key, Some(body)).await
    }

    /// A POST with a JSON body, or none (the routes that act on a resource take none).
    pub async fn post_body(
        &self,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value> {
        let key = key.map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
        let mut request = self
            .http
            .post(self.url(path))
            .header("idempotency-key", key);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// Every page of a listing, following `next_url` until it is null; `field` names
    /// the array each page holds.
    pub async fn each_page(
        &self,
        first: &str,
        field: &str,
        mut each: impl FnMut(&Value) -> Result<()>,
    ) -> Result<()> {
        let mut next = Some(first.to_owned());
        while let Some(path) = next {
            let page = self.get(&path).await?;
            for item in page[field].as_array().into_iter().flatten() {
                each(item)?;
            }
            next = page["next_url"].as_str().map(str::to_owned);
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.bearer)
            .send()
            .await
            .map_err(|e| {
                Failure::Unavailable(format!("the API at {} did not answer: {e}", self.base))
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unavailable(format!("the API's answer was cut short: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Failure::from_problem(status, &body))
        }
    }
}
