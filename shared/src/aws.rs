//! One place that builds the AWS SDK configuration, with timeouts below the Lambda
//! timeout so a hung call cannot eat a whole invocation.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// The configuration a deployed function uses: region, credentials and any
/// `AWS_ENDPOINT_URL` from the environment.
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The configuration for the local cloud's emulator: fixed region and dummy
/// credentials, so nothing on the machine (profiles, real keys) is ever picked up.
pub async fn for_emulator(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "herald-local"))
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

pub use aws_config::SdkConfig;
pub use aws_sdk_cognitoidentityprovider::Client as CognitoClient;
pub use aws_sdk_dynamodb::Client as DynamoDbClient;
pub use aws_sdk_dynamodb::config::SharedInterceptor;
pub use aws_sdk_secretsmanager::Client as SecretsManagerClient;
pub use aws_sdk_sqs::Client as SqsClient;

/// Builds a function's SDK clients from one configuration. A function's clients all
/// come from here, so the local cloud can attach interceptors to exactly the clients
/// one function uses (the benchmark counts each function's requests that way). A
/// deployed function attaches none, and its clients are what `Client::new` builds.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
}

impl Clients {
    pub fn new(sdk: SdkConfig) -> Self {
        Self {
            sdk,
            interceptors: Vec::new(),
        }
    }

    /// Every client built afterwards runs `interceptor` on each request.
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn dynamodb(&self) -> DynamoDbClient {
        let mut config = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        DynamoDbClient::from_conf(config.build())
    }

    pub fn sqs(&self) -> SqsClient {
        let mut config = aws_sdk_sqs::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        SqsClient::from_conf(config.build())
    }

    /// SNS's configuration, for its adapter to finish with its own retries and timeouts.
    pub fn sns_config(&self) -> aws_sdk_sns::config::Builder {
        let mut config = aws_sdk_sns::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        config
    }

    pub fn cognito(&self) -> CognitoClient {
        let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        CognitoClient::from_conf(config.build())
    }

    /// SES (API v2)'s configuration, for its adapter to finish with its own retries and
    /// timeouts.
    pub fn ses_config(&self) -> aws_sdk_sesv2::config::Builder {
        let mut config = aws_sdk_sesv2::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        config
    }

    pub fn secrets_manager(&self) -> SecretsManagerClient {
        let mut config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk);
        for interceptor in &self.interceptors {
            config.push_interceptor(interceptor.clone());
        }
        SecretsManagerClient::from_conf(config.build())
    }
}
