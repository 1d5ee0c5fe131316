//! Bad input gets a specific 4xx with problem+json naming the problem, and changes
//! nothing: no item written, nothing enqueued.

use herald_tests::TestCloud;

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let test = TestCloud::start("bad-input").await;
    let token = test.token("acme", "sender").await;
    let json = Some("application/json");

    // (case, content type, body, expected status, field the problem must name)
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("bad JSON", json, b"{\"to\": ".to_vec(), 400, None),
        ("not an object", json, b"[1, 2]".to_vec(), 400, None),
        (
            "trailing data",
            json,
            br#"{"to": "+14155550100", "body": "x"} {}"#.to_vec(),
            400,
            None,
        ),
        (
            "unknown field",
            json,
            br#"{"to": "+14155550100", "body": "x", "priority": 1}"#.to_vec(),
            400,
            Some("/priority"),
        ),
        (
            "missing field",
            json,
            br#"{"to": "+14155550100"}"#.to_vec(),
            400,
            None,
        ),
        (
            "unknown channel",
            json,
            br#"{"channel": "fax", "to": "+14155550100", "body": "x"}"#.to_vec(),
            400,
            Some("/channel"),
        ),
        (
            "not E.164",
            json,
            br#"{"to": "00441234", "body": "x"}"#.to_vec(),
            400,
            Some("/to"),
        ),
        (
            "too short",
            json,
            br#"{"to": "+1", "body": "x"}"#.to_vec(),
            400,
            Some("/to"),
        ),
        (
            "spaces",
            json,
            br#"{"to": "+44 7911 123456", "body": "x"}"#.to_vec(),
            400,
            Some("/to"),
        ),
        (
            "invalid for its country",
            json,
            br#"{"to": "+11234567890", "body": "x"}"#.to_vec(),
            400,
            Some("/to"),
        ),
        (
            "empty text",
            json,
            br#"{"to": "+14155550100", "body": ""}"#.to_vec(),
            400,
            Some("/body"),
        ),
        (
            "control characters",
            json,
            b"{\"to\": \"+14155550100\", \"body\": \"a\\u0000b\"}".to_vec(),
            400,
            Some("/body"),
        ),
        (
            "too long",
            json,
            format!(
                r#"{{"to": "+14155550100", "body": "{}"}}"#,
                "x".repeat(1601)
            )
            .into_bytes(),
            400,
            Some("/body"),
        ),
        (
            "invalid UTF-8",
            json,
            b"{\"to\": \"+14155550100\", \"body\": \"\xff\xfe\"}".to_vec(),
            400,
            None,
        ),
        ("empty body", json, Vec::new(), 400, None),
        ("whitespace body", json, b"  \n".to_vec(), 400, None),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"to": "+14155550100", "body": "x"}"#.to_vec(),
            415,
            Some("content-type"),
        ),
        (
            "no content type",
            None,
            br#"{"to": "+14155550100", "body": "x"}"#.to_vec(),
            415,
            Some("content-type"),
        ),
        (
            "over the size limit",
            json,
            format!(
                r#"{{"to": "+14155550100", "body": "{}"}}"#,
                "x".repeat(5 * 1024 * 1024)
            )
            .into_bytes(),
            413,
            None,
        ),
    ];
    for (name, content_type, body, status, field) in cases {
        let answer = test
            .request(
                "POST",
                "/v1/messages",
                Some(&token),
                content_type,
                Some(body),
            )
            .await;
        assert_eq!(answer.status, status, "{name}: {:?}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json", "{name}");
        assert_eq!(answer.body["status"], status, "{name}");
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}: {:?}",
            answer.body
        );
        if let Some(field) = field {
            let fields: Vec<&str> = answer.body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no errors in {:?}", answer.body))
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{name}: {fields:?}");
        }
    }

    // Every failing field is named at once, not only the first.
    let both = test
        .post_json("/v1/messages", &token, r#"{"to": "0044", "body": ""}"#)
        .await;
    let fields: Vec<&str> = both.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(fields.contains(&"/to") && fields.contains(&"/body"));

    let malformed_id = test.get("/v1/messages/not-an-id", &token).await;
    assert_eq!(malformed_id.status, 400);
    assert_eq!(malformed_id.body["errors"][0]["field"], "id");

    assert_eq!(test.table_items().await, 0, "nothing was written");
    assert_eq!(
        test.queue_depth("SendQueue").await,
        0,
        "nothing was enqueued"
    );
    assert!(test.ledger().is_empty());
}
