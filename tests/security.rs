//! Who may call what, over what, and what training may read and change,
//! against the real server: tokens and roles, TLS and mTLS with certificates
//! made at run time, the training sandbox, experiments kept out of the live
//! book, promotion checks.

mod common;

use std::path::Path;

use common::pki::Pki;
use common::{demo_config, demo_ids, open_store, TestServer};
use rapport::api::client::{ClientOptions, Conn};
use rapport::api::pb;
use rapport::api::pb::ingest_client::IngestClient;
use rapport::api::pb::models_client::ModelsClient;
use rapport::api::pb::scoring_client::ScoringClient;
use rapport::api::Access;
use rapport::server::TlsFiles;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use common::{
    test_tokens as tokens, ADMIN_TOKEN as ADMIN, READ_TOKEN as READ, WRITE_TOKEN as WRITE,
};

async fn conn(server: &TestServer, token: Option<&str>) -> Conn {
    ClientOptions {
        token: token.map(str::to_string),
        ..ClientOptions::default()
    }
    .connect(&server.addr.to_string())
    .await
    .unwrap()
}

fn score_request(id: &str) -> pb::ScoreRequest {
    pb::ScoreRequest {
        relationship_id: id.into(),
        as_of: None,
        max_reasons: 1,
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn calls_without_a_token_are_unauthenticated_and_below_their_role_permission_denied() {
    let server = TestServer::start_with(None, |options| {
        options.access = Access {
            tokens: tokens(),
            protect_health: false,
        };
    });
    let anonymous = conn(&server, None).await;
    let wrong = conn(&server, Some("not-a-configured-token")).await;
    let read = conn(&server, Some(READ)).await;
    let write = conn(&server, Some(WRITE)).await;
    let admin = conn(&server, Some(ADMIN)).await;

    let score = |c: &Conn| {
        let mut client = ScoringClient::new(c.clone());
        async move { code(client.score(score_request("c-1")).await) }
    };
    assert_eq!(score(&anonymous).await, Code::Unauthenticated);
    assert_eq!(score(&wrong).await, Code::Unauthenticated);
    // Past the gate: the server has no model yet.
    assert_eq!(score(&read).await, Code::FailedPrecondition);
    assert_eq!(score(&admin).await, Code::FailedPrecondition);

    let record = |c: &Conn| {
        let mut client = IngestClient::new(c.clone());
        async move {
            code(
                client
                    .record_events(pb::RecordEventsRequest { events: vec![] })
                    .await,
            )
        }
    };
    assert_eq!(record(&read).await, Code::PermissionDenied);
    // Past the gate: an empty batch is the caller's mistake.
    assert_eq!(record(&write).await, Code::InvalidArgument);

    let list = |c: &Conn| {
        let mut client = ModelsClient::new(c.clone());
        async move { code(client.list_models(pb::ListModelsRequest {}).await) }
    };
    assert_eq!(list(&read).await, Code::PermissionDenied);
    assert_eq!(list(&write).await, Code::PermissionDenied);
    assert_eq!(list(&admin).await, Code::Ok);
    let denied = ModelsClient::new(write.clone())
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        denied.message(),
        "crm-sync has the write role; this call needs admin"
    );

    // Health and reflection stay open.
    let health = HealthClient::new(anonymous.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert_eq!(code(health), Code::Ok);

    let protected = TestServer::start_with(None, |options| {
        options.access = Access {
            tokens: tokens(),
            protect_health: true,
        };
    });
    let check = |c: Conn| async move {
        code(
            HealthClient::new(c)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await,
        )
    };
    assert_eq!(
        check(conn(&protected, None).await).await,
        Code::Unauthenticated
    );
    assert_eq!(check(conn(&protected, Some(READ)).await).await, Code::Ok);
}

async fn health_over(options: &ClientOptions, addr: &str) -> Result<Code, String> {
    let conn = options.connect(addr).await.map_err(|e| e.to_string())?;
    HealthClient::new(conn)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| Code::Ok)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn tls_and_mtls_connections_work_with_generated_certificates() {
    let pki = Pki::new();
    let tls = TlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: None,
    };
    let server = TestServer::start_with(None, move |options| options.tls = Some(tls));
    let addr = format!("localhost:{}", server.addr.port());
    let trusting = ClientOptions {
        ca: Some(pki.ca.clone()),
        ..ClientOptions::default()
    };
    assert_eq!(health_over(&trusting, &addr).await, Ok(Code::Ok));
    let wrong_ca = ClientOptions {
        ca: Some(pki.other_ca.clone()),
        ..ClientOptions::default()
    };
    assert!(
        health_over(&wrong_ca, &addr).await.is_err(),
        "a server certificate from another CA was trusted"
    );
    assert!(
        health_over(&ClientOptions::default(), &addr).await.is_err(),
        "plaintext reached a TLS server"
    );

    let mtls = TlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    };
    let server = TestServer::start_with(None, move |options| options.tls = Some(mtls));
    let addr = format!("localhost:{}", server.addr.port());
    assert!(
        health_over(&trusting, &addr).await.is_err(),
        "mTLS admitted a client without a certificate"
    );
    let with_identity = ClientOptions {
        ca: Some(pki.ca.clone()),
        identity: Some((pki.client_cert.clone(), pki.client_key.clone())),
        ..ClientOptions::default()
    };
    assert_eq!(health_over(&with_identity, &addr).await, Ok(Code::Ok));
}

fn table_spec(path: &str) -> String {
    format!(
        "name = \"experiment\"\n[data]\nsource = \"table\"\npath = {path:?}\nlabel_column = \"churned\"\nid_column = \"id\"\n"
    )
}

/// A small churn table: usage and a plan, the label depending on both.
fn write_table(path: &Path, rows: usize) {
    let mut text = String::from("id,usage,plan,churned\n");
    for i in 0..rows {
        let usage = (i * 37 % 100) as f64;
        let plan = ["basic", "pro", "team"][i % 3];
        let churned = usage < 35.0 || (plan == "basic" && i % 5 == 0);
        text.push_str(&format!(
            "row-{i:05},{usage},{plan},{}\n",
            if churned { "yes" } else { "no" }
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_spec_naming_a_file_outside_the_data_root_is_refused_without_its_content() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.csv");
    std::fs::write(&secret, "hunter2-secret-header,x\nsecret-value,1\n").unwrap();
    std::os::unix::fs::symlink(&secret, root.path().join("link.csv")).unwrap();
    // Inside the root, but its header is not what the spec names.
    let inside = root.path().join("inside.csv");
    std::fs::write(&inside, "hunter2-secret-header,x\nsecret-value,1\n").unwrap();
    let root_path = root.path().to_path_buf();
    let server = TestServer::start_with(None, move |options| {
        options.service.training_data_root = Some(root_path);
    });
    let mut models = server.models().await;
    let train = |spec: String| pb::TrainModelRequest {
        spec_toml: spec,
        ..Default::default()
    };
    for path in [
        "/etc/passwd".to_string(),
        "/proc/self/environ".to_string(),
        "../secret.csv".to_string(),
        secret.display().to_string(),
        "link.csv".to_string(),
    ] {
        let status = models
            .train_model(train(table_spec(&path)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status
                .message()
                .contains("not a readable regular file under the training data root"),
            "{path}: {}",
            status.message()
        );
        for leaked in ["root:", "hunter2", "secret-value", "PATH="] {
            assert!(
                !status.message().contains(leaked),
                "{path}: {}",
                status.message()
            );
        }
    }
    let status = models
        .train_model(train(table_spec("inside.csv")))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("\"churned\""),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("hunter2") && !status.message().contains("secret-value"),
        "{}",
        status.message()
    );

    let unconfigured = TestServer::start(None);
    let status = unconfigured
        .models()
        .await
        .train_model(train(table_spec("inside.csv")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("--training-data-root"),
        "{}",
        status.message()
    );
}

/// Every relationship with its events, and the catalogue, as the store holds them.
fn dump_book(
    dir: &Path,
) -> (
    Vec<(rapport::domain::Relationship, Vec<rapport::domain::Event>)>,
    usize,
) {
    let store = open_store(dir);
    let book = store
        .relationships()
        .map(|r| {
            let r = r.unwrap();
            let events = store.events(&r.id, None).unwrap();
            (r, events)
        })
        .collect();
    (book, store.products().unwrap().len())
}

#[tokio::test]
async fn an_experiment_leaves_the_live_book_unchanged_and_a_promotion_that_drops_segments_is_refused(
) {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(data.path(), Some(demo_config()));
    server.wait_serving().await;
    server.stop();
    let before = dump_book(data.path());
    assert!(before.0.len() > 1_000);

    let root = tempfile::tempdir().unwrap();
    write_table(&root.path().join("churn.csv"), 600);
    let root_path = root.path().to_path_buf();
    let server = TestServer::start_configured(data.path(), None, move |options| {
        options.service.training_data_root = Some(root_path);
    });
    server.wait_serving().await;
    let mut models = server.models().await;
    let active = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .active_version;
    let experiment = models
        .train_model(pb::TrainModelRequest {
            spec_toml: table_spec("churn.csv"),
            ..Default::default()
        })
        .await
        .expect("the table trains")
        .into_inner();
    assert!(!experiment.active);
    // Its rows are not in the book.
    let status = server
        .ingest()
        .await
        .get_relationship(pb::GetRelationshipRequest {
            id: "row-00001".into(),
            as_of: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let refused = models
        .promote_model(pb::PromoteModelRequest {
            version: experiment.version,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("no segment model"),
        "{}",
        refused.message()
    );
    let refused = models
        .train_model(pb::TrainModelRequest {
            spec_toml: table_spec("churn.csv"),
            activate: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("did not activate it"),
        "{}",
        refused.message()
    );
    let force_without_reason = models
        .promote_model(pb::PromoteModelRequest {
            version: experiment.version,
            force: true,
            reason: " ".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(force_without_reason.code(), Code::InvalidArgument);
    let mut scoring = server.scoring().await;
    let live_id = &demo_ids("c-", 1)[0];
    let score = scoring
        .score(score_request(live_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        score.model_version, active,
        "a refused promotion changed the model"
    );

    // Forced, with a reason: the table model serves its own rows by id.
    let promoted = models
        .promote_model(pb::PromoteModelRequest {
            version: experiment.version,
            force: true,
            reason: "comparing the table model on its own rows".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(promoted.active);
    let row = scoring
        .score(score_request("row-00001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(row.model_version, experiment.version);
    models
        .rollback_model(pb::RollbackModelRequest::default())
        .await
        .unwrap();
    server.stop();
    let after = dump_book(data.path());
    assert_eq!(before.0.len(), after.0.len());
    assert!(before == after, "the experiment changed the live book");
}
