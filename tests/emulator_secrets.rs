//! The emulator's Secrets Manager where the launcher (`infra/local/emulator.py`)
//! changes moto's: when UpdateSecretVersionStage moves `AWSCURRENT`, a GetSecretValue
//! that names no version answers the version the label is on (as AWS does; moto kept
//! answering the old one), and `AWSPREVIOUS` moves to the version it left. Also the
//! rest of what a rotation uses: a pending version read by id and stage, and tags.

use herald_tests::herald_local::{emulator, project_root, provision, random_hex};

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";

#[tokio::test]
async fn moving_awscurrent_moves_what_an_unversioned_read_answers() {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let secrets = provision::Clients::new(&herald::aws::for_emulator(&endpoint).await).secrets;
    let name = format!("t-rotation-{}", random_hex(8));
    let first = secrets
        .create_secret()
        .name(&name)
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let token = format!("{:-<32}", "two");
    secrets
        .put_secret_value()
        .secret_id(&name)
        .client_request_token(&token)
        .secret_string("two")
        .version_stages(PENDING)
        .send()
        .await
        .unwrap();
    let read = |stage: Option<&'static str>, version: Option<String>| {
        let secrets = secrets.clone();
        let name = name.clone();
        async move {
            let out = secrets
                .get_secret_value()
                .secret_id(name)
                .set_version_stage(stage.map(Into::into))
                .set_version_id(version)
                .send()
                .await
                .unwrap();
            out.secret_string.unwrap()
        }
    };
    assert_eq!(read(None, None).await, "one", "pending is not current");
    assert_eq!(read(Some(PENDING), Some(token.clone())).await, "two");

    secrets
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage(CURRENT)
        .move_to_version_id(&token)
        .remove_from_version_id(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(None, None).await,
        "two",
        "an unversioned read follows AWSCURRENT"
    );
    assert_eq!(read(Some(CURRENT), None).await, "two");
    assert_eq!(read(Some("AWSPREVIOUS"), None).await, "one");

    // Tags, which the rotator keeps its retirement marks in.
    let tag = aws_sdk_secretsmanager::types::Tag::builder()
        .key("herald:retire:SK1")
        .value("1700000000")
        .build();
    secrets
        .tag_resource()
        .secret_id(&name)
        .tags(tag)
        .send()
        .await
        .unwrap();
    let tags = |secrets: aws_sdk_secretsmanager::Client, name: String| async move {
        let out = secrets
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap();
        out.tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tags(secrets.clone(), name.clone()).await,
        [("herald:retire:SK1".to_owned(), "1700000000".to_owned())]
    );
    secrets
        .untag_resource()
        .secret_id(&name)
        .tag_keys("herald:retire:SK1")
        .send()
        .await
        .unwrap();
    assert!(tags(secrets.clone(), name.clone()).await.is_empty());
    secrets
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}
