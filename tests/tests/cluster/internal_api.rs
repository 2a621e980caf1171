//! The internal API as an attacker, an old gateway and a heavy client would meet it: calls
//! without valid service credentials get no data and are counted; a call the server does
//! not know is a clear error, not a transport failure; sends at the size limit go through.

use chat_auth::ServiceKeys;
use chat_rpc::pb::chat_service_client::ChatServiceClient;
use chat_rpc::pb::{self, Caller, CallerOnly};
use chat_testkit::{token, Cluster, INTERNAL_SECRET};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

async fn channel(cluster: &Cluster) -> Channel {
    let addr = cluster.chat_services[0].as_ref().unwrap().addr;
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn list_chats_of(user: &str, bearer: Option<String>) -> Request<CallerOnly> {
    let mut request = Request::new(CallerOnly {
        caller: Some(Caller {
            user_id: user.into(),
            device_id: "phone".into(),
            session: None,
        }),
    });
    if let Some(token) = bearer {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn service_token(secret: &str) -> String {
    ServiceKeys::new(secret.as_bytes())
        .unwrap()
        .mint("test", std::time::Duration::from_secs(60))
        .unwrap()
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_valid_service_credentials_get_no_data_and_are_counted() {
    let cluster = Cluster::start(1, 1).await;
    cluster.direct_chat(0, "alice", "bob").await;
    let mut client = ChatServiceClient::new(channel(&cluster).await);

    let anonymous = client.list_chats(list_chats_of("alice", None)).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    let forged = service_token("a-secret-that-is-not-the-clusters");
    let wrong_key = client
        .list_chats(list_chats_of("alice", Some(forged)))
        .await;
    assert_eq!(wrong_key.unwrap_err().code(), Code::Unauthenticated);
    // A user's token is no service token, even for that user.
    let user_token = client
        .list_chats(list_chats_of("alice", Some(token("alice", None))))
        .await;
    assert_eq!(user_token.unwrap_err().code(), Code::Unauthenticated);

    // The same call with the cluster's credentials gets alice's chat: the refusals above
    // were about the credentials, not the call.
    let genuine = client
        .list_chats(list_chats_of("alice", Some(service_token(INTERNAL_SECRET))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(genuine.chats.len(), 1);

    let addr = cluster.chat_services[0].as_ref().unwrap().addr;
    let (_, metrics) = chat_testkit::Http::new(addr).get_text("/metrics").await;
    assert!(
        counter(&metrics, "chat_internal_auth_failures_total") >= 3,
        "{metrics}"
    );
    // Every call is timed by method and status; the process says what it is.
    assert!(
        metrics.contains("chat_rpc_server_seconds_count{method=\"ListChats\",code=\"0\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("chat_build_info{service=\"chat-service\",version=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_server_does_not_know_is_a_clear_error() {
    let cluster = Cluster::start(1, 1).await;
    let mut grpc = tonic::client::Grpc::new(channel(&cluster).await);
    grpc.ready().await.unwrap();
    let mut request = Request::new(pb::Empty {});
    let bearer: MetadataValue<_> = format!("Bearer {}", service_token(INTERNAL_SECRET))
        .parse()
        .unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/chat.v1.ChatService/ACallFromTheFuture",
    );
    let codec = tonic_prost::ProstCodec::<pb::Empty, pb::Empty>::default();
    let status = grpc.unary(request, path, codec).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let error = chat_rpc::error_from_status(status);
    assert!(
        error.to_string().contains("does not know this call"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sends_at_the_size_limit_goes_through() {
    let cluster = Cluster::start_with(1, 1, &["--limit-send", "off"]).await;
    // The largest body, many at once: 8 MiB in flight on the gateway's stream to the owner.
    burst_of_largest_sends(&cluster, 512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_one_internal_message_is_split_into_batches() {
    // 256 sends of 16 KiB waiting at once would make a 4 MiB batch; at a 1 MiB message
    // limit on both sides the gateway must cut it, or the chat service refuses the stream.
    let limit = (1024 * 1024).to_string();
    let cluster = Cluster::start_with_env(
        1,
        1,
        &["--limit-send", "off"],
        &[("CHAT_INTERNAL_MAX_MESSAGE_BYTES", &limit)],
    )
    .await;
    burst_of_largest_sends(&cluster, 256).await;
}

/// Pipelines `count` sends of the largest body and checks each is acked and stored whole.
async fn burst_of_largest_sends(cluster: &Cluster, count: usize) {
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let body = "x".repeat(16 * 1024);
    for reply in alice.send_pipelined(&chat, "big-", count, &body).await {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    let (status, page) = cluster
        .http(0)
        .get(
            &format!("/v1/chats/{chat}/messages?after_seq={}&limit=1", count - 1),
            Some(&token("alice", None)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["seq"], count as u64, "{page}");
    assert_eq!(
        page["messages"][0]["body"].as_str().unwrap().len(),
        16 * 1024
    );
}

#[test]
fn services_refuse_to_start_without_internal_credentials() {
    for binary in ["chat-service", "chat-gateway"] {
        let output = std::process::Command::new(chat_testkit::binary(binary))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("CHAT_INTERNAL_SECRET")
            .env_remove("CHAT_INSECURE_INTERNAL")
            .env("CHAT_JWT_SECRET", chat_testkit::TEST_SECRET)
            .env("CHAT_REDIS_URL", "redis://127.0.0.1:1/")
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{binary} started without credentials"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("CHAT_INTERNAL_SECRET"),
            "{binary}: {stderr}"
        );
    }
}
