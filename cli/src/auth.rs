//! Signing in and staying signed in. A person signs in with Cognito's user-password
//! flow (`InitiateAuth`, answering the MFA challenge when the pool asks) and is kept
//! signed in with the refresh token; a machine client asks the token URL for a
//! client-credentials token again. Cognito's `InitiateAuth` and
//! `RespondToAuthChallenge` are unsigned public calls, so they are plain JSON requests
//! here: the command needs no AWS credentials.

use std::io::BufRead as _;

use serde_json::{Value, json};

use crate::config::{ConfigDir, Profile, SignIn, Tokens, now};
use crate::failure::{Failure, Result};

/// A token is renewed when less than this is left of it, so a request never leaves
/// with a token that expires on the way.
const RENEW_MARGIN_SECS: u64 = 60;

/// The bearer token of `profile`, renewed first (and cached again) if it has expired.
pub async fn bearer(http: &reqwest::Client, dir: &ConfigDir, name: &str) -> Result<String> {
    let profile = dir.profile(name)?;
    let tokens = dir.tokens(name)?;
    if tokens.expires_at > now() + RENEW_MARGIN_SECS {
        return Ok(tokens.bearer);
    }
    let renewed = match &profile.sign_in {
        SignIn::User {
            cognito_url,
            client_id,
            ..
        } => {
            let refresh = tokens.refresh_token.clone().ok_or_else(|| {
                Failure::NotLoggedIn(format!(
                    "the token of profile {name:?} expired and it has no refresh token: run `herald login`"
                ))
            })?;
            let answer = cognito(
                http,
                cognito_url,
                "InitiateAuth",
                json!({"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": client_id,
                       "AuthParameters": {"REFRESH_TOKEN": refresh}}),
            )
            .await
            .map_err(|e| match e {
                Failure::Auth(text) => Failure::NotLoggedIn(format!(
                    "the session of profile {name:?} ended ({text}): run `herald login`"
                )),
                other => other,
            })?;
            // Cognito does not send the refresh token again: it keeps its own lifetime.
            let mut renewed = user_tokens(&answer)?;
            renewed.refresh_token = renewed.refresh_token.or(Some(refresh));
            renewed
        }
        SignIn::Client {
            token_url,
            client_id,
        } => {
            let secret = tokens.client_secret.clone().ok_or_else(|| {
                Failure::NotLoggedIn(format!(
                    "profile {name:?} holds no client secret: run `herald login`"
                ))
            })?;
            client_credentials(http, token_url, client_id, &secret).await?
        }
    };
    dir.save_tokens(name, &renewed)?;
    Ok(renewed.bearer)
}

/// Signs a person in; `mfa_code` answers an MFA challenge (read from standard input
/// when the pool asks and none was given).
pub async fn sign_in_user(
    http: &reqwest::Client,
    cognito_url: &str,
    client_id: &str,
    username: &str,
    password: &str,
    mfa_code: Option<&str>,
) -> Result<Tokens> {
    let answer = cognito(
        http,
        cognito_url,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id,
               "AuthParameters": {"USERNAME": username, "PASSWORD": password}}),
    )
    .await?;
    let Some(challenge) = answer["ChallengeName"].as_str() else {
        return user_tokens(&answer);
    };
    let code_name = match challenge {
        "SOFTWARE_TOKEN_MFA" => "SOFTWARE_TOKEN_MFA_CODE",
        "SMS_MFA" => "SMS_MFA_CODE",
        "EMAIL_OTP" => "EMAIL_OTP_CODE",
        other => {
            return Err(Failure::Auth(format!(
                "the user pool asks for {other}, which this command cannot answer: finish it in the hosted sign-in page"
            )));
        }
    };
    let code = match mfa_code {
        Some(code) => code.to_owned(),
        None => {
            eprint!("MFA code ({challenge}): ");
            read_line()?
        }
    };
    let answer = cognito(
        http,
        cognito_url,
        "RespondToAuthChallenge",
        json!({"ChallengeName": challenge, "ClientId": client_id,
               "Session": answer["Session"],
               "ChallengeResponses": {"USERNAME": username, code_name: code}}),
    )
    .await?;
    user_tokens(&answer)
}

/// A client-credentials grant; the secret is kept with the token for the next grant.
pub async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    secret: &str,
) -> Result<Tokens> {
    let response = http
        .post(token_url)
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| {
            Failure::Unavailable(format!("the token URL {token_url} did not answer: {e}"))
        })?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 200 {
        let error = body["error"].as_str().unwrap_or("no reason given");
        let text = format!("the token URL refused the client ({status}): {error}");
        return Err(if status >= 500 {
            Failure::Unavailable(text)
        } else {
            Failure::Auth(text)
        });
    }
    let bearer = body["access_token"]
        .as_str()
        .ok_or_else(|| Failure::Unavailable("the token URL answered no access_token".into()))?;
    Ok(Tokens {
        bearer: bearer.to_owned(),
        expires_at: now() + body["expires_in"].as_u64().unwrap_or(3600),
        refresh_token: None,
        client_secret: Some(secret.to_owned()),
    })
}

/// The profile a login writes, with its tokens.
pub fn remember(dir: &ConfigDir, name: &str, profile: Profile, tokens: &Tokens) -> Result<()> {
    dir.save_profile(name, profile)?;
    dir.save_tokens(name, tokens)
}

pub fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::io("standard input", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn user_tokens(answer: &Value) -> Result<Tokens> {
    let result = &answer["AuthenticationResult"];
    let bearer = result["IdToken"]
        .as_str()
        .ok_or_else(|| Failure::Auth("the user pool issued no ID token".into()))?;
    Ok(Tokens {
        bearer: bearer.to_owned(),
        expires_at: now() + result["ExpiresIn"].as_u64().unwrap_or(3600),
        refresh_token: result["RefreshToken"].as_str().map(str::to_owned),
        client_secret: None,
    })
}

async fn cognito(http: &reqwest::Client, url: &str, action: &str, body: Value) -> Result<Value> {
    let response = http
        .post(url)
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            format!("AWSCognitoIdentityProviderService.{action}"),
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| Failure::Unavailable(format!("the user pool at {url} did not answer: {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        200 => Ok(answer),
        400..=499 => {
            let kind = answer["__type"].as_str().unwrap_or("refused");
            let message = answer["message"]
                .as_str()
                .or(answer["Message"].as_str())
                .unwrap_or("");
            Err(Failure::Auth(format!("sign-in refused: {kind}: {message}")))
        }
        _ => Err(Failure::Unavailable(format!(
            "the user pool answered {status}: {text}"
        ))),
    }
}
