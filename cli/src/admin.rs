//! The everyday commands around sending: the suppression list, machine clients, and
//! for operators tenants and the redrive. Each prints the API's answer as JSON (one
//! object a line for listings), so scripts read it with `jq`.

use serde_json::{Value, json};

use crate::api::Api;
use crate::args::{Clients, Suppressions, Tenants};
use crate::failure::Result;

pub async fn suppressions(api: &Api, command: Suppressions) -> Result<()> {
    match command {
        Suppressions::List { channel, reason } => {
            let mut first = "/v1/suppressions?limit=100".to_owned();
            for (name, value) in [("channel", channel), ("reason", reason)] {
                if let Some(value) = value {
                    first.push_str(&format!("&{name}={}", encode(&value)));
                }
            }
            api.each_page(&first, "suppressions", print_line).await
        }
        Suppressions::Add { address, note } => {
            let mut body = json!({"address": address});
            if let Some(note) = note {
                body["note"] = json!(note);
            }
            print_line(&api.post("/v1/suppressions", None, &body).await?)
        }
        Suppressions::Remove { address } => print_line(
            &api.delete(&format!("/v1/suppressions/{}", encode(&address)))
                .await?,
        ),
    }
}

pub async fn clients(api: &Api, command: Clients) -> Result<()> {
    match command {
        Clients::List { status } => {
            let first = format!("/v1/clients?limit=100&status={}", encode(&status));
            api.each_page(&first, "clients", print_line).await
        }
        Clients::Create { name, scopes } => {
            let body = json!({"name": name, "scopes": scopes});
            print_line(&api.post("/v1/clients", None, &body).await?)
        }
        Clients::Revoke { id } => {
            let path = format!("/v1/clients/{}/revoke", encode(&id));
            print_line(&api.post_body(&path, None, None).await?)
        }
    }
}

pub async fn tenants(api: &Api, command: Tenants) -> Result<()> {
    let answer = match command {
        Tenants::Show { id } => api.get(&format!("/v1/tenants/{}", encode(&id))).await?,
        Tenants::Suspend { id } => {
            let path = format!("/v1/tenants/{}/suspend", encode(&id));
            api.post_body(&path, None, None).await?
        }
        Tenants::Resume { id } => {
            let path = format!("/v1/tenants/{}/resume", encode(&id));
            api.post_body(&path, None, None).await?
        }
    };
    print_line(&answer)
}

pub async fn redrive(api: &Api) -> Result<()> {
    print_line(&api.post_body("/v1/operator/redrive", None, None).await?)
}

fn print_line(value: &Value) -> Result<()> {
    println!("{value}");
    Ok(())
}

/// One path segment or query value, percent-encoded (a `+` in a number is not a space).
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
